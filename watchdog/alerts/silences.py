"""Silences: parsing `name=value` matchers and deciding whether an alert is silenced."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from .values import Matcher, Silence

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def parse_matcher(text: str) -> Matcher:
    """`category=system_fault`, `carrier!=联通`, `product=~"5G.*"` -> Matcher."""
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a matcher; write name=value (also !=, =~, !~)")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression: {exc}") from exc
    return Matcher(name, op, value)  # type: ignore[arg-type]


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence],
                now: datetime) -> Silence | None:
    """The first active silence matching `labels`, if any."""
    for s in silences:
        if s.active(now) and s.matches(labels):
            return s
    return None
