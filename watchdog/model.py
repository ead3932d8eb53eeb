"""The vocabulary shared by every stage: plain, immutable values.

Times are always timezone-aware UTC datetimes inside the process; the source converts
naive order-database timestamps on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

CATEGORIES: tuple[str, ...] = (
    "operator_error",
    "system_fault",
    "supply_shortage",
    "compliance",
    "customer_initiated",
    "duplicate",
    "unknown",
)
"""The built-in categories; rules may add more (e.g. `logistics`)."""

CATEGORY_NAMES_ZH: Mapping[str, str] = MappingProxyType({
    "operator_error": "操作错误",
    "system_fault": "系统故障",
    "supply_shortage": "资源不足",
    "compliance": "合规风控",
    "customer_initiated": "客户原因",
    "duplicate": "重复订单",
    "unknown": "未知原因",
    "exclude": "已排除",
})

UNKNOWN = "unknown"
EXCLUDE = "exclude"
"""Outcome of a rule that removes an order from monitoring (test orders, ops bulk actions)."""



@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Keyset position in the order table: (change timestamp, id).

    `order_id` keeps the database's own type (int or str) so that keyset comparisons
    in SQL use the column's ordering.
    """

    changed_at: datetime
    order_id: Any


@dataclass(frozen=True, slots=True)
class Cancellation:
    """One cancelled order as read from the order database.

    `reason` is the current reason text: for a JSON-timeline remark it is the content of
    the last entry, and `event_time` is that entry's time; otherwise `event_time` is
    `changed_at`.
    """

    order_id: str
    status: str
    reason: str | None
    event_time: datetime
    changed_at: datetime
    dimensions: Mapping[str, str] = field(default_factory=dict)
    raw_id: Any = None
    """The id in the database's own type, for the cursor."""

    @property
    def dedupe_key(self) -> tuple[str, str]:
        return (self.order_id, self.status)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.changed_at, self.raw_id if self.raw_id is not None else self.order_id)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules decided for one reason text."""

    category: str
    rule: str
    matched: tuple[str, ...] = ()
    """Ids of every rule that matched, winner first."""


@dataclass(frozen=True, slots=True)
class Classified:
    cancellation: Cancellation
    verdict: Verdict

    @property
    def category(self) -> str:
        return self.verdict.category

    @property
    def excluded(self) -> bool:
        return self.verdict.category == EXCLUDE


@dataclass(frozen=True, slots=True)
class OrderCount:
    """Newly created orders, per dimension values (for cancellation ratios), in the
    minute starting at `minute` (UTC) when it is known."""

    dimensions: Mapping[str, str]
    count: int
    minute: datetime | None = None
    count_by: bool = False
    """Counted by `source.count_orders_by` (e.g. per distributor), not by the label
    dimensions: the same orders again, grouped another way. Not for metrics or the
    ratio series; the detector's volume test reads them."""


@dataclass(frozen=True, slots=True)
class Contributor:
    """One dimension value's part in an anomaly (drill-down)."""

    dimension: str
    value: str
    observed: float
    expected: float
    share_of_excess: float


@dataclass(frozen=True, slots=True)
class Signal:
    """The detector's finding for one series at one evaluation.

    `labels` identify the series: always `category`, plus the dimension values that
    scope it (e.g. {"category": "system_fault", "carrier": "中国联通"}); `kind` is how it
    was found (spike, ratio, step, new_template, silence, volume). Signals are stateless
    observations; the alert lifecycle decides what to notify.
    """

    kind: str
    labels: Mapping[str, str]
    at: datetime
    firing: bool
    observed: float
    expected: float
    window_seconds: float
    severity: str = "warning"
    score: float = 0.0
    contributors: tuple[Contributor, ...] = ()
    samples: tuple[str, ...] = ()
    """A few reason texts, already masked."""
    summary: str = ""

    @property
    def category(self) -> str:
        return self.labels.get("category", UNKNOWN)
