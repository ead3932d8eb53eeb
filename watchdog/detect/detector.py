"""The detector: classified cancellations in, Signals out; time is always an argument.

    detector.observe(report.fresh, now)          # count what the poll found
    detector.observe_orders(counts, since, until) # new orders, when counted
    for t in detector.step(now): ...              # Transitions: firing / updated / resolved

The daemon and `replay` call exactly these. Everything here is in memory and pure;
watchdog.detect.state saves and restores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from ..model import Classified, OrderCount, Signal
from ..rules.normalise import reason_template
from .common import (
    MAX_SILENCE_MINUTES,
    NEW_TEMPLATE,
    SILENCE,
    SILENCE_CATEGORY,
    SPIKE,
    STEP,
    SWEEP_SHARE,
    VOLUME,
    Paused,
    is_cluster,
    minute_of,
    minutes_of,
    second_of,
    series_key,
)
from .config import DetectConfig
from .counts import CountTests
from .episodes import Episodes, Transition
from .gaps import GapLearner
from .novelty import TemplateTests
from .recent import Recent, RecentEvent
from .series import ALL, ORDERS, Series, SeriesKey, TopK
from .silences import SilenceTests
from .spike import Thresholds
from .templates import Templates
from .volume import VolumeThresholds
from .volumes import Volumes, VolumeTests

__all__ = ["MAX_SILENCE_MINUTES", "NEW_TEMPLATE", "SILENCE", "SILENCE_CATEGORY", "SPIKE",
           "STEP", "VOLUME", "Detector", "Paused", "minute_of"]


class Detector(CountTests, TemplateTests, SilenceTests, VolumeTests):
    """Series, baselines, templates and episodes; the tests live in the mixins."""

    def __init__(self, cfg: DetectConfig, dimensions: Sequence[str], zone: tzinfo = UTC,
                 paused: Paused | None = None) -> None:
        self.cfg = cfg
        self.dims = tuple(d for d in dimensions if cfg.dimensions is None or d in cfg.dimensions)
        self.zone = zone
        self.paused = paused
        self.w_spike = minutes_of(cfg.spike.window)
        self.w_step = minutes_of(cfg.step.window)
        self.w_slice = min(minutes_of(cfg.spike.slice_window), self.w_spike)
        self.w_traffic = minutes_of(cfg.spike.traffic_window)
        self.settle = minutes_of(cfg.settle)
        self.horizon = max(self.w_step, self.w_spike, self.w_traffic,
                           minutes_of(cfg.templates.window)) \
            + self.settle + 5
        self.series: dict[SeriesKey, Series] = {}
        self.topk = {d: TopK(cfg.top_k.get(d, cfg.default_top_k)) for d in self.dims}
        self.recent = Recent()
        self.templates = Templates(minutes_of(cfg.templates.window), cfg.templates.max_templates)
        self.episodes = Episodes(cfg.update_growth)
        self.silence_dims = tuple(d for d in cfg.silence.dimensions if d in self.dims)
        self.last_seen: dict[tuple[str, str], int] = {}
        self.last_any: int | None = None
        self.gaps = GapLearner(cfg.silence.gap_decay)
        """Each silence value's usual longest gap per hour of day (silences.py)."""
        self.step_since: dict[SeriesKey, datetime] = {}
        self.spike_ended: dict[str, datetime] = {}
        """category -> when its last spike, cluster or parser fault resolved (its tail
        stays quiet)."""
        self.accepted: set[str] = set()
        """Episode ids whose level was accepted (rescaled once)."""
        self.dirty: set[SeriesKey] = set()
        self.removed: set[SeriesKey] = set()
        self.rebalanced_hour: int | None = None
        self._sweep: list[SeriesKey] = []
        self._alerting: dict[SeriesKey, int] = {}
        self._bursting: set[str] = set()
        """Categories alerting as a whole this step: not traffic for the others."""
        self._elevated: set[SeriesKey] = set()
        """Slices with an open cluster episode whose count tested abnormal this step."""
        self._thresholds: dict[str, Thresholds] = {}
        self._dim_index = {d: i for i, d in enumerate(self.dims)}
        vc = cfg.volume
        self.w_vol = minutes_of(vc.window)
        self.w_vol_long = minutes_of(vc.ratio_window)
        self._volume_th = VolumeThresholds(vc.min_orders, vc.min_ratio, vc.min_lean, vc.alpha,
                                           vc.min_per_order)
        self.volumes: Volumes | None = None
        """Per-value new orders and cancellations of `volume.dimension` (volumes.py), fed
        by the orders counted with `source.count_orders_by`."""
        self._vol_index: int | None = None
        if vc.enabled and vc.dimension in self._dim_index:
            self._vol_index = self._dim_index[vc.dimension]
            self.volumes = Volumes(vc.max_values, vc.share_half_life.total_seconds() / 60,
                                   vc.lean_categories, vc.prior_share)

    # --- input ----------------------------------------------------------------------------

    def observe(self, items: Iterable[Classified], now: datetime, *, learning: bool = False,
                rebuild: bool = False, since: datetime | None = None) -> None:
        """Count newly classified cancellations (excluded ones are ignored).

        Counted at their event time (to the second), clamped to `now`. `since` is the
        previous poll, when it had caught up: an event stamped before it was not visible
        then (a late commit, a timeline entry written later), so it counts at `since`;
        every fresh event is then inside any window of two poll intervals at this poll and
        the next. An event older than the detection horizon (a backlog) counts at its
        change time instead, or not at all. `learning` takes every template as known;
        `rebuild` (after a restart, from stored events) touches neither templates nor
        value rankings, which already saw these events.
        """
        now_s = second_of(now)
        oldest = (now_s // 60 - self.horizon) * 60
        floor = second_of(since) if since is not None else None
        dims = self.dims
        for c in items:
            if c.excluded:
                continue
            can = c.cancellation
            t = min(second_of(can.event_time), now_s)
            if floor is not None and t < floor:
                t = min(floor, now_s)
            if t < oldest:
                t = min(second_of(can.changed_at), now_s)
                if t < oldest:
                    continue
            m = t // 60
            got = can.dimensions
            raw = tuple((got.get(d) or "") for d in dims)
            cat = c.category
            self._count(cat, m, t - m * 60, raw, touch=not rebuild)
            self.recent.add(cat, RecentEvent(m, raw, can.reason, t))
            if self.volumes is not None and self._vol_index is not None:
                self.volumes.add_cancel(raw[self._vol_index], m, cat)
            if not rebuild and self.cfg.templates.enabled:
                self.templates.observe(reason_template(can.reason), cat, m, raw, can.reason,
                                       learning)
            self._seen(raw, m)

    def observe_orders(self, counts: Sequence[OrderCount], since: datetime,
                       until: datetime) -> None:
        """Newly created orders in [since, until): in their minute of creation when the
        count has one, else spread evenly over the minutes of the span. Counts grouped by
        `source.count_orders_by` (`count_by`) feed only the volume table."""
        first, last = minute_of(since), max(minute_of(until) - 1, minute_of(since))
        vol_dim = self.cfg.volume.dimension
        for oc in counts:
            if oc.count_by:
                if self.volumes is not None and vol_dim in oc.dimensions:
                    m = last if oc.minute is None else minute_of(oc.minute)
                    self.volumes.add_orders(oc.dimensions[vol_dim] or "", m, oc.count)
                continue
            raw = tuple((oc.dimensions.get(d) or "") for d in self.dims)
            keys = [(ORDERS, "", "")]
            for i, d in enumerate(self.dims):
                if raw[i] and d in oc.dimensions:
                    keys.append((ORDERS, d, self.topk[d].series_value(raw[i])))
            lo, hi = (first, last) if oc.minute is None else (minute_of(oc.minute),) * 2
            per, extra = divmod(oc.count, hi - lo + 1)
            for key in keys:
                s = self._get(key, lo)
                for j in range(hi - lo + 1):
                    n = per + (1 if j < extra else 0)
                    if n:
                        s.add(lo + j, n)
            if oc.count:
                self._seen(raw, hi, only=tuple(oc.dimensions))

    def _seen(self, raw: tuple[str, ...], m: int, only: tuple[str, ...] | None = None) -> None:
        for d in self.silence_dims:
            v = raw[self._dim_index[d]]
            if v and (only is None or d in only) and m > self.last_seen.get((d, v), -1):
                self.last_seen[(d, v)] = m
        if self.last_any is None or m > self.last_any:
            self.last_any = m

    def _count(self, category: str, m: int, sec: int, raw: tuple[str, ...],
               touch: bool) -> None:
        values = []
        for i, d in enumerate(self.dims):
            v = raw[i]
            if v:
                tk = self.topk[d]
                values.append((d, tk.touch(v) if touch else tk.series_value(v)))
        for cat in (category, ALL):
            self._get((cat, "", ""), m).add(m, 1, sec)
            for d, sv in values:
                self._get((cat, d, sv), m).add(m, 1, sec)

    def _get(self, key: SeriesKey, m: int) -> Series:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key, m)
            self.removed.discard(key)
            # A category is learned from when its scope began to be watched (as many
            # hours back as the scope has learned): the quiet hours before its first
            # event are zeros it has seen, not hours it missed. Without this a category
            # quiet overnight stayed cold (untested) for six hours after its first
            # cancellation of the day, and so did all its slices.
            category, dim, value = key
            scope = None if category in (ALL, ORDERS) else self.series.get((ALL, dim, value))
            if scope is not None:
                began = scope.learned_until - 60 * scope.baseline.flat_n  # slot-aligned
                s.learned_until = min(s.learned_until, began)
        return s

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(self, now: datetime) -> list[Signal]:
        """The signals of this evaluation's transitions (see `step`)."""
        return [t.signal for t in self.step(now)]

    def step(self, now: datetime, *, learning: bool = False) -> list[Transition]:
        """Learn closed slots, then test every series; returns episode transitions.

        `learning` only learns (warm-up from history): no tests, no transitions.
        """
        nowm = minute_of(now)
        offset = self._offset(now)
        self._rebalance(nowm, offset)
        learn_until = nowm - self.settle
        keep_from = nowm - self.horizon
        self._sweep_learning(learn_until, offset, keep_from, everything=learning)
        self.recent.prune(keep_from)
        self._learn_gaps(learn_until, offset, keep_from)
        self._learn_volumes(nowm)
        expired = self.templates.expire(nowm)
        if learning:
            return []
        # each test sees what the ones before it opened: new wordings of a category that
        # spikes at this very poll are that spike's, not a second alert; a spike of what
        # our own parser broke at this very poll is the parser fault's
        out = self._tracked(self._parser_faults(now, nowm))
        out += self._tracked(self._counts(now, nowm, offset, learn_until, keep_from))
        out += self._tracked(self._new_templates(now, nowm, expired))
        out += self._tracked(self._silences(now, nowm, offset))
        out += self._tracked(self._volumes(now, nowm))
        return out

    def active(self) -> list[Signal]:
        """The last reported signal of every open episode."""
        return [ep.reported for ep in self.episodes.items.values()]

    def _offset(self, now: datetime) -> int:
        off = now.astimezone(self.zone).utcoffset()
        return int(off.total_seconds()) // 60 if off else 0

    def _rebalance(self, nowm: int, offset: int) -> None:
        hour = (nowm + offset) // 60
        if self.rebalanced_hour is None:
            self.rebalanced_hour = hour
        if hour == self.rebalanced_hour:
            return
        self.rebalanced_hour = hour
        for d, tk in self.topk.items():
            _added, evicted = tk.rebalance()
            if evicted:
                for key in [k for k in self.series if k[1] == d and k[2] in evicted]:
                    if key not in self._alerting:
                        del self.series[key]
                        self.removed.add(key)
                        self.dirty.discard(key)
        # values no longer ranked at all lose their learned gaps (bounded memory)
        self.gaps.forget(lambda k: k[0] in self.topk and k[1] in self.topk[k[0]].scores)

    def _sweep_learning(self, until: int, offset: int, keep_from: int, everything: bool) -> None:
        if everything:
            batch = list(self.series)
        else:
            if not self._sweep:
                self._sweep = list(self.series)
            take = max(64, len(self.series) // SWEEP_SHARE + 1)
            batch, self._sweep = self._sweep[-take:], self._sweep[:-take]
        for key in batch:
            self._catch_up(key, until, offset, keep_from)

    def _catch_up(self, key: SeriesKey, until: int, offset: int, keep_from: int) -> Series | None:
        s = self.series.get(key)
        if s is not None and s.catch_up(until, offset, key in self._alerting, keep_from):
            self.dirty.add(key)
        return s

    def _slice_threshold(self, category: str) -> Thresholds:
        """A slice's short window: the category's ratio and tail, a lower count floor."""
        th = self._thresholds.get("slice:" + category)
        if th is None:
            base = self._threshold(category)
            o = self.cfg.categories.get(category)
            n = (o.slice_min_count if o and o.slice_min_count else None) \
                or self.cfg.spike.slice_min_count
            th = self._thresholds["slice:" + category] = Thresholds(
                n, base.min_ratio, min(base.min_excess, n / 2), base.alpha)
        return th

    def _threshold(self, category: str) -> Thresholds:
        th = self._thresholds.get(category)
        if th is None:
            c = self.cfg.thresholds(category)
            th = self._thresholds[category] = Thresholds(c.min_count, c.min_ratio,
                                                         c.min_excess, c.alpha)
        return th

    # --- alerting series (frozen baselines) ------------------------------------------------

    def _tracked(self, transitions: list[Transition]) -> list[Transition]:
        for t in transitions:
            self._track_alerting(t)
        return transitions

    def _track_alerting(self, t: Transition) -> None:
        """Series with an open spike/step episode are frozen (their baseline does not learn);
        a category's spike, cluster or parser fault that ended leaves its tail quiet for a
        while."""
        if t.status == "resolved" and t.signal.kind == NEW_TEMPLATE:
            labels = t.signal.labels
            if is_cluster(t.signal.kind, labels):
                self.spike_ended[t.signal.category] = t.signal.at
            elif "classified_as" in labels:  # a parser fault: its rules' category
                self.spike_ended[labels["classified_as"]] = t.signal.at
        if t.signal.kind not in (SPIKE, STEP):
            return
        key = series_key(t.signal.labels)
        if t.status == "firing":
            self._alerting[key] = self._alerting.get(key, 0) + 1
        elif t.status == "resolved":
            self.accepted.discard(t.episode)
            if t.signal.kind == SPIKE:
                self.spike_ended[key[0]] = t.signal.at
            left = self._alerting.get(key, 0) - 1
            if left > 0:
                self._alerting[key] = left
            else:
                self._alerting.pop(key, None)

    def _open_kinds(self) -> set[tuple[str, SeriesKey]]:
        return {(ep.kind, series_key(dict(ep.labels))) for ep in self.episodes.items.values()}

    def restore_alerting(self) -> None:
        """Rebuild the frozen set from the open episodes (after loading state)."""
        self._alerting.clear()
        for ep in self.episodes.items.values():
            if ep.kind in (SPIKE, STEP):
                key = series_key(dict(ep.labels))
                self._alerting[key] = self._alerting.get(key, 0) + 1
