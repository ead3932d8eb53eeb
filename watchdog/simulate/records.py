"""The generator's output values: an order's fixed facts and one write to its row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

NEGATIVE_STATUSES: frozenset[str] = frozenset({"已撤单", "审核不通过", "开卡失败"})
"""Terminal statuses the generator writes for orders that do not go through."""

ORDER_COLUMNS: tuple[str, ...] = (
    "id", "order_no", "status", "remark", "carrier", "upstream", "product", "distributor_id",
    "province", "city", "stage", "channel", "customer_name", "id_number", "phone", "address",
    "created_at", "updated_at",
)


@dataclass(frozen=True, slots=True)
class Order:
    """The facts of one order that never change after it is created."""

    id: int
    order_no: str
    carrier: str
    upstream: str
    product: str
    distributor_id: str
    province: str
    city: str
    channel: str
    customer_name: str
    id_number: str
    phone: str
    address: str
    created_at: datetime
    """Naive Asia/Shanghai local time, like every timestamp in the order table."""


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """One write to the orders table: the insert of a new row or an update of its status.

    `commit_at` is when the write becomes visible to readers; `updated_at` is the value
    written, which is earlier for a late commit. `truth` is the intended category of a
    cancellation (`exclude` for test orders and ops bulk actions, `unknown` when the reason
    text carries no cause); it is never written to the table.
    """

    commit_at: datetime
    insert: bool
    order: Order
    status: str
    remark: str | None
    stage: str | None
    updated_at: datetime
    truth: str | None = None
    repeat: bool = False
    """A repeated upstream callback: the same cancellation written again."""

    @property
    def id(self) -> int:
        return self.order.id

    @property
    def cancelled(self) -> bool:
        return self.status in NEGATIVE_STATUSES

    def values(self) -> dict[str, Any]:
        """The full row after this write, keyed by ORDER_COLUMNS."""
        o = self.order
        return {
            "id": o.id, "order_no": o.order_no, "status": self.status, "remark": self.remark,
            "carrier": o.carrier, "upstream": o.upstream, "product": o.product,
            "distributor_id": o.distributor_id, "province": o.province, "city": o.city,
            "stage": self.stage, "channel": o.channel, "customer_name": o.customer_name,
            "id_number": o.id_number, "phone": o.phone, "address": o.address,
            "created_at": o.created_at, "updated_at": self.updated_at,
        }
