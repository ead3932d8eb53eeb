"""Hysteresis: an episode fires once, reports again only when it grows, resolves late.

Every evaluation gives each series a finding (the fire test passed), or only "still
abnormal" (a looser test passed), or nothing. An episode opens on a finding, sends an
update when its excess has grown by `growth` since the last report, and resolves once the
series has been normal (not even abnormal) for `resolve_after`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from ..model import Signal

FIRING: Literal["firing"] = "firing"
UPDATED: Literal["updated"] = "updated"
RESOLVED: Literal["resolved"] = "resolved"
Status = Literal["firing", "updated", "resolved"]
EpisodeKey = tuple[str, tuple[tuple[str, str], ...]]
"""(kind, sorted label pairs)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change in an episode: what replay prints and what the alert lifecycle consumes."""

    status: Status
    episode: str
    started_at: datetime
    signal: Signal


@dataclass(slots=True)
class Episode:
    id: str
    kind: str
    labels: tuple[tuple[str, str], ...]
    started_at: datetime
    reported_excess: float
    reported: Signal
    """The signal of the last transition (with drill-down); a resolution repeats it."""
    normal_since: datetime | None = None

    @property
    def key(self) -> EpisodeKey:
        return (self.kind, self.labels)


def episode_key(signal: Signal) -> EpisodeKey:
    return (signal.kind, tuple(sorted(signal.labels.items())))


def _excess(s: Signal) -> float:
    return max(s.observed - s.expected, 0.0)


@dataclass
class Episodes:
    growth: float = 1.5
    open: dict[EpisodeKey, Episode] | None = None

    def __post_init__(self) -> None:
        if self.open is None:
            self.open = {}

    @property
    def items(self) -> dict[EpisodeKey, Episode]:
        assert self.open is not None
        return self.open

    def is_open(self, key: EpisodeKey) -> bool:
        return key in self.items

    def fire(self, finding: Signal, now: datetime,
             enrich: Callable[[Signal], Signal] = lambda s: s) -> Transition | None:
        """The fire test passed for this series. `enrich` (drill-down, samples) runs only
        when a transition is reported, which keeps the per-poll cost low."""
        key = episode_key(finding)
        ep = self.items.get(key)
        if ep is None:
            rich = enrich(finding)
            ident = hashlib.sha256(f"{key!r}|{now.isoformat()}".encode()).hexdigest()[:16]
            self.items[key] = Episode(ident, finding.kind, key[1], now, _excess(finding), rich)
            return Transition(FIRING, ident, now, rich)
        ep.normal_since = None
        if _excess(finding) >= self.growth * max(ep.reported_excess, 1.0):
            rich = enrich(finding)
            ep.reported_excess = _excess(finding)
            ep.reported = rich
            return Transition(UPDATED, ep.id, ep.started_at, rich)
        return None

    def still_abnormal(self, key: EpisodeKey) -> None:
        ep = self.items.get(key)
        if ep is not None:
            ep.normal_since = None

    def normal(self, key: EpisodeKey, now: datetime, resolve_after: timedelta,
               observed: float | None = None, expected: float | None = None
               ) -> Transition | None:
        """The series looked normal; resolves the episode after `resolve_after` of that."""
        ep = self.items.get(key)
        if ep is None:
            return None
        if ep.normal_since is None:
            ep.normal_since = now
        if now - ep.normal_since < resolve_after:
            return None
        del self.items[key]
        last = ep.reported
        signal = replace(
            last, firing=False, at=now,
            observed=last.observed if observed is None else observed,
            expected=last.expected if expected is None else expected,
        )
        return Transition(RESOLVED, ep.id, ep.started_at, signal)
