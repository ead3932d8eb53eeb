"""The per-value table behind the volume test (volume.py): new orders and cancellations
per minute of the busiest values of one dimension (distributor), and their usual share.

Bounded: at most `cap` values (1,000 by default) with a few per-minute buckets each;
when a poll brings more, the least used go (learned volume plus what is still in the
windows), never one with an open episode. A value evicted or never seen has the prior
share. Platform totals (every value, also the evicted, and orders without one) are kept
apart, so shares stay right whatever the table holds.

Learning: a minute is learned (its orders added to the decayed per-value and platform
volumes, its cancellations to the usual lean share) once it is older than the longest
window, so a burst is never compared with a share that already absorbed it; a value
with an open episode does not learn at all (frozen, like an alerting series).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..model import Contributor, Signal
from .common import VOLUME, window_start
from .drilldown import contributors, samples
from .episodes import EpisodeKey, Transition
from .recent import RecentEvent
from .stats import score
from .volume import VolumeCounts, VolumeTest, volume_test

COLD_CANCELS = 20.0
"""The usual lean share is unknown until this many (decayed) cancellations were learned."""


@dataclass(slots=True)
class Entry:
    score: float = 0.0
    """Learned orders, decayed."""
    orders: dict[int, int] = field(default_factory=dict)
    cancels: dict[int, int] = field(default_factory=dict)
    lean: dict[int, int] = field(default_factory=dict)


class Volumes:
    def __init__(self, cap: int, half_life_minutes: float, lean_categories: Collection[str],
                 prior_share: float) -> None:
        self.cap = cap
        self.decay = 0.5 ** (1.0 / max(half_life_minutes, 1.0))
        self.lean_categories = frozenset(lean_categories)
        self.prior_share = prior_share
        self.entries: dict[str, Entry] = {}
        self.total_orders: dict[int, int] = {}
        self.total_cancels: dict[int, int] = {}
        self.total_lean: dict[int, int] = {}
        self.score_total = 0.0
        self.cancels_learned = 0.0
        self.lean_learned = 0.0
        self.learned_until: int | None = None
        """Minutes before this one are learned."""

    # --- input ----------------------------------------------------------------------------

    def add_orders(self, value: str, minute: int, n: int) -> None:
        self.total_orders[minute] = self.total_orders.get(minute, 0) + n
        if value:
            e = self._entry(value)
            e.orders[minute] = e.orders.get(minute, 0) + n

    def add_cancel(self, value: str, minute: int, category: str) -> None:
        lean = category in self.lean_categories
        self.total_cancels[minute] = self.total_cancels.get(minute, 0) + 1
        if lean:
            self.total_lean[minute] = self.total_lean.get(minute, 0) + 1
        if value:
            e = self._entry(value)
            e.cancels[minute] = e.cancels.get(minute, 0) + 1
            if lean:
                e.lean[minute] = e.lean.get(minute, 0) + 1

    def _entry(self, value: str) -> Entry:
        e = self.entries.get(value)
        if e is None:
            e = self.entries[value] = Entry()
        return e

    # --- learning and bounds ----------------------------------------------------------------

    def learn(self, until: int, frozen: Collection[str] = ()) -> None:
        """Learn every minute before `until`; values in `frozen` add nothing."""
        start = self.learned_until
        if start is None:
            start = min([*self.total_orders, *self.total_cancels, until])
        if until <= start:
            self.learned_until = max(start, self.learned_until or start)
            return
        d = self.decay
        factor = d ** (until - start)
        self.score_total *= factor
        self.cancels_learned *= factor
        self.lean_learned *= factor
        for m, n in self.total_orders.items():
            if start <= m < until:
                self.score_total += n * d ** (until - 1 - m)
        for m, n in self.total_cancels.items():
            if start <= m < until:
                w = d ** (until - 1 - m)
                self.cancels_learned += n * w
                self.lean_learned += self.total_lean.get(m, 0) * w
        for value, e in self.entries.items():
            e.score *= factor
            if value in frozen or not e.orders:
                continue
            for m, n in e.orders.items():
                if start <= m < until:
                    e.score += n * d ** (until - 1 - m)
        self.learned_until = until

    def prune(self, keep_from: int) -> None:
        """Forget per-minute counts before `keep_from` (learned and out of every window)."""
        cut = min(keep_from, self.learned_until if self.learned_until is not None else keep_from)
        for buckets in (self.total_orders, self.total_cancels, self.total_lean):
            for m in [m for m in buckets if m < cut]:
                del buckets[m]
        for e in self.entries.values():
            for buckets in (e.orders, e.cancels, e.lean):
                if buckets and min(buckets) < cut:
                    for m in [m for m in buckets if m < cut]:
                        del buckets[m]

    def bound(self, keep: Collection[str] = ()) -> set[str]:
        """Evict the least used values down to `cap` once the table is a tenth over it
        (amortised); `keep` (open episodes) stays. Returns the evicted values."""
        if len(self.entries) <= self.cap + self.cap // 10:
            return set()

        def use(v: str) -> float:
            e = self.entries[v]
            return e.score + sum(e.orders.values()) + sum(e.cancels.values())

        ranked = sorted((v for v in self.entries if v not in keep), key=use)
        excess = len(self.entries) - self.cap
        gone = set(ranked[:max(excess, 0)])
        for v in gone:
            del self.entries[v]
        return gone

    # --- reading --------------------------------------------------------------------------

    def usual_share(self, value: str) -> float:
        """The value's learned share of the platform's orders; the prior when unknown."""
        e = self.entries.get(value)
        if e is None or e.score <= 0 or self.score_total <= 0:
            return self.prior_share
        return e.score / self.score_total

    def usual_lean(self) -> float | None:
        """The platform's usual share of lean cancellations; None while cold."""
        if self.cancels_learned < COLD_CANCELS:
            return None
        return self.lean_learned / self.cancels_learned

    def busy(self, min_orders: int) -> list[str]:
        """Values that may hold `min_orders` in a window: as many in their kept minutes
        (a cheap pre-filter; the window counts are exact)."""
        return [v for v, e in self.entries.items() if sum(e.orders.values()) >= min_orders]

    def counts(self, value: str, first: int, last: int, long_first: int) -> VolumeCounts:
        e = self.entries.get(value) or Entry()

        def window(b: dict[int, int], lo: int) -> int:
            return sum(n for m, n in b.items() if lo <= m <= last)

        return VolumeCounts(
            orders=window(e.orders, first),
            total_orders=window(self.total_orders, first),
            cancels=window(e.cancels, first),
            lean=window(e.lean, first),
            long_orders=window(e.orders, long_first),
            long_lean=window(e.lean, long_first),
        )

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"learned_until": self.learned_until, "score_total": self.score_total,
                "cancels": self.cancels_learned, "lean": self.lean_learned,
                "scores": {v: round(e.score, 4) for v, e in self.entries.items()
                           if e.score > 1e-4}}

    def load_json(self, j: dict[str, Any]) -> None:
        if not j:
            return
        self.learned_until = j.get("learned_until")
        self.score_total = float(j.get("score_total", 0.0))
        self.cancels_learned = float(j.get("cancels", 0.0))
        self.lean_learned = float(j.get("lean", 0.0))
        for v, s in j.get("scores", {}).items():
            self._entry(v).score = float(s)


