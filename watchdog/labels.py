"""Bounded metric labels for order dimensions.

Distributors number in thousands and products in hundreds: a raw value would explode
Prometheus' series count. Each labelled dimension admits at most `top_k` distinct values
(the first ones seen, persisted in the state database so a restart keeps the same set);
every later value is reported as `other`.
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
    """The labelled dimensions, in configuration order (asked for every counted row)."""

    def __post_init__(self) -> None:
        self.names = tuple(name for name, d in self.dimensions.items() if d.label)

    def labels_for(self, values: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...],
                                                              list[tuple[str, str]]]:
        """Label pairs for one row, and the (dimension, value) pairs newly admitted.

        The caller persists the admissions in the same transaction as the counts.
        """
        pairs = []
        new = []
        for name in self.names:
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
