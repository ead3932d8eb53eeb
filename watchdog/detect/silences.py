"""Silence detection of the detector: an upstream or carrier that stopped reporting.

A mixin of `Detector` (its state lives there). Only one value stopping while the rest of
the platform flows is a silence (see silence.py): not the whole stream stalling or
lagging, nor most values of a dimension at once. How long a gap must be is each value's
own: `factor` x its usual longest gap at this time of day (gaps.py), `min_gap` until
that is learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Signal
from .common import MAX_SILENCE_MINUTES, SILENCE, SILENCE_CATEGORY, minutes_of
from .episodes import EpisodeKey, Transition
from .gaps import gap_threshold
from .series import ALL, ORDERS
from .silence import SilenceTest, most_silent, rest_flows, silence_test


@dataclass(frozen=True, slots=True)
class _Gap:
    labels: dict[str, str]
    key: EpisodeKey
    gap: int
    expected: float
    test: SilenceTest
    is_open: bool
    held: bool
    """Silent long enough, but the rest did not flow either: nothing can be told."""


class SilenceTests:
    def _silences(self, now: datetime, nowm: int, offset: int) -> list[Transition]:
        cfg = self.cfg.silence
        out: list[Transition] = []
        if not cfg.enabled:
            return out
        min_gap = minutes_of(cfg.min_gap)
        floor = minutes_of(cfg.gap_floor)
        hour = (nowm + offset) // 60
        # the rest's flow is read from the kept per-minute buckets (the horizon)
        window = max(1, min(min_gap, self.horizon - 1))
        for d in self.silence_dims:
            gaps: list[_Gap] = []
            flowing = 0
            for v in sorted(self.topk[d].admitted):
                last = self.last_seen.get((d, v))
                if last is None:
                    continue
                labels = {"category": SILENCE_CATEGORY, d: v}
                ekey = (SILENCE, tuple(sorted(labels.items())))
                gap = nowm - last
                is_open = self.episodes.is_open(ekey)
                usual = None
                if gap < floor:
                    need = floor
                else:
                    usual = self.gaps.usual((d, v), hour, cfg.gap_warm_days)
                    need = gap_threshold(usual, floor, cfg.gap_factor, min_gap)
                    if is_open and gap >= need:
                        self.gaps.exclude((d, v), last)  # an incident is no usual gap
                if gap < need:
                    flowing += 1
                    if is_open:
                        gaps.append(_Gap(labels, ekey, gap, 0.0,
                                         SilenceTest(gap, 0.0, False, False), True, False))
                    continue
                span = min(gap, MAX_SILENCE_MINUTES)
                mu = whole = 0.0
                for cat in (ALL, ORDERS):
                    s = self.series.get((cat, d, v))
                    if s is None:
                        continue
                    mu += s.baseline.expected(nowm - span + 1 + offset, span) or 0.0
                    if usual is not None:
                        whole += s.baseline.expected(nowm - span + 1 + offset, span - 1) or 0.0
                alive = self._rest_flows(d, v, last, nowm, offset, window)
                t = silence_test(gap, mu, need, cfg.min_expected, alive,
                                 whole if usual is not None else None, cfg.gap_min_expected)
                gaps.append(_Gap(labels, ekey, gap, mu, t, is_open, not alive))
            # most of the dimension silent together: the stream, not a value
            stream = most_silent(sum(1 for g in gaps if g.test.fires), flowing)
            for g in gaps:
                if g.test.fires and not stream:
                    mu, gap = g.expected, g.gap
                    sig = Signal(SILENCE, g.labels, now, True, 0.0, round(mu, 1), gap * 60.0,
                                 "warning", round(mu / math.log(10), 1),
                                 summary=f"silence: no cancellations or orders from {d} "
                                 f"{g.labels[d]} for {gap} min; about {mu:.0f} expected")
                    if self.paused and self.paused(g.labels, now):
                        continue
                    tr = self.episodes.fire(sig, now)
                    if tr:
                        out.append(tr)
                        self.gaps.exclude((d, g.labels[d]), nowm - gap)
                elif g.test.abnormal or g.held or g.test.fires:
                    self.episodes.still_abnormal(g.key)
                elif g.is_open:
                    tr = self.episodes.normal(g.key, now, timedelta(minutes=self.w_spike))
                    if tr:
                        out.append(tr)
        return out

    def _rest_flows(self, d: str, v: str, last: int, nowm: int, offset: int,
                    window: int) -> bool:
        """Did the rest of the platform (everything but `v`) flow after minute `last`?

        Its cancellations and its new orders, in the full minutes after `last` (the last
        `window` of them at most) against their expectation. A stalled or lagging stream
        puts every value's last event at the platform's last one (late rows count at the
        previous poll): nothing after it.
        """
        first, end = max(last + 1, nowm - window), nowm - 1
        if end < first:
            return False
        minutes = end - first + 1
        streams: list[tuple[float, float | None]] = []
        for cat in (ALL, ORDERS):
            platform = self.series.get((cat, "", ""))
            if platform is None:
                continue
            mu = platform.baseline.expected(first + offset, minutes)
            n: float = platform.count(first, end)
            own = self.series.get((cat, d, v))
            if own is not None and mu is not None:
                n -= own.count(first, end)
                mu -= own.baseline.expected(first + offset, minutes) or 0.0
            streams.append((n, mu))
        return rest_flows(streams)

    def _learn_gaps(self, until: int, offset: int, keep_from: int) -> None:
        """Teach the usual longest gaps the settled minutes before `until`: per minute,
        which silence values had cancellations or orders, and whether anything did."""
        if not self.silence_dims:
            return
        g = self.gaps
        first = until - 1 if g.cursor is None else max(g.cursor + 1, keep_from)
        if first > until - 1:
            return
        values = [(d, v) for d in self.silence_dims for v in sorted(self.topk[d].admitted)]
        own = [(key, self.series.get((ALL, *key)), self.series.get((ORDERS, *key)))
               for key in values]
        platform = [s for s in (self.series.get((ALL, "", "")),
                                self.series.get((ORDERS, "", ""))) if s is not None]
        for m in range(first, until):
            active = {key for key, a, o in own
                      if (a is not None and a.buckets.get(m)) or
                      (o is not None and o.buckets.get(m))}
            flowed = bool(active) or any(s.buckets.get(m) for s in platform)
            g.minute(m, m + offset, active, values, flowed)