class VolumeTests:
    """The volume test of the detector, a mixin of `Detector` (its state lives there)."""

    def _learn_volumes(self, nowm: int) -> None:
        vt = self.volumes
        if vt is None:
            return
        frozen = self._volume_open()
        vt.learn(nowm - self.w_vol_long + 1, frozen)
        vt.prune(nowm - self.w_vol_long + 1)
        vt.bound(keep=frozen)

    def _volume_open(self) -> dict[str, EpisodeKey]:
        """value -> key of its open volume episode."""
        dim = self.cfg.volume.dimension
        out = {}
        for key, ep in self.episodes.items.items():
            if ep.kind == VOLUME:
                value = dict(ep.labels).get(dim)
                if value is not None:
                    out[value] = key
        return out

    def _volumes(self, now: datetime, nowm: int) -> list[Transition]:
        vt = self.volumes
        if vt is None:
            return []
        cfg = self.cfg.volume
        th = self._volume_th
        opened = self._volume_open()
        out: list[Transition] = []
        first, long_first = nowm - self.w_vol + 1, nowm - self.w_vol_long + 1
        usual_lean = vt.usual_lean()
        live: set[EpisodeKey] = set()
        if usual_lean is not None:
            for v in sorted(set(vt.busy(th.min_orders)) | set(opened)):
                c = vt.counts(v, first, nowm, long_first)
                share = vt.usual_share(v)
                t = volume_test(c, share, usual_lean, th)
                key = opened.get(v)
                if t.fires:
                    category = dict(key[1])["category"] if key else self._lean_leader(v, now)
                    labels = {"category": category, cfg.dimension: v}
                    live.add((VOLUME, tuple(sorted(labels.items()))))
                    sig = Signal(VOLUME, labels, now, True, float(c.orders),
                                 round(t.expected, 2), self.w_vol * 60.0, "warning",
                                 round(score(t.p), 1))
                    if self.paused and self.paused(labels, now):
                        continue
                    tr = self.episodes.fire(
                        sig, now, lambda s, c=c, t=t: self._volume_detail(s, c, t, usual_lean))
                    if tr:
                        out.append(tr)
                elif t.abnormal and key is not None:
                    live.add(key)
                    self.episodes.still_abnormal(key)
        resolve_after = self.cfg.resolve_after or timedelta(minutes=self.w_vol)
        for key in opened.values():
            if key not in live:
                tr = self.episodes.normal(key, now, resolve_after)
                if tr:
                    out.append(tr)
        return out

    def _lean_events(self, value: str, now: datetime) -> dict[str, list[RecentEvent]]:
        """The value's cancellations in the window, per lean category (in config order)."""
        i = self._dim_index[self.cfg.volume.dimension]
        start = window_start(now, self.w_vol)
        return {cat: [e for e in self.recent.window(cat, start) if e.dims[i] == value]
                for cat in self.cfg.volume.lean_categories}

    def _lean_leader(self, value: str, now: datetime) -> str:
        """The lean category with most of the value's cancellations in the window."""
        by_cat = self._lean_events(value, now)
        return max(by_cat, key=lambda c: len(by_cat[c]))

    def _volume_detail(self, sig: Signal, c: VolumeCounts, t: VolumeTest,
                       usual_lean: float) -> Signal:
        cfg = self.cfg.volume
        dim = cfg.dimension
        value = sig.labels[dim]
        events = [e for evs in self._lean_events(value, sig.at).values() for e in evs]
        own = Contributor(dim, value, float(c.orders), sig.expected, 1.0)
        rest = contributors(events, self.dims, dim, float(len(events)), 0.0,
                            lambda d, v: 0.0, limit=2)
        ratio = t.ratio(c.orders)
        text = (f"volume: {dim} {value} {c.orders} new orders in {self.w_vol} min, "
                f"expected {sig.expected:g} (x{ratio:.0f}); {c.lean} of its {c.cancels} "
                f"cancellations {'/'.join(cfg.lean_categories)} (usually {usual_lean:.0%}, "
                f"p {t.p:.2g}); {c.long_lean} per {c.long_orders} new orders in "
                f"{self.w_vol_long} min")
        return replace(sig, contributors=(own, *rest),
                       samples=samples(events, self.dims, own), summary=text)
