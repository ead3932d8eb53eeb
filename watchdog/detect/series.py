"""Series: per-minute counts of one (category, dimension, value) and its baseline.

A series is keyed by (category, dimension, value): ("system_fault", "", "") is the
category overall, ("system_fault", "carrier", "中国联通") one carrier's. Two pseudo
categories exist per scope: ALL (every monitored category, for the mix test and silence)
and ORDERS (newly created orders, for the ratio test). Each dimension gives its own series
only to its top-K values (TopK); the rest are pooled as `other`, so memory is bounded by
categories x (1 + sum of K).

Minutes are UTC minutes since the epoch (ints); seasonal slots use local minutes
(UTC + the zone's offset), passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .baseline import SLOT_MINUTES, SLOTS_PER_HOUR, Baseline

ALL = "*"
ORDERS = "#orders"
OTHER = "other"
OVERALL = ("", "")
SeriesKey = tuple[str, str, str]
MAX_CATCH_UP = 7 * 1440
"""A series idle longer than a week learns only its last week of zeros."""


def labels_of(key: SeriesKey) -> dict[str, str]:
    category, dim, value = key
    labels = {"category": category}
    if dim:
        labels[dim] = value
    return labels


class Series:
    __slots__ = ("baseline", "buckets", "hour_acc", "hour_slots", "key", "learned_until",
                 "seconds", "total")

    def __init__(self, key: SeriesKey, start_minute: int,
                 baseline: Baseline | None = None) -> None:
        self.key = key
        self.baseline = baseline or Baseline()
        self.buckets: dict[int, int] = {}
        self.seconds: dict[int, list[int]] = {}
        """Per minute, the second (0-59) of each event added with one: a window that starts
        inside that minute counts exactly the events after its start."""
        self.learned_until = start_minute - start_minute % SLOT_MINUTES
        self.hour_acc = 0.0
        self.hour_slots = 0
        self.total = 0
        """Events in the kept buckets: a cheap upper bound for any window's count."""

    def add(self, minute: int, n: int = 1, second: int | None = None) -> None:
        self.buckets[minute] = self.buckets.get(minute, 0) + n
        self.total += n
        if second is not None:
            secs = self.seconds.get(minute)
            if secs is None:
                self.seconds[minute] = [second] * n
            else:
                secs.extend([second] * n)

    def count_since(self, start: int, last: int) -> int | float:
        """Events from epoch second `start` to the end of minute `last` (the trailing
        window ending now; nothing is counted after now).

        Exact for events added with their second; events added without one (orders,
        spread over their minutes) count in the window's first minute by the share of
        that minute the window covers.
        """
        first = start // 60
        n: int | float = self.count(first + 1, last) if first < last else 0
        inside = self.buckets.get(first, 0)
        if inside:
            cut = start - first * 60
            secs = self.seconds.get(first, ())
            if cut == 0:
                return n + inside
            n += sum(1 for x in secs if x >= cut)
            loose = inside - len(secs)
            if loose:
                n += loose * (60 - cut) / 60
        return n

    def expected_since(self, start: int, minutes: float, offset: int) -> float | None:
        """Expected events in the `minutes` from epoch second `start` (offset: local-UTC
        minutes)."""
        return self.baseline.expected(start / 60 + offset, minutes)

    def count(self, first: int, last: int) -> int:
        """Events in minutes first..last inclusive."""
        b = self.buckets
        if last - first + 1 > len(b):
            return sum(n for m, n in b.items() if first <= m <= last)
        return sum(b.get(m, 0) for m in range(first, last + 1))

    def catch_up(self, until: int, offset: int, frozen: bool, keep_from: int) -> bool:
        """Learn every complete 5-minute slot ending at or before `until` (UTC minute).

        `frozen` (the series is alerting) learns only what recurs daily (baseline.py).
        Buckets before min(learned slots, keep_from) are dropped. True if anything was
        learned (the series needs saving).
        """
        t = self.learned_until
        if until - t > MAX_CATCH_UP:
            t = until - MAX_CATCH_UP
            t -= t % SLOT_MINUTES
            self.hour_acc, self.hour_slots = 0.0, 0
        b = self.buckets
        base = self.baseline
        while t + SLOT_MINUTES <= until:
            c = 0
            if b:
                c = b.get(t, 0) + b.get(t + 1, 0) + b.get(t + 2, 0) + b.get(t + 3, 0) \
                    + b.get(t + 4, 0)
            local = t + offset
            base.learn_slot(local // SLOT_MINUTES, c, frozen)
            self.hour_acc += c
            self.hour_slots += 1
            if (local + SLOT_MINUTES) % 60 == 0:
                if self.hour_slots == SLOTS_PER_HOUR:
                    base.learn_hour(local // 60, self.hour_acc, frozen)
                self.hour_acc, self.hour_slots = 0.0, 0
            t += SLOT_MINUTES
        advanced = t != self.learned_until
        self.learned_until = t
        cutoff = min(t, keep_from)
        if advanced and b and min(b) < cutoff:
            secs = self.seconds
            for m in [m for m in b if m < cutoff]:
                self.total -= b.pop(m)
                secs.pop(m, None)
        return advanced


@dataclass
class TopK:
    """The values of one dimension that get their own series.

    The first K values seen are admitted at once (like metric labels); then every hour
    the decayed volume ranking may swap a member for a value at least twice as busy, so
    a distributor that suddenly grows gets its own series without churning the rest.
    """

    k: int
    scores: dict[str, float] = field(default_factory=dict)
    admitted: set[str] = field(default_factory=set)
    decay: float = 0.97
    """Per rebalance (hour): volume half-life about a day."""

    def touch(self, value: str) -> str:
        """Count one event of `value`; the series value it belongs to."""
        self.scores[value] = self.scores.get(value, 0.0) + 1.0
        if value in self.admitted:
            return value
        if len(self.admitted) < self.k:
            self.admitted.add(value)
            return value
        return OTHER

    def series_value(self, value: str) -> str:
        return value if value in self.admitted else OTHER

    def rebalance(self) -> tuple[set[str], set[str]]:
        """Decay scores, swap members, bound memory; returns (admitted, evicted)."""
        scores = self.scores
        for v in scores:
            scores[v] *= self.decay
        cap = 4 * self.k + 16
        if len(scores) > cap:
            keep = sorted(scores, key=scores.__getitem__, reverse=True)[:cap]
            keep_set = set(keep) | self.admitted
            self.scores = scores = {v: scores.get(v, 0.0) for v in keep_set}
        challengers = sorted((v for v in scores if v not in self.admitted),
                             key=scores.__getitem__, reverse=True)
        members = sorted(self.admitted, key=lambda v: scores.get(v, 0.0))
        added: set[str] = set()
        evicted: set[str] = set()
        for c in challengers:
            if len(self.admitted) < self.k:
                self.admitted.add(c)
                added.add(c)
                continue
            if not members or scores[c] < 2 * scores.get(members[0], 0.0) + 1:
                break
            weakest = members.pop(0)
            self.admitted.discard(weakest)
            evicted.add(weakest)
            self.admitted.add(c)
            added.add(c)
        return added, evicted

    def pooled_share(self, value: str) -> float:
        """`value`'s share of the volume pooled as `other` (for drill-down expectations)."""
        pooled = sum(s for v, s in self.scores.items() if v not in self.admitted)
        return self.scores.get(value, 0.0) / pooled if pooled > 0 else 0.0
