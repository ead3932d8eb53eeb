"""Bounded metric labels for order dimensions.

Distributors number in thousands and products in hundreds: a raw value would explode
Prometheus' series count. Each labelled dimension admits at most `top_k` distinct values
(the first ones seen, persisted in the state database so a restart keeps the same set);
every later value is reported as `other`.

A dimension is bounded on one of two families. A label (`label: true`) is a label of
watchdog_cancellations_total, so its values multiply those of every other label. An
`alone` dimension is exported on watchdog_cancellations_by_dimension_total{category,
dimension, value} instead, one series per value and category, multiplying nothing: for
dimensions with many values such as product. Both are capped and admitted the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import DimensionConfig

OTHER = "other"


@dataclass
class LabelPolicy:
    dimensions: Mapping[str, DimensionConfig]
    admitted: dict[str, set[str]] = field(default_factory=dict)
    names: tuple[str, ...] = field(init=False)
    """The labels of watchdog_cancellations_total, in configuration order (asked for every
    counted row)."""
    alone: tuple[str, ...] = field(init=False)
    """The dimensions exported on their own family, in configuration order."""

    def __post_init__(self) -> None:
        self.names = tuple(name for name, d in self.dimensions.items()
                           if d.label and not d.alone)
        self.alone = tuple(name for name, d in self.dimensions.items() if d.alone)

    def labels_for(self, values: Mapping[str, str], names: tuple[str, ...] | None = None,
                   ) -> tuple[tuple[tuple[str, str], ...], list[tuple[str, str]]]:
        """Bounded (dimension, value) pairs for one row, and the pairs newly admitted.

        `names`: the dimensions to bound, `self.names` (the labels) unless given; the
        pipeline passes `self.alone` for the dimensions exported on their own. The caller
        persists the admissions in the same transaction as the counts.
        """
        pairs = []
        new = []
        for name in self.names if names is None else names:
            value = values.get(name, "") or ""
            if value:
                known = self.admitted.setdefault(name, set())
                if value not in known:
                    if len(known) < self.dimensions[name].top_k:
                        known.add(value)
                        new.append((name, value))
                    else:
                        value = OTHER
            pairs.append((name, value))
        return tuple(pairs), new

    def forget(self, admissions: list[tuple[str, str]]) -> None:
        """Undo admissions whose transaction rolled back."""
        for name, value in admissions:
            self.admitted.get(name, set()).discard(value)
