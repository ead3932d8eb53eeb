"""Values of the alert lifecycle: alerts, groups, the notification log, silences.

All frozen; the lifecycle returns new values instead of changing them, and state.py
maps them to rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..model import Contributor

FIRING: Literal["firing"] = "firing"
RESOLVED: Literal["resolved"] = "resolved"
Status = Literal["firing", "resolved"]


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable id of an alert: a hash of its sorted labels (same on every replica)."""
    text = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    fingerprint: str
    labels: Mapping[str, str]
    status: Status
    starts_at: datetime
    ends_at: datetime | None
    last_seen: datetime
    kind: str = ""
    observed: float = 0.0
    expected: float = 0.0
    window_seconds: float = 0.0
    score: float = 0.0
    summary: str = ""
    contributors: tuple[Contributor, ...] = ()
    samples: tuple[str, ...] = ()

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    def details(self) -> dict[str, Any]:
        """The JSON-able part that is not identity or status."""
        return {
            "kind": self.kind, "observed": self.observed, "expected": self.expected,
            "window_seconds": self.window_seconds, "score": self.score,
            "summary": self.summary, "samples": list(self.samples),
            "contributors": [
                [c.dimension, c.value, c.observed, c.expected, c.share_of_excess]
                for c in self.contributors
            ],
        }

    @staticmethod
    def contributors_from(rows: Any) -> tuple[Contributor, ...]:
        return tuple(Contributor(str(d), str(v), float(o), float(e), float(s))
                     for d, v, o, e, s in rows or ())


@dataclass(frozen=True, slots=True)
class Group:
    """An aggregation group: the alerts of one route with equal group_by label values."""

    key: str
    route_id: str
    labels: Mapping[str, str]
    first_seen: datetime
    last_flush: datetime | None = None
    seq: int = 0
    """Number of flushes that produced notifications; part of the outbox's unique key."""


@dataclass(frozen=True, slots=True)
class NotifyLog:
    """What one channel was last told about one group (Alertmanager's nflog)."""

    group_key: str
    channel: str
    firing: frozenset[str]
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""
    created_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel about one group flush, as queued in the outbox."""

    group_key: str
    seq: int
    channel: str
    route_id: str
    status: Status
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    created_at: datetime
    fallback: str | None = None
    repeat_interval_s: float = 0.0
    group_since: datetime | None = None
    """The group's first_seen: with `seq`, names this flush uniquely across the group
    closing and opening again."""

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.firing)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if not a.firing)
