"""New-template detection of the detector: a never-seen reason wording in volume.

A mixin of `Detector` (its state lives there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ..model import Signal
from ..privacy import mask_text
from .common import NEW_TEMPLATE, is_cluster, minutes_of, series_key, window_start
from .drilldown import contributors
from .episodes import EpisodeKey, Transition, episode_key
from .recent import RecentEvent
from .templates import Fresh, reason_label, template_label

PARSER_SPREAD = 5
"""An operator_error template across at least this many distributors at once is not
their typing: it points at our own form or parser (DOMAIN.md incident 8)."""
PARSER_FAULT = "system_fault"


class TemplateTests:
    def _new_templates(self, now: datetime, nowm: int, expired: list[str]) -> list[Transition]:
        cfg = self.cfg.templates
        out: list[Transition] = []
        if not cfg.enabled:
            return out
        live: set[EpisodeKey] = set()
        if self.templates.warm(nowm, minutes_of(cfg.learn_for)):
            # new wordings of a category already alerting belong to that alert
            busy = {k[0] for k in self._alerting} | {
                c for c, t in self.spike_ended.items()
                if now - t < timedelta(minutes=self.templates.window)}
            open_clusters = self._open_clusters()
            abusers = set(self._volume_open()) if self.volumes is not None else set()
            for f in self._fresh_at_min_count():
                category = f.categories.most_common(1)[0][0]
                parser = self._parser_suspect(category, f)
                if not parser and (category in busy or category in open_clusters
                                   or self._mostly_abusers(category, f.dims, abusers)):
                    continue
                sig = self._template_signal(f, category, parser, nowm, now)
                live.add(episode_key(sig))
                if not parser:  # fired before the counts (_parser_faults)
                    out += self._fire_template(sig, f)
            out += self._clusters(now, nowm, busy, live, open_clusters, abusers)
        resolve_after = self.cfg.resolve_after or timedelta(minutes=minutes_of(cfg.window))
        for ekey, ep in list(self.episodes.items.items()):
            if ep.kind == NEW_TEMPLATE and ekey not in live:
                if self._still_in_volume(dict(ep.labels), now):
                    self.episodes.still_abnormal(ekey)
                    continue
                t = self.episodes.normal(ekey, now, resolve_after, observed=0.0)
                if t:
                    out.append(t)
        return out

    def _parser_faults(self, now: datetime, nowm: int) -> list[Transition]:
        """Our own parser's faults, tested before the counts: a form that breaks at once
        brings its wording's count and a spike of the rules' category at the same poll,
        and the spike's events are the parser fault's (counts.py folds them into it).
        `_new_templates` keeps their episodes live in its turn."""
        cfg = self.cfg.templates
        if not cfg.enabled or not self.templates.warm(nowm, minutes_of(cfg.learn_for)):
            return []
        out: list[Transition] = []
        for f in self._fresh_at_min_count():
            category = f.categories.most_common(1)[0][0]
            if self._parser_suspect(category, f):
                out += self._fire_template(self._template_signal(f, category, True, nowm, now), f)
        return out

    def _fresh_at_min_count(self) -> list[Fresh]:
        n = self.cfg.templates.min_count
        return [f for f in self.templates.fresh.values() if len(f.minutes) >= n]

    @staticmethod
    def _template_signal(f: Fresh, category: str, parser: bool, nowm: int,
                         now: datetime) -> Signal:
        labels = {"category": category, "template": template_label(f.template)}
        if parser:
            # routed as what it is, our own fault; the rules' verdict stays visible
            labels = {"category": PARSER_FAULT, "template": labels["template"],
                      "classified_as": category}
        return Signal(NEW_TEMPLATE, labels, now, True, float(len(f.minutes)), 0.0,
                      (nowm - f.first_seen + 1) * 60.0, "warning", float(len(f.minutes)))

    def _fire_template(self, sig: Signal, f: Fresh) -> list[Transition]:
        """Fire (or grow) the new-template episode of `f`, unless it is paused."""
        if self.paused and self._template_paused(sig, f):
            return []
        t = self.episodes.fire(sig, sig.at, lambda s: self._template_detail(s, f))
        return [t] if t else []

    def _open_clusters(self) -> dict[str, tuple[str, str]]:
        """category -> (dimension, value) of its open cluster episode."""
        return {cat: (d, v) for cat, d, v in self._clustered()}

    def _mostly_abusers(self, category: str, dims: Sequence[tuple[str, ...]],
                        abusers: set[str]) -> bool:
        """Are these events (their dimension values) mostly those of distributors alerting
        for their volume, in a category abuse leans to? Then they are that incident's:
        its new wordings, and the clusters they make on its carrier or products."""
        vol = self.cfg.volume
        i = self._dim_index.get(vol.dimension)
        if not abusers or i is None or category not in vol.lean_categories:
            return False
        return 2 * sum(1 for raw in dims if raw[i] in abusers) >= len(dims)

    def _clusters(self, now: datetime, nowm: int, busy: set[str], live: set[EpisodeKey],
                  open_clusters: dict[str, tuple[str, str]],
                  abusers: set[str]) -> list[Transition]:
        """Several never-seen wordings of one category on one product, carrier or
        distributor within minutes: a new kind of refusal starting there (a pool running
        dry, a policy change). Alone, each new wording is too rare to alert on; the same
        slice collecting different new wordings at once is not chance."""
        cfg = self.cfg.templates
        first = nowm - minutes_of(cfg.cluster_window) + 1
        groups: dict[tuple[str, str, str], list[tuple[int, tuple[str, ...], Fresh]]] = {}
        dims = [(self._dim_index[d], d) for d in cfg.cluster_dimensions if d in self._dim_index]
        for f in self.templates.fresh.values():
            category = f.categories.most_common(1)[0][0]
            if category in busy or category not in cfg.cluster_categories:
                continue
            for m, raw in zip(f.minutes, f.dims, strict=True):
                if m < first:
                    continue
                for i, d in dims:
                    if raw[i]:
                        groups.setdefault((category, d, raw[i]), []).append((m, raw, f))
        out: list[Transition] = []
        order = {d: i for i, (_, d) in enumerate(dims)}
        # one incident, one alert: per category the biggest cluster (ties: the earlier
        # dimension in cluster_dimensions), and none while one is open elsewhere
        taken: set[str] = set()
        for (category, d, v), evs in sorted(groups.items(),
                                            key=lambda kv: (-len(kv[1]), order[kv[0][1]])):
            if category in taken or open_clusters.get(category, (d, v)) != (d, v):
                continue
            if abusers and self._mostly_abusers(category, [raw for _, raw, _ in evs], abusers):
                continue
            wordings = {id(f) for _, _, f in evs}
            if len(evs) < cfg.cluster_min_count.get(category, cfg.default_cluster_min_count) \
                    or len(wordings) < 2:
                continue
            taken.add(category)
            labels = {"category": category, d: v}
            sig = Signal(NEW_TEMPLATE, labels, now, True, float(len(evs)), 0.0,
                         (nowm - first + 1) * 60.0, "warning", float(len(evs)))
            live.add((NEW_TEMPLATE, tuple(sorted(labels.items()))))
            if self.paused and self.paused({**labels, **self._shared(evs)}, now):
                continue
            t = self.episodes.fire(sig, now, lambda s, evs=evs: self._cluster_detail(s, evs))
            if t:
                out.append(t)
        return out

    def _shared(self, evs: list[tuple[int, tuple[str, ...], Fresh]]) -> dict[str, str]:
        """The dimension values every event of a cluster shares (an announced maintenance
        of their carrier covers a cluster found on one of its products)."""
        out = {}
        for i, d in enumerate(self.dims):
            values = {raw[i] for _, raw, _ in evs}
            if len(values) == 1 and "" not in values:
                out[d] = values.pop()
        return out

    def _cluster_detail(self, sig: Signal,
                        evs: list[tuple[int, tuple[str, ...], Fresh]]) -> Signal:
        events = [RecentEvent(m, raw, None) for m, raw, _ in evs]
        contribs = contributors(events, self.dims, "", sig.observed, 0.0, lambda d, v: 0.0)
        fresh = list({id(f): f for _, _, f in evs}.values())
        scope = ", ".join(f"{k} {v}" for k, v in sig.labels.items() if k != "category")
        text = (f"new reason templates ({sig.labels['category']}): {len(fresh)} wordings never "
                f"seen before, {sig.observed:g} cancellations on {scope} within "
                f"{sig.window_seconds / 60:g} min")
        examples = tuple(dict.fromkeys(mask_text(f.reasons[0][:160]) for f in fresh
                                       if f.reasons))[:3]
        return replace(sig, contributors=contribs, samples=examples, summary=text)

    def _still_in_volume(self, labels: dict[str, str], now: datetime) -> bool:
        """An alert whose wordings are known by now, while the incident goes on: a
        cluster's slice still cancels abnormally (the pool is still dry), a parser
        fault's template is still at `min_count` within the templates' window."""
        if is_cluster(NEW_TEMPLATE, labels):
            return series_key(labels) in self._elevated
        category = labels.get("classified_as")
        if category is None:
            return False
        cfg = self.cfg.templates
        events = self.recent.window(category, window_start(now, minutes_of(cfg.window)))
        return self._of_templates(events, {labels["template"]}) >= cfg.min_count

    def _parser_templates(self, category: str) -> set[str]:
        """The templates (as labelled) of the open parser-fault alerts of `category`."""
        return {dict(ep.labels)["template"] for ep in self.episodes.items.values()
                if ep.kind == NEW_TEMPLATE
                and dict(ep.labels).get("classified_as") == category}

    def _mostly_parser(self, events: Sequence[RecentEvent], wordings: set[str]) -> bool:
        """Are these events mostly of templates a parser-fault alert reports? Then a spike
        of their category is that alert's, filed under the rules' verdict."""
        return bool(wordings) and 2 * self._of_templates(events, wordings) >= max(len(events), 1)

    @staticmethod
    def _of_templates(events: Sequence[RecentEvent], labels: set[str]) -> int:
        """How many events have one of these templates (as labelled: an alert outlives
        its template's newness)."""
        return sum(1 for e in events if e.reason and reason_label(e.reason) in labels)

    def _parser_suspect(self, category: str, f: Fresh) -> bool:
        i = self._dim_index.get("distributor")
        if category != "operator_error" or i is None:
            return False
        return len({raw[i] for raw in f.dims if raw[i]}) >= PARSER_SPREAD

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
        if "classified_as" in sig.labels:
            text += (f"; classified {sig.labels['classified_as']}, but the same template "
                     f"across {spread.get('distributor', 0)} distributors at once points at "
                     "our own form or parser (system_fault)")
        examples = tuple(dict.fromkeys(mask_text(r[:160]) for r in f.reasons))[:3]
        return replace(sig, contributors=contribs, samples=examples, summary=text)
