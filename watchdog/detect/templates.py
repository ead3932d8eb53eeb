"""New reason templates: a normalised text never seen before, suddenly in volume.

A policy change or a new upstream error shows up as reason texts nobody has seen; a form
bug as one operator_error template across many distributors at once. Templates come from
`watchdog.rules.reason_template` (numbers and personal tokens folded), so they carry no
personal data. Known templates are remembered by a short hash, bounded by
`max_templates` (least recently seen forgotten first).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field


def template_hash(template: str) -> str:
    return hashlib.blake2b(template.encode(), digest_size=8).hexdigest()


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
    """hash -> minute last seen."""
    fresh: dict[str, Fresh] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def observe(self, template: str, category: str, minute: int, dims: tuple[str, ...],
                reason: str | None, learning: bool) -> None:
        if not template:
            return
        if self.learn_from is None:
            self.learn_from = minute
        h = template_hash(template)
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
