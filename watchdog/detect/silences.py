"""Silence detection of the detector: an upstream or carrier that stopped reporting.

A mixin of `Detector` (its state lives there).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from ..model import Signal
from .common import MAX_SILENCE_MINUTES, SILENCE, SILENCE_CATEGORY, minutes_of
from .episodes import Transition
from .series import ALL, ORDERS
from .silence import silence_test


class SilenceTests:
    def _silences(self, now: datetime, nowm: int, offset: int) -> list[Transition]:
        cfg = self.cfg.silence
        out: list[Transition] = []
        if not cfg.enabled:
            return out
        min_gap = minutes_of(cfg.min_gap)
        alive = self.last_any is not None and nowm - self.last_any <= min_gap
        for d in self.silence_dims:
            for v in sorted(self.topk[d].admitted):
                labels = {"category": SILENCE_CATEGORY, d: v}
                ekey = (SILENCE, tuple(sorted(labels.items())))
                last = self.last_seen.get((d, v))
                if last is None:
                    continue
                gap = nowm - last
                is_open = self.episodes.is_open(ekey)
                if gap < min_gap and not is_open:
                    continue
                span = min(gap, MAX_SILENCE_MINUTES)
                mu = 0.0
                for cat in (ALL, ORDERS):
                    s = self.series.get((cat, d, v))
                    e = s.baseline.expected(nowm - span + 1 + offset, span) if s else None
                    mu += e or 0.0
                t = silence_test(gap, mu, min_gap, cfg.min_expected, alive)
                if t.fires:
                    sig = Signal(SILENCE, labels, now, True, 0.0, round(mu, 1), gap * 60.0,
                                 "warning", round(mu / math.log(10), 1),
                                 summary=f"silence: no cancellations or orders from {d} {v} "
                                 f"for {gap} min; about {mu:.0f} expected")
                    if self.paused and self.paused(labels, now):
                        continue
                    tr = self.episodes.fire(sig, now)
                    if tr:
                        out.append(tr)
                elif t.abnormal:
                    self.episodes.still_abnormal(ekey)
                elif is_open:
                    tr = self.episodes.normal(ekey, now, timedelta(minutes=self.w_spike))
                    if tr:
                        out.append(tr)
        return out
