"""New reason templates: a normalised text never seen before, suddenly in volume.

A policy change or a new upstream error shows up as reason texts nobody has seen; a form
bug as one operator_error template across many distributors at once. Templates come from
`watchdog.rules.reason_template` (numbers and personal tokens folded), so they carry no
personal data. Known templates are remembered by a short hash of their `wording`,
bounded by `max_templates` (least recently seen forgotten first).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from ..privacy import mask_text
from ..rules.normalise import PUNCTUATION, reason_template

TEMPLATE_KEY = "wording-1"
"""How known templates are keyed; a state database keyed otherwise is relearned."""

# A leading label the systems between carrier and platform wrap a text in: `【移动】`,
# `[cBSS]`, `失败原因:`, `上游反馈:` (up to 8 characters, no punctuation, before a colon;
# full-width marks are half-width in a template).
_LABEL = re.compile(r"^(?:【[^】]{1,12}】|\[[^\]]{1,12}\]|[^\s:,.;!?()<>【】\[\]。、]{1,8}:)\s*")
_EDGES = re.compile(rf"^[\s*{PUNCTUATION}]+|[\s*{PUNCTUATION}]+$")


def template_hash(template: str) -> str:
    return hashlib.blake2b(template.encode(), digest_size=8).hexdigest()


def template_label(template: str) -> str:
    """A template as an alert's label names it: masked, at most 80 characters."""
    return mask_text(template[:80])


@lru_cache(maxsize=8192)
def reason_label(reason: str) -> str:
    """The label of a reason's template. Cached: an open alert matches the events of a
    trailing window against its label at every poll, the same events poll after poll."""
    return template_label(reason_template(reason))


def wording(template: str, names: Iterable[str] = ()) -> str:
    """What a template says, without how it is wrapped: leading labels, trailing
    punctuation and the names of the event's own slice (its product, carrier, province)
    removed. `失败原因:联通审核不通过:该证件存在不良记录~` and `该证件存在不良记录` are one
    wording; so are `年龄超出联通王卡#元办理范围` and the same refusal for another product.
    A wording is new when a counterpart starts saying something new, not when a system in
    between adds a prefix or a product launches."""
    core = _unwrapped(template)
    named = {n for v in names if v for n in _names(v) if n in core}
    for name in sorted(named, key=len, reverse=True):  # a product before its carrier
        core = core.replace(name, "<name>")
    return core


@lru_cache(maxsize=8192)
def _unwrapped(template: str) -> str:
    core = template
    while (inner := _LABEL.sub("", core, count=1)) != core and _EDGES.sub("", inner):
        core = inner
    return _EDGES.sub("", core) or template


@lru_cache(maxsize=8192)
def _names(value: str) -> tuple[str, ...]:
    """A dimension value as a template spells it; a carrier also by its short name
    (`中国移动` is `移动` in most texts). Names of fewer than two letters are not
    replaced (a folded `D#` distributor id would match too much)."""
    spellings = {reason_template(value)}
    if value.startswith("中国") and len(value) > 3:
        spellings.add(reason_template(value[2:]))
    return tuple(n for n in spellings if len(n.replace("#", "")) >= 2)


@dataclass(slots=True)
class Fresh:
    """A template first seen recently: its events until it counts as known."""

    template: str
    first_seen: int
    categories: Counter[str] = field(default_factory=Counter)
    minutes: list[int] = field(default_factory=list)
    dims: list[tuple[str, ...]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


MAX_FRESH_EVENTS = 2000
MAX_FRESH = 2000


@dataclass
class Templates:
    window: int
    """Minutes a template stays new."""
    max_known: int
    learn_from: int | None = None
    """Minute learning started; alerts only `learn_for` minutes later."""
    known: dict[str, int] = field(default_factory=dict)
    """hash of a wording -> minute last seen."""
    purge: bool = False
    """The state database holds templates keyed otherwise (not TEMPLATE_KEY): its table is
    emptied at the next save."""
    fresh: dict[str, Fresh] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def observe(self, template: str, category: str, minute: int, dims: tuple[str, ...],
                reason: str | None, learning: bool) -> None:
        if not template:
            return
        if self.learn_from is None:
            self.learn_from = minute
        h = template_hash(wording(template, dims))
        if h in self.known:
            if minute > self.known[h]:
                self.known[h] = minute
                self.dirty.add(h)
            return
        f = self.fresh.get(h)
        if f is None:
            if learning or len(self.fresh) >= MAX_FRESH:
                self._know(h, minute)
                return
            f = self.fresh[h] = Fresh(template, minute)
        if len(f.minutes) < MAX_FRESH_EVENTS:
            f.categories[category] += 1
            f.minutes.append(minute)
            f.dims.append(dims)
            if reason and len(f.reasons) < 5:
                f.reasons.append(reason)

    def expire(self, now: int) -> list[str]:
        """Templates whose newness ran out become known; returns their hashes."""
        done = [h for h, f in self.fresh.items() if now - f.first_seen > self.window]
        for h in done:
            self._know(h, self.fresh.pop(h).minutes[-1])
        return done

    def _know(self, h: str, minute: int) -> None:
        self.known[h] = minute
        self.dirty.add(h)
        if len(self.known) > self.max_known * 1.1:
            keep = sorted(self.known, key=self.known.__getitem__, reverse=True)[:self.max_known]
            self.known = {k: self.known[k] for k in keep}

    def warm(self, now: int, learn_for: int) -> bool:
        return self.learn_from is not None and now - self.learn_from >= learn_for
