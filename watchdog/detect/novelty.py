"""New-template detection of the detector: a never-seen reason wording in volume.

A mixin of `Detector` (its state lives there).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ..model import Signal
from ..privacy import mask_text
from .common import NEW_TEMPLATE, minutes_of
from .drilldown import contributors
from .episodes import EpisodeKey, Transition
from .recent import RecentEvent
from .templates import Fresh


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
        resolve_after = self.cfg.resolve_after or timedelta(minutes=minutes_of(cfg.window))
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
