"""Usual longest gaps: how long each upstream or carrier usually goes without an event.

A silence test in expected events alone assumes events arrive like a Poisson stream; order
writes do not (they come in clumps), so small carriers and upstreams, and every upstream
at times, go quiet longer than their learned rate says. What a value *usually* does is
learned instead, like a baseline: per value of a silence dimension and per local hour of
the day, a decayed high-water mark of the longest gap seen in that hour, in minutes.

A gap is measured the way the silence test measures it: at a poll at minute `now` a value
last seen in minute `last` has gap `now - last`, so events in every minute give gaps of 1
and one empty minute a gap of 2. The learner reads per-minute counts (cancellations and
new orders of the value) once they have settled, minute by minute:

- a gap is learned when it closes (the value's next event) and, at the end of each hour,
  the gap still open then (a value quiet for hours teaches each of them);
- only while the rest of the platform flowed: a gap whose minutes the platform did not
  fill (a source outage, a stalled writer) is not learned, nor is the rest of that hour
  for that value;
- nor the gap of a silence the detector judged abnormal (an open episode): an incident
  must not teach that incidents are usual.

The test then calls a gap silent at `max(floor, factor x usual)` minutes, `usual` being
the largest of the current and the two neighbouring hours; until each of those hours has
been learned on `warm_days` days (cold), the caller falls back to a fixed `min_gap`.

Everything is pure: minutes are ints (UTC minutes since the epoch, local minutes for the
hour of day), passed in by the caller.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

HOURS = 24
REST_FLOWED = 0.9
"""A gap is learned only when the platform had events in at least this share of the
minutes inside it (its own value had none there, so they are the rest's)."""

ValueKey = tuple[str, str]
"""(dimension, value)."""


class GapProfile:
    """One value's usual longest gap per local hour of day (minutes) and days learned."""

    __slots__ = ("days", "high")

    def __init__(self) -> None:
        self.high = array("f", bytes(4 * HOURS))
        self.days = bytearray(HOURS)

    def learn(self, hour: int, longest: float, decay: float) -> None:
        """One more day of `hour` whose longest gap was `longest` minutes: the mark
        rises to it at once and sinks by `decay` a day."""
        h = hour % HOURS
        n = self.days[h]
        self.high[h] = longest if n == 0 else max(longest, self.high[h] * decay)
        self.days[h] = min(255, n + 1)

    def usual(self, hour: int, warm_days: int) -> float | None:
        """The usual longest gap around local `hour` (the hour and its two neighbours);
        None while any of them has been learned on fewer than `warm_days` days."""
        hours = [(hour + k) % HOURS for k in (-1, 0, 1)]
        if any(self.days[h] < warm_days for h in hours):
            return None
        return max(self.high[h] for h in hours)

    def to_json(self) -> list[list[float]]:
        return [[round(x, 3) for x in self.high], list(self.days)]

    @classmethod
    def from_json(cls, j: list[list[float]]) -> GapProfile:
        p = cls()
        p.high = array("f", (float(x) for x in j[0]))
        p.days = bytearray(int(x) for x in j[1])
        if len(p.high) != HOURS or len(p.days) != HOURS:
            raise ValueError("a gap profile has 24 hours")
        return p


def gap_threshold(usual: float | None, floor: int, factor: float, cold_gap: int) -> int:
    """Minutes of gap at which a value is silent: `factor` x its usual longest gap, at
    least `floor`; `cold_gap` while nothing is known (`usual` None)."""
    if usual is None:
        return cold_gap
    return max(floor, math.ceil(factor * usual - 1e-9))


@dataclass(slots=True)
class _Open:
    """What the learner knows of one value's current gap and hour."""

    last: int
    """The value's last minute with an event."""
    flowed: int = 0
    """Minutes after `last` in which the platform had events."""
    longest: int = 0
    """The longest learnable gap of the current hour so far."""
    whole: bool = False
    """Known since the hour began (only whole hours are learned)."""
    spoilt: bool = False
    """A gap of this hour was not learnable (outage, silence episode): skip the hour."""


@dataclass
class GapLearner:
    """Learns every silence value's `GapProfile` from settled per-minute counts."""

    decay: float = 0.98
    profiles: dict[ValueKey, GapProfile] = field(default_factory=dict)
    cursor: int | None = None
    """The last minute learned (None: start at the next minute given)."""
    open: dict[ValueKey, _Open] = field(default_factory=dict)
    episodes: dict[ValueKey, int] = field(default_factory=dict)
    """Per value, the last minute before a gap the detector found abnormal: that gap is
    not learned."""

    def exclude(self, key: ValueKey, last: int) -> None:
        """The gap after minute `last` of `key` is a silence episode: never learn it."""
        self.episodes[key] = last

    def minute(self, m: int, local: int, active: Collection[ValueKey],
               values: Iterable[ValueKey], platform: bool) -> None:
        """Learn minute `m` (its local minute `local`): `active` had events in it,
        `values` are the values followed, `platform` whether anything at all happened
        (cancellations or orders of any value)."""
        if self.cursor is not None and m <= self.cursor:
            return
        start = self.cursor is None or m != self.cursor + 1
        if start:
            # first minute, or minutes skipped (restart): what is open is unknown
            self.open.clear()
        self.cursor = m
        if local % 60 == 0:
            for o in self.open.values():
                o.longest, o.whole, o.spoilt = 0, True, False
        for key in values:
            o = self.open.get(key)
            if key in active:
                if o is None:
                    self.open[key] = _Open(m, whole=local % 60 == 0)
                    continue
                self._close(key, o, m)
                o.last, o.flowed = m, 0
            elif o is not None and platform:
                o.flowed += 1
        if local % 60 == 59:
            self._end_hour(local // 60, m + 1)

    def _close(self, key: ValueKey, o: _Open, end: int) -> None:
        """The gap from `o.last` to `end` (an event at `end`, or the hour's end)."""
        gap = end - o.last
        inside = gap - 1
        ep = self.episodes.get(key)
        if ep is not None and o.last <= ep < end:
            o.spoilt = True
            return
        if inside > 0 and o.flowed < REST_FLOWED * inside:
            o.spoilt = True
            return
        o.longest = max(o.longest, gap)

    def _end_hour(self, local_hour: int, end: int) -> None:
        for key, o in self.open.items():
            self._close(key, o, end)
            ep = self.episodes.get(key)
            if ep is not None and ep < o.last:
                del self.episodes[key]  # that gap is over
            if o.whole and not o.spoilt:
                p = self.profiles.get(key)
                if p is None:
                    p = self.profiles[key] = GapProfile()
                p.learn(local_hour % HOURS, o.longest, self.decay)

    def usual(self, key: ValueKey, local_hour: int, warm_days: int) -> float | None:
        p = self.profiles.get(key)
        return p.usual(local_hour, warm_days) if p is not None else None

    def forget(self, keep: Callable[[ValueKey], bool]) -> None:
        """Drop the profiles of values no longer followed (bounded memory)."""
        for key in [k for k in self.profiles if not keep(k)]:
            del self.profiles[key]
            self.open.pop(key, None)

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The learned profiles and excluded gaps; the open gaps are not kept (after a
        restart the minutes in between are unknown: learning starts at the next hour)."""
        return {
            "profiles": [[d, v, p.to_json()] for (d, v), p in self.profiles.items()],
            "episodes": [[d, v, m] for (d, v), m in self.episodes.items()],
        }

    def load_json(self, j: Mapping[str, Any]) -> None:
        self.profiles = {(d, v): GapProfile.from_json(p) for d, v, p in j.get("profiles", [])}
        self.episodes = {(d, v): m for d, v, m in j.get("episodes", [])}
        self.cursor = None
        self.open.clear()
