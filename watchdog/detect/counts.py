"""Count tests of the detector: spikes and steps on every series, one signal per incident.

A mixin of `Detector` (its state lives there); split out because it is the largest job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from ..model import Signal
from .common import (
    NEW_TEMPLATE,
    SPIKE,
    STEP,
    Finding,
    ekey,
    is_cluster,
    minutes_of,
    series_key,
    window_start,
)
from .drilldown import contributors, describe, samples
from .episodes import Transition
from .recent import RecentEvent
from .series import ALL, ORDERS, OTHER, Series, SeriesKey, labels_of
from .spike import Thresholds, count_test, traffic_factor
from .stats import score


class CountTests:
    def _counts(self, now: datetime, nowm: int, offset: int, learn_until: int,
                keep_from: int) -> list[Transition]:
        cfg = self.cfg
        step_cfg = cfg.step
        step_th = Thresholds(step_cfg.min_count, step_cfg.min_ratio, 0.0, step_cfg.alpha)
        spikes: dict[SeriesKey, Finding] = {}
        steps: dict[SeriesKey, Finding] = {}
        abnormal: set[tuple[str, SeriesKey]] = set()
        # a slice whose new wordings alert as a cluster is watched like an alerting one:
        # the cluster stays open while the slice's count is still abnormal
        clustered = set(self._clustered())
        open_keys = self._alerting.keys() | clustered
        self._bursting = self._alerting_categories(now, nowm)
        # per category, once per step (thousands of series share a handful of them):
        # (threshold, slice threshold, the least count any test of an overall series /
        # of a slice needs), or None when the category is not tested
        per_cat: dict[str, tuple[Thresholds, Thresholds, int, int] | None] = {
            ALL: None, ORDERS: None}
        for key, s in self.series.items():
            cat = key[0]
            if cat in per_cat:
                got = per_cat[cat]
            else:
                got = per_cat[cat] = self._category_thresholds(cat, step_th)
            if got is None:
                continue
            th, cat_slice_th, least_overall, least_slice = got
            watched = key in open_keys
            slice_th = cat_slice_th if key[1] else None
            least = least_slice if key[1] else least_overall
            if s.total < least and not watched:
                continue
            self._catch_up(key, learn_until, offset, keep_from)
            for kind, window, t_th, found in (
                (SPIKE, self.w_spike, th, spikes),
                (SPIKE, self.w_slice, slice_th, spikes),
                (STEP, self.w_step, step_th, steps),
            ):
                if t_th is None or key in found or (kind == STEP and not step_cfg.enabled):
                    continue
                start = window_start(now, window)
                n = int(s.count_since(start, nowm))
                if n < t_th.min_count and not watched:
                    continue
                raw = s.expected_since(start, window, offset)
                if raw is None:
                    continue
                g = self._traffic(key, start, nowm, window, offset, learn_until, keep_from,
                                  n, raw)
                test = count_test(n, raw * g, s.baseline.dispersion, t_th)
                if (test.fires or test.abnormal) and window < self.w_traffic:
                    # a short window holds a handful of the scope's other events: judge
                    # how busy the scope is over the traffic window too (a promotion
                    # burst whose mix leant to one category for a few minutes)
                    mu = self._expected_over_traffic(key, s, now, nowm, offset, window,
                                                     raw, learn_until, keep_from)
                    if mu > raw * g:
                        test = count_test(n, mu, s.baseline.dispersion, t_th)
                if test.fires and kind == STEP and not self._tail_elevated(s, now, nowm,
                                                                           offset, g):
                    test = replace(test, fires=False)
                if test.fires:
                    found[key] = Finding(key, test, window if t_th is slice_th else 0)
                elif test.abnormal:
                    abnormal.add((kind, key))
        self._elevated = (spikes.keys() | {k for kind, k in abnormal if kind == SPIKE}) \
            & clustered
        steps = self._sustained(steps, now)
        # a shift inside a category already alerting as a spike or a cluster is that
        # alert's tail; so is one in the step window after it ended
        spiking = {k[0] for k in self._alerting if (SPIKE, k) in self._open_kinds()} | {
            k[0] for k in spikes} | {k[0] for k in clustered} | {
            c for c, t in self.spike_ended.items() if now - t < step_cfg.window}
        steps = {k: f for k, f in steps.items()
                 if k[0] not in spiking or self.episodes.is_open(ekey(STEP, k))}
        out: list[Transition] = []
        for kind, found, window in ((SPIKE, spikes, self.w_spike), (STEP, steps, self.w_step)):
            chosen, holders = self._choose(found, window_start(now, window), clustered)
            # an open alert holding a series that fires now is not over (its incident
            # crossed the threshold elsewhere first): it must not resolve meanwhile
            abnormal.update((kind, k) for k in holders)
            for pooled in [k for k in chosen if k[2] == OTHER]:
                if self.episodes.is_open(ekey(kind, pooled)):
                    continue
                named = self._named_for_pooled(found[pooled], now, nowm, offset, learn_until,
                                               keep_from, window)
                if named is not None:
                    chosen.discard(pooled)
                    chosen.add(named.key)
                    found[named.key] = named
            for key, f in found.items():
                ek = ekey(kind, key)
                if key not in chosen and not self.episodes.is_open(ek):
                    continue
                w = f.window or window
                signal = self._signal(kind, key, f, now, w)
                if self.paused and self._paused(signal, f, nowm, w):
                    self.episodes.still_abnormal(ek)
                    continue
                t = self.episodes.fire(signal, now,
                                       lambda sig, f=f, w=w: self._enrich(sig, f, nowm, w))
                if t:
                    out.append(t)
            out += self._normals(kind, found, abnormal, now, window)
        self._accept_steps(now, nowm, offset)
        return out

    def _category_thresholds(self, cat: str, step_th: Thresholds
                             ) -> tuple[Thresholds, Thresholds, int, int] | None:
        if not self.cfg.category_enabled(cat):
            return None
        th = self._threshold(cat)
        slice_th = self._slice_threshold(cat)
        return (th, slice_th, min(th.min_count, step_th.min_count),
                min(th.min_count, step_th.min_count, slice_th.min_count))

    def _tail_elevated(self, s: Series, now: datetime, nowm: int, offset: int,
                       g: float) -> bool:
        """A step is sustained: the last `sustain` of the window is elevated too (a burst
        that already ended leaves the long window high, but not its tail)."""
        minutes = minutes_of(self.cfg.step.sustain)
        start = window_start(now, minutes)
        mu = s.expected_since(start, minutes, offset)
        return mu is not None and s.count_since(start, nowm) >= self.cfg.step.min_ratio * mu * g

    def _paused(self, signal: Signal, f: Finding, nowm: int, window: int) -> bool:
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

    def _sustained(self, steps: dict[SeriesKey, Finding], now: datetime
                   ) -> dict[SeriesKey, Finding]:
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
            key = series_key(dict(ep.labels))
            s = self.series.get(key)
            if s is None or ep.id in self.accepted:
                continue
            start = window_start(now, self.w_step)
            mu = s.expected_since(start, self.w_step, offset)
            n = s.count_since(start, nowm)
            self.accepted.add(ep.id)
            if mu and n > mu:
                s.baseline.scale *= n / mu
                self.dirty.add(key)
                self.step_since.pop(key, None)

    def _traffic(self, key: SeriesKey, start: int, last: int, minutes: int, offset: int,
                 learn_until: int, keep_from: int, n: int, raw: float) -> float:
        cat, d, v = key
        others_n, others_mu = 0.0, 0.0
        all_s = self._catch_up((ALL, d, v), learn_until, offset, keep_from)
        if all_s is not None:
            mu_all = all_s.expected_since(start, minutes, offset)
            if mu_all is not None:
                others_n = all_s.count_since(start, last) - n
                others_mu = max(mu_all - raw, 0.0)
                # a category alerting on its own is an incident (or a new nightly
                # sweep), not traffic: it must not hide another category's outage
                for other in self._bursting:
                    if other == cat:
                        continue
                    o = self.series.get((other, d, v))
                    mu_o = o.expected_since(start, minutes, offset) if o else None
                    if mu_o is not None:
                        others_n -= o.count_since(start, last)
                        others_mu = max(others_mu - mu_o, 0.0)
        orders_n = orders_mu = None
        ord_s = self._catch_up((ORDERS, d, v), learn_until, offset, keep_from)
        if ord_s is not None:
            mu_o = ord_s.expected_since(start, minutes, offset)
            if mu_o is not None:
                orders_n, orders_mu = float(ord_s.count_since(start, last)), mu_o
        g = traffic_factor(others_n, others_mu, orders_n, orders_mu)
        if d:
            # a slice busier than usual: its extra cancellations need not have its usual
            # mix (a promotion burst of one distributor, the 09:00 release on one stage),
            # so expect the platform's usual share of the category among them, and the
            # slice's own among the rest (a stage of mostly operator errors, at its usual
            # traffic, expected the platform's share of faults: a break there alerted late)
            extra = others_n - others_mu
            share = self._usual_share(key[0], start, minutes, offset) \
                if extra > 0 and raw > 0 else None
            if share is not None:
                g = max(g, 1 + extra * share / (1 - share) / raw)
        return g

    def _alerting_categories(self, now: datetime, nowm: int) -> set[str]:
        """Categories alerting as a whole: on their overall series, or on a slice that
        holds most of their spike window (the pooled `other` distributors). Not for a
        smaller slice's alert: during an unlearned 09:00 release one product's
        compliance alert would take the release's main category out of every scope's
        traffic, and the rest of the release would alert slice by slice."""
        start = window_start(now, self.w_spike)
        out = set()
        for cat, d, v in self._alerting:
            whole = self.series.get((cat, "", ""))
            part = self.series.get((cat, d, v))
            if not d or (whole is not None and part is not None
                         and 2 * part.count_since(start, nowm)
                         >= max(whole.count_since(start, nowm), 1)):
                out.add(cat)
        return out

    def _expected_over_traffic(self, key: SeriesKey, s: Series, now: datetime, nowm: int,
                               offset: int, window: int, raw: float, learn_until: int,
                               keep_from: int) -> float:
        """The short window's expectation judged over the trailing `spike.traffic_window`:
        the traffic factor found there applied to the window's own baseline, or the
        adjusted expectation of the whole traffic window at its average rate, whichever is
        higher. A sparse slice's baseline can fall off a cliff at an hour boundary (an hour
        of the week learned from two empty Mondays); the average over the traffic window
        does not."""
        minutes = self.w_traffic
        start = window_start(now, minutes)
        raw_long = s.expected_since(start, minutes, offset)
        if raw_long is None:
            return raw
        n = int(s.count_since(start, nowm))
        g = self._traffic(key, start, nowm, minutes, offset, learn_until, keep_from, n,
                          raw_long)
        return g * max(raw, raw_long * window / minutes)

    def _usual_share(self, category: str, start: int, minutes: int,
                     offset: int) -> float | None:
        c = self.series.get((category, "", ""))
        a = self.series.get((ALL, "", ""))
        if c is None or a is None:
            return None
        mu_c = c.expected_since(start, minutes, offset)
        mu_a = a.expected_since(start, minutes, offset)
        if not mu_c or not mu_a:
            return None
        return min(mu_c / mu_a, 0.95)

    def _named_for_pooled(self, f: Finding, now: datetime, nowm: int, offset: int,
                          learn_until: int, keep_from: int, window: int) -> Finding | None:
        """A pooled `other` slice that fires for events mostly of one named value of
        another dimension (a carrier's outage over the long tail of distributors) alerts
        as that value's slice, with that slice's own count and expectation over the same
        window: `other` names no one, and routes match on the carrier. None when no named
        value holds at least half of the events, or when one pooled value does (a small
        distributor's form bug is that distributor's, which the drill-down names)."""
        cat, dim, _ = f.key
        w = f.window or window
        start = window_start(now, w)
        events = [e for e in self.recent.window(cat, start) if self._matches(e, f.key)]
        own = Counter(e.dims[self._dim_index[dim]] for e in events).most_common(1)
        if own and 2 * own[0][1] >= len(events):
            return None
        best: tuple[int, SeriesKey] | None = None
        for d, i in self._dim_index.items():
            tk = self.topk.get(d)
            if d == dim or tk is None:
                continue
            counts = Counter(e.dims[i] for e in events if e.dims[i] in tk.admitted)
            for v, n in counts.items():
                if 2 * n >= len(events) and (best is None or n > best[0]) \
                        and (cat, d, v) in self.series:
                    best = (n, (cat, d, v))
        if best is None:
            return None
        key = best[1]
        s = self.series[key]
        n = int(s.count_since(start, nowm))
        raw = s.expected_since(start, w, offset)
        if raw is None:
            return None
        g = self._traffic(key, start, nowm, w, offset, learn_until, keep_from, n, raw)
        th = self._slice_threshold(cat) if f.window else self._threshold(cat)
        test = count_test(n, raw * g, s.baseline.dispersion, th)
        return Finding(key, replace(test, fires=True), f.window)

    def _choose(self, found: Mapping[SeriesKey, Finding], start: int,
                clustered: set[SeriesKey]) -> tuple[set[SeriesKey], set[SeriesKey]]:
        """One signal per incident: a category's overall series wins over its slices;
        otherwise the strongest slice, and further slices only if their events are
        mostly not the chosen ones' (the product that is also an upstream's only). A
        pooled `other` slice comes after every named one: it names no one and no route
        matches it (an outage over the long tail of distributors is its carrier's).

        Returns the chosen keys, and the keys that held a series found now (an open
        alert's, or one chosen before it at this poll: found itself, so never resolving).
        """
        chosen: set[SeriesKey] = set()
        holders: set[SeriesKey] = set()
        by_cat: dict[str, list[SeriesKey]] = {}
        for key in found:
            by_cat.setdefault(key[0], []).append(key)
        for cat, keys in by_cat.items():
            events = self.recent.window(cat, start)
            parser = self._parser_templates(cat)
            if self._mostly_parser(events, parser):
                continue  # our own parser's fault, already alerting as such
            # a slice already alerting, or whose new wordings already alerted as a
            # cluster (the pool that ran dry), takes the spike of the same events
            its_clusters = [k for k in clustered if k[0] == cat]
            if (cat, "", "") in found:
                # ... and so does a slice already alerting as a spike (it crossed its
                # threshold a poll before the category did: the same incident)
                owners = its_clusters + [k for k in self._alerting if k[0] == cat and k[1]]
                held = [o for o in owners if self._holds_most(o, events)]
                holders.update(held)
                if not held:
                    chosen.add((cat, "", ""))
                continue
            keys.sort(key=lambda k: (k[2] == OTHER, found[k].test.p))
            picked: list[SeriesKey] = [k for k in self._alerting if k[0] == cat] + its_clusters
            # the events of each slice newly picked at this poll: one whose events are
            # mostly a later candidate's is the same incident, crossing a narrower slice
            # first (an outage of one carrier, most of it through one upstream); the
            # candidate is held by it, as it would be had it crossed a poll earlier
            theirs: dict[SeriesKey, list[RecentEvent]] = {}
            for key in keys:
                mine = [e for e in events if self._matches(e, key)]
                held = [o for o in picked if self._holds_most(o, mine)
                        or (o in theirs and self._holds_most(key, theirs[o]))]
                holders.update(held)
                if held or self._mostly_parser(mine, parser):
                    continue
                picked.append(key)
                theirs[key] = mine
            chosen.update(k for k in picked if k not in clustered or k in self._alerting)
        return chosen, holders

    def _holds_most(self, owner: SeriesKey, events: list[RecentEvent]) -> bool:
        """At least half of `events` are the incident `owner` alerts for: its slice's, or
        its alert's top contributor's (an outage of one carrier first crossed the
        threshold of one stage, and then spread over the carrier's other stages)."""
        top = self._top_contributor(owner)
        i = self._dim_index.get(top[0], -1) if top else -1
        held = sum(1 for e in events
                   if self._matches(e, owner) or (i >= 0 and e.dims[i] == top[1]))
        return held >= 0.5 * max(len(events), 1)

    def _top_contributor(self, key: SeriesKey) -> tuple[str, str] | None:
        """(dimension, value) on top of the drill-down of an open episode of `key`."""
        if not key[1]:
            return None
        labels = tuple(sorted(labels_of(key).items()))
        for kind in (SPIKE, STEP, NEW_TEMPLATE):
            ep = self.episodes.items.get((kind, labels))
            if ep is not None and ep.reported.contributors:
                top = ep.reported.contributors[0]
                return top.dimension, top.value
        return None

    def _clustered(self) -> list[SeriesKey]:
        """Slices with an open new-wording cluster episode."""
        out = []
        for ep in self.episodes.items.values():
            labels = dict(ep.labels)
            if is_cluster(ep.kind, labels):
                out.append(series_key(labels))
        return out

    def _matches(self, e: RecentEvent, key: SeriesKey) -> bool:
        _, d, v = key
        if not d:
            return True
        raw = e.dims[self._dim_index[d]]
        if v == OTHER:
            return bool(raw) and raw not in self.topk[d].admitted
        return raw == v

    def _normals(self, kind: str, found: Mapping[SeriesKey, Finding],
                 abnormal: set[tuple[str, SeriesKey]], now: datetime, window: int
                 ) -> list[Transition]:
        out = []
        resolve_after = self.cfg.resolve_after or timedelta(minutes=window)
        for ek, ep in list(self.episodes.items.items()):
            if ep.kind != kind:
                continue
            key = series_key(dict(ep.labels))
            if key in found:
                continue
            if (kind, key) in abnormal:
                self.episodes.still_abnormal(ek)
                continue
            t = self.episodes.normal(ek, now, resolve_after)
            if t:
                out.append(t)
        return out

    def _signal(self, kind: str, key: SeriesKey, f: Finding, now: datetime,
                window: int) -> Signal:
        t = f.test
        severity = "critical" if t.ratio >= 10 and t.observed >= 50 else "warning"
        return Signal(kind, labels_of(key), now, True, float(t.observed), round(t.expected, 2),
                      window * 60.0, severity, round(score(t.p), 1))

    def _enrich(self, sig: Signal, f: Finding, nowm: int, window: int) -> Signal:
        key = f.key
        cat, d, _ = key
        start = window_start(sig.at, window)
        events = [e for e in self.recent.window(cat, start) if self._matches(e, key)]
        overall = self.series.get((cat, "", ""))
        offset = self._offset(sig.at)
        mu_overall = overall.expected_since(start, window, offset) if overall else None
        factor = sig.expected / mu_overall if mu_overall else 0.0

        def expected_for(dim: str, value: str) -> float:
            tk = self.topk[dim]
            sv = tk.series_value(value)
            s = self.series.get((cat, dim, sv))
            mu = s.expected_since(start, window, offset) if s else None
            if mu is None:
                return 0.0
            if sv == OTHER:
                mu *= tk.pooled_share(value)
            return mu * factor

        # a pooled slice's own dimension is drilled into too: which of the pooled values
        contribs = contributors(events, self.dims, "" if key[2] == OTHER else d,
                                sig.observed, sig.expected, expected_for)
        top = contribs[0] if contribs else None
        what = f"{cat}" + (f" ({d} {key[2]})" if d else "")
        text = (f"{sig.kind}: {what} {sig.observed:g} in {window} min, expected "
                f"{sig.expected:g}")
        if top:
            text += "; " + "; ".join(describe(c) for c in contribs)
        return replace(sig, contributors=contribs, samples=samples(events, self.dims, top),
                       summary=text)
