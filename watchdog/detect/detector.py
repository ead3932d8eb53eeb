"""The detector: classified cancellations in, Signals out; time is always an argument.

    detector.observe(report.fresh, now)          # count what the poll found
    detector.observe_orders(counts, since, until) # new orders, when counted
    for t in detector.step(now): ...              # Transitions: firing / updated / resolved

The daemon and `replay` call exactly these. Everything here is in memory and pure;
watchdog.detect.state saves and restores it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from ..model import Classified, OrderCount, Signal
from ..privacy import mask_text
from ..rules.normalise import reason_template
from .config import DetectConfig
from .drilldown import contributors, describe, samples
from .episodes import EpisodeKey, Episodes, Transition
from .recent import Recent, RecentEvent
from .series import ALL, ORDERS, OTHER, Series, SeriesKey, TopK, labels_of
from .silence import silence_test
from .spike import CountTest, Thresholds, count_test, traffic_factor
from .stats import score
from .templates import Fresh, Templates

SPIKE = "spike"
STEP = "step"
NEW_TEMPLATE = "new_template"
SILENCE = "silence"
SILENCE_CATEGORY = "system_fault"
"""An upstream or carrier falling silent is an integration fault."""
SWEEP_SHARE = 5
"""Each poll catches up the baselines of 1/SWEEP_SHARE of the series (bounded poll cost)."""
MAX_SILENCE_MINUTES = 24 * 60

Paused = Callable[[Mapping[str, str], datetime], bool]
"""(labels, now) -> True inside an announced maintenance window for those labels."""


def minute_of(t: datetime) -> int:
    return int(t.timestamp()) // 60


def _fraction(t: datetime) -> float:
    return (t.timestamp() % 60) / 60


def _minutes(td: timedelta) -> int:
    return max(1, math.ceil(td.total_seconds() / 60))


@dataclass(frozen=True, slots=True)
class _Finding:
    key: SeriesKey
    test: CountTest
    raw_expected: float


class Detector:
    def __init__(self, cfg: DetectConfig, dimensions: Sequence[str], zone: tzinfo = UTC,
                 paused: Paused | None = None) -> None:
        self.cfg = cfg
        self.dims = tuple(d for d in dimensions if cfg.dimensions is None or d in cfg.dimensions)
        self.zone = zone
        self.paused = paused
        self.w_spike = _minutes(cfg.spike.window)
        self.w_step = _minutes(cfg.step.window)
        self.settle = _minutes(cfg.settle)
        self.horizon = max(self.w_step, self.w_spike, _minutes(cfg.templates.window)) \
            + self.settle + 5
        self.series: dict[SeriesKey, Series] = {}
        self.topk = {d: TopK(cfg.top_k.get(d, cfg.default_top_k)) for d in self.dims}
        self.recent = Recent()
        self.templates = Templates(_minutes(cfg.templates.window), cfg.templates.max_templates)
        self.episodes = Episodes(cfg.update_growth)
        self.silence_dims = tuple(d for d in cfg.silence.dimensions if d in self.dims)
        self.last_seen: dict[tuple[str, str], int] = {}
        self.last_any: int | None = None
        self.step_since: dict[SeriesKey, datetime] = {}
        self.spike_ended: dict[str, datetime] = {}
        self.accepted: set[str] = set()
        """Episode ids whose level was accepted (rescaled once)."""
        self.dirty: set[SeriesKey] = set()
        self.removed: set[SeriesKey] = set()
        self.rebalanced_hour: int | None = None
        self._sweep: list[SeriesKey] = []
        self._alerting: dict[SeriesKey, int] = {}
        self._thresholds: dict[str, Thresholds] = {}
        self._dim_index = {d: i for i, d in enumerate(self.dims)}

    # --- input ----------------------------------------------------------------------------

    def observe(self, items: Iterable[Classified], now: datetime, *, learning: bool = False,
                rebuild: bool = False) -> None:
        """Count newly classified cancellations (excluded ones are ignored).

        Counted at their event time, clamped to `now`; an event older than the detection
        horizon (a backlog) counts at its change time instead, or not at all. `learning`
        takes every template as known; `rebuild` (after a restart, from stored events)
        touches neither templates nor value rankings, which already saw these events.
        """
        nowm = minute_of(now)
        oldest = nowm - self.horizon
        dims = self.dims
        for c in items:
            if c.excluded:
                continue
            can = c.cancellation
            m = min(minute_of(can.event_time), nowm)
            if m < oldest:
                m = min(minute_of(can.changed_at), nowm)
                if m < oldest:
                    continue
            got = can.dimensions
            raw = tuple((got.get(d) or "") for d in dims)
            cat = c.category
            self._count(cat, m, raw, touch=not rebuild)
            self.recent.add(cat, RecentEvent(m, raw, can.reason))
            if not rebuild and self.cfg.templates.enabled:
                self.templates.observe(reason_template(can.reason), cat, m, raw, can.reason,
                                       learning)
            self._seen(raw, m)

    def observe_orders(self, counts: Sequence[OrderCount], since: datetime,
                       until: datetime) -> None:
        """Newly created orders in [since, until), spread evenly over its minutes."""
        first, last = minute_of(since), max(minute_of(until) - 1, minute_of(since))
        span = last - first + 1
        for oc in counts:
            raw = tuple((oc.dimensions.get(d) or "") for d in self.dims)
            keys = [(ORDERS, "", "")]
            for i, d in enumerate(self.dims):
                if raw[i] and d in oc.dimensions:
                    keys.append((ORDERS, d, self.topk[d].series_value(raw[i])))
            per, extra = divmod(oc.count, span)
            for key in keys:
                s = self._get(key, first)
                for j in range(span):
                    n = per + (1 if j < extra else 0)
                    if n:
                        s.add(first + j, n)
            if oc.count:
                self._seen(raw, last, only=tuple(oc.dimensions))

    def _seen(self, raw: tuple[str, ...], m: int, only: tuple[str, ...] | None = None) -> None:
        for d in self.silence_dims:
            v = raw[self._dim_index[d]]
            if v and (only is None or d in only) and m > self.last_seen.get((d, v), -1):
                self.last_seen[(d, v)] = m
        if self.last_any is None or m > self.last_any:
            self.last_any = m

    def _count(self, category: str, m: int, raw: tuple[str, ...], touch: bool) -> None:
        values = []
        for i, d in enumerate(self.dims):
            v = raw[i]
            if v:
                tk = self.topk[d]
                values.append((d, tk.touch(v) if touch else tk.series_value(v)))
        for cat in (category, ALL):
            self._get((cat, "", ""), m).add(m)
            for d, sv in values:
                self._get((cat, d, sv), m).add(m)

    def _get(self, key: SeriesKey, m: int) -> Series:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key, m)
            self.removed.discard(key)
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
        expired = self.templates.expire(nowm)
        if learning:
            return []
        out: list[Transition] = []
        out += self._counts(now, nowm, offset, learn_until, keep_from)
        out += self._new_templates(now, nowm, expired)
        out += self._silences(now, nowm, offset)
        for t in out:
            self._track_alerting(t)
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

    def _threshold(self, category: str) -> Thresholds:
        th = self._thresholds.get(category)
        if th is None:
            c = self.cfg.thresholds(category)
            th = self._thresholds[category] = Thresholds(c.min_count, c.min_ratio,
                                                         c.min_excess, c.alpha)
        return th

    def _counts(self, now: datetime, nowm: int, offset: int, learn_until: int,
                keep_from: int) -> list[Transition]:
        cfg = self.cfg
        frac = _fraction(now)
        step_cfg = cfg.step
        step_th = Thresholds(step_cfg.min_count, step_cfg.min_ratio, 0.0, step_cfg.alpha)
        spikes: dict[SeriesKey, _Finding] = {}
        steps: dict[SeriesKey, _Finding] = {}
        abnormal: set[tuple[str, SeriesKey]] = set()
        open_keys = self._alerting
        for key, s in self.series.items():
            cat = key[0]
            if cat in (ALL, ORDERS) or not cfg.category_enabled(cat):
                continue
            th = self._threshold(cat)
            watched = key in open_keys
            if s.total < min(th.min_count, step_th.min_count) and not watched:
                continue
            self._catch_up(key, learn_until, offset, keep_from)
            for kind, window, t_th, found in (
                (SPIKE, self.w_spike, th, spikes),
                (STEP, self.w_step, step_th, steps),
            ):
                if kind == STEP and not step_cfg.enabled:
                    continue
                first = nowm - window + 1
                n = s.count(first, nowm)
                if n < t_th.min_count and not watched:
                    continue
                raw = s.expected(first, nowm, frac, offset)
                if raw is None:
                    continue
                g = self._traffic(key, first, nowm, frac, offset, learn_until, keep_from, n, raw)
                test = count_test(n, raw * g, s.baseline.dispersion, t_th)
                if test.fires and kind == STEP and not self._tail_elevated(s, nowm, frac,
                                                                           offset, g):
                    test = replace(test, fires=False)
                if test.fires:
                    found[key] = _Finding(key, test, raw)
                elif test.abnormal:
                    abnormal.add((kind, key))
        steps = self._sustained(steps, now)
        # a shift inside a category already alerting as a spike is that spike's tail
        spiking = {k[0] for k in self._alerting if (SPIKE, k) in self._open_kinds()} | {
            k[0] for k in spikes} | {
            c for c, t in self.spike_ended.items() if now - t < step_cfg.window}
        steps = {k: f for k, f in steps.items()
                 if k[0] not in spiking or self.episodes.is_open(_ekey(STEP, k))}
        out: list[Transition] = []
        for kind, found, window in ((SPIKE, spikes, self.w_spike), (STEP, steps, self.w_step)):
            chosen = self._choose(found, nowm - window + 1)
            for key, f in found.items():
                ekey = _ekey(kind, key)
                if key not in chosen and not self.episodes.is_open(ekey):
                    continue
                signal = self._signal(kind, key, f, now, window)
                if self.paused and self._paused(signal, f, nowm, window):
                    self.episodes.still_abnormal(ekey)
                    continue
                t = self.episodes.fire(signal, now,
                                       lambda sig, f=f, w=window: self._enrich(sig, f, nowm, w))
                if t:
                    out.append(t)
            out += self._normals(kind, found, abnormal, now, window)
        self._accept_steps(now, nowm, offset)
        return out

    def _tail_elevated(self, s: Series, nowm: int, frac: float, offset: int, g: float) -> bool:
        """A step is sustained: the last `sustain` of the window is elevated too (a burst
        that already ended leaves the long window high, but not its tail)."""
        first = nowm - _minutes(self.cfg.step.sustain) + 1
        mu = s.expected(first, nowm, frac, offset)
        return mu is not None and s.count(first, nowm) >= self.cfg.step.min_ratio * mu * g

    def _paused(self, signal: Signal, f: _Finding, nowm: int, window: int) -> bool:
        """In a maintenance window for the series, or for its main contributor (an
        announced carrier maintenance shows as category overall, carrier on top)."""
        assert self.paused is not None
        if self.paused(signal.labels, signal.at):
            return True
        rich = self._enrich(signal, f, nowm, window)
        if not rich.contributors:
            return False
        top = rich.contributors[0]
        return self.paused({**signal.labels, top.dimension: top.value}, signal.at)

    def _sustained(self, steps: dict[SeriesKey, _Finding], now: datetime
                   ) -> dict[SeriesKey, _Finding]:
        for key in [k for k in self.step_since if k not in steps]:
            del self.step_since[key]
        sustain = self.cfg.step.sustain
        out = {}
        for key, f in steps.items():
            since = self.step_since.setdefault(key, now)
            if now - since >= sustain:
                out[key] = f
        return out

    def _accept_steps(self, now: datetime, nowm: int, offset: int) -> None:
        """A shift that has lasted `accept_after` is the new normal: the series' baseline
        is rescaled to the last step window, and the episode resolves once that holds."""
        for ep in list(self.episodes.items.values()):
            if ep.kind not in (SPIKE, STEP) or now - ep.started_at < self.cfg.step.accept_after:
                continue
            key = _series_key(dict(ep.labels))
            s = self.series.get(key)
            if s is None or ep.id in self.accepted:
                continue
            first = nowm - self.w_step + 1
            mu = s.expected(first, nowm, _fraction(now), offset)
            n = s.count(first, nowm)
            self.accepted.add(ep.id)
            if mu and n > mu:
                s.baseline.scale *= n / mu
                self.dirty.add(key)
                self.step_since.pop(key, None)

    def _traffic(self, key: SeriesKey, first: int, last: int, frac: float, offset: int,
                 learn_until: int, keep_from: int, n: int, raw: float) -> float:
        _, d, v = key
        others_n, others_mu = 0.0, 0.0
        all_s = self._catch_up((ALL, d, v), learn_until, offset, keep_from)
        if all_s is not None:
            mu_all = all_s.expected(first, last, frac, offset)
            if mu_all is not None:
                others_n = all_s.count(first, last) - n
                others_mu = max(mu_all - raw, 0.0)
        orders_n = orders_mu = None
        ord_s = self._catch_up((ORDERS, d, v), learn_until, offset, keep_from)
        if ord_s is not None:
            mu_o = ord_s.expected(first, last, frac, offset)
            if mu_o is not None:
                orders_n, orders_mu = float(ord_s.count(first, last)), mu_o
        g = traffic_factor(others_n, others_mu, orders_n, orders_mu)
        if d:
            # a slice with little history of its own: expect the platform's usual mix of
            # whatever else it cancels now (a promotion burst of one distributor)
            share = self._usual_share(key[0], first, last, frac, offset)
            if share is not None and others_n > 0 and raw > 0:
                g = max(g, others_n * share / (1 - share) / raw)
        return g

    def _usual_share(self, category: str, first: int, last: int, frac: float,
                     offset: int) -> float | None:
        c = self.series.get((category, "", ""))
        a = self.series.get((ALL, "", ""))
        if c is None or a is None:
            return None
        mu_c = c.expected(first, last, frac, offset)
        mu_a = a.expected(first, last, frac, offset)
        if not mu_c or not mu_a:
            return None
        return min(mu_c / mu_a, 0.95)

    def _choose(self, found: Mapping[SeriesKey, _Finding], first: int) -> set[SeriesKey]:
        """One signal per incident: a category's overall series wins over its slices;
        otherwise the strongest slice, and further slices only if their events are
        mostly not the chosen ones' (the product that is also an upstream's only)."""
        chosen: set[SeriesKey] = set()
        by_cat: dict[str, list[SeriesKey]] = {}
        for key in found:
            by_cat.setdefault(key[0], []).append(key)
        for cat, keys in by_cat.items():
            if (cat, "", "") in found:
                chosen.add((cat, "", ""))
                continue
            keys.sort(key=lambda k: found[k].test.p)
            events = self.recent.window(cat, first)
            picked: list[SeriesKey] = [k for k in self._alerting if k[0] == cat]
            for key in keys:
                mine = [e for e in events if self._matches(e, key)]
                if any(sum(1 for e in mine if self._matches(e, o)) >= 0.5 * max(len(mine), 1)
                       for o in picked):
                    continue
                picked.append(key)
            chosen.update(picked)
        return chosen

    def _matches(self, e: RecentEvent, key: SeriesKey) -> bool:
        _, d, v = key
        if not d:
            return True
        raw = e.dims[self._dim_index[d]]
        if v == OTHER:
            return bool(raw) and raw not in self.topk[d].admitted
        return raw == v

    def _normals(self, kind: str, found: Mapping[SeriesKey, _Finding],
                 abnormal: set[tuple[str, SeriesKey]], now: datetime, window: int
                 ) -> list[Transition]:
        out = []
        resolve_after = self.cfg.resolve_after or timedelta(minutes=window)
        for ekey, ep in list(self.episodes.items.items()):
            if ep.kind != kind:
                continue
            key = _series_key(dict(ep.labels))
            if key in found:
                continue
            if (kind, key) in abnormal:
                self.episodes.still_abnormal(ekey)
                continue
            t = self.episodes.normal(ekey, now, resolve_after)
            if t:
                out.append(t)
        return out

    def _signal(self, kind: str, key: SeriesKey, f: _Finding, now: datetime,
                window: int) -> Signal:
        t = f.test
        severity = "critical" if t.ratio >= 10 and t.observed >= 50 else "warning"
        return Signal(kind, labels_of(key), now, True, float(t.observed), round(t.expected, 2),
                      window * 60.0, severity, round(score(t.p), 1))

    def _enrich(self, sig: Signal, f: _Finding, nowm: int, window: int) -> Signal:
        key = f.key
        cat, d, _ = key
        first = nowm - window + 1
        events = [e for e in self.recent.window(cat, first) if self._matches(e, key)]
        overall = self.series.get((cat, "", ""))
        frac_now = 1.0
        offset = self._offset(sig.at)
        mu_overall = overall.expected(first, nowm, frac_now, offset) if overall else None
        factor = sig.expected / mu_overall if mu_overall else 0.0

        def expected_for(dim: str, value: str) -> float:
            tk = self.topk[dim]
            sv = tk.series_value(value)
            s = self.series.get((cat, dim, sv))
            mu = s.expected(first, nowm, frac_now, offset) if s else None
            if mu is None:
                return 0.0
            if sv == OTHER:
                mu *= tk.pooled_share(value)
            return mu * factor

        contribs = contributors(events, self.dims, d, sig.observed, sig.expected, expected_for)
        top = contribs[0] if contribs else None
        what = f"{cat}" + (f" ({d} {key[2]})" if d else "")
        text = (f"{sig.kind}: {what} {sig.observed:g} in {window} min, expected "
                f"{sig.expected:g}")
        if top:
            text += "; " + "; ".join(describe(c) for c in contribs)
        return replace(sig, contributors=contribs, samples=samples(events, self.dims, top),
                       summary=text)

    # --- new templates --------------------------------------------------------------------

    def _new_templates(self, now: datetime, nowm: int, expired: list[str]) -> list[Transition]:
        cfg = self.cfg.templates
        out: list[Transition] = []
        if not cfg.enabled:
            return out
        live: set[EpisodeKey] = set()
        if self.templates.warm(nowm, _minutes(cfg.learn_for)):
            # new wordings of a category already alerting belong to that alert
            busy = {k[0] for k in self._alerting} | {
                c for c, t in self.spike_ended.items()
                if now - t < timedelta(minutes=self.templates.window)}
            for f in self.templates.fresh.values():
                if len(f.minutes) < cfg.min_count:
                    continue
                category = f.categories.most_common(1)[0][0]
                if category in busy:
                    continue
                labels = {"category": category, "template": mask_text(f.template[:80])}
                sig = Signal(NEW_TEMPLATE, labels, now, True, float(len(f.minutes)), 0.0,
                             (nowm - f.first_seen + 1) * 60.0, "warning",
                             float(len(f.minutes)))
                live.add((NEW_TEMPLATE, tuple(sorted(labels.items()))))
                if self.paused and self._template_paused(sig, f):
                    continue
                t = self.episodes.fire(sig, now, lambda s, f=f: self._template_detail(s, f))
                if t:
                    out.append(t)
        resolve_after = self.cfg.resolve_after or timedelta(minutes=_minutes(cfg.window))
        for ekey, ep in list(self.episodes.items.items()):
            if ep.kind == NEW_TEMPLATE and ekey not in live:
                t = self.episodes.normal(ekey, now, resolve_after, observed=0.0)
                if t:
                    out.append(t)
        return out

    def _template_paused(self, sig: Signal, f: Fresh) -> bool:
        assert self.paused is not None
        rich = self._template_detail(sig, f)
        extra = {c.dimension: c.value for c in rich.contributors[:1]}
        return self.paused({**sig.labels, **extra}, sig.at)

    def _template_detail(self, sig: Signal, f: Fresh) -> Signal:
        events = [RecentEvent(m, dims, None) for m, dims in zip(f.minutes, f.dims, strict=True)]
        contribs = contributors(events, self.dims, "", sig.observed, 0.0, lambda d, v: 0.0)
        spread = {}
        for i, d in enumerate(self.dims):
            spread[d] = len({e.dims[i] for e in events if e.dims[i]})
        text = (f"new reason template ({sig.labels['category']}): {sig.observed:g} since "
                f"first seen; " + ", ".join(f"{n} {d} values" for d, n in spread.items() if n))
        if sig.labels["category"] == "operator_error" and spread.get("distributor", 0) >= 5:
            text += ("; the same template across many distributors at once points at our "
                     "own form or parser (system_fault)")
        examples = tuple(dict.fromkeys(mask_text(r[:160]) for r in f.reasons))[:3]
        return replace(sig, contributors=contribs, samples=examples, summary=text)

    # --- silence --------------------------------------------------------------------------

    def _silences(self, now: datetime, nowm: int, offset: int) -> list[Transition]:
        cfg = self.cfg.silence
        out: list[Transition] = []
        if not cfg.enabled:
            return out
        min_gap = _minutes(cfg.min_gap)
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

    def _track_alerting(self, t: Transition) -> None:
        """Series with an open spike/step episode are frozen (their baseline does not learn)."""
        if t.signal.kind not in (SPIKE, STEP):
            return
        key = _series_key(t.signal.labels)
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
        return {(ep.kind, _series_key(dict(ep.labels))) for ep in self.episodes.items.values()}

    def restore_alerting(self) -> None:
        """Rebuild the frozen set from the open episodes (after loading state)."""
        self._alerting.clear()
        for ep in self.episodes.items.values():
            if ep.kind in (SPIKE, STEP):
                key = _series_key(dict(ep.labels))
                self._alerting[key] = self._alerting.get(key, 0) + 1


def _ekey(kind: str, key: SeriesKey) -> EpisodeKey:
    return (kind, tuple(sorted(labels_of(key).items())))


def _series_key(labels: Mapping[str, str]) -> SeriesKey:
    cat = labels.get("category", "")
    rest = [(k, v) for k, v in labels.items() if k != "category"]
    if not rest:
        return (cat, "", "")
    d, v = rest[0]
    return (cat, d, v)
