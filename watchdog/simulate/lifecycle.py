"""An order's lifecycle as a plan: the timed status steps its row will go through.

A plan is a list of Steps in time order; the last step is terminal (已激活 or a negative
status). Working hours shape the delays: manual review waits for the morning (hence the
09:00 burst of overnight results), couriers deliver by day, and timeout jobs run at night.
"""

from __future__ import annotations

from random import Random
from typing import NamedTuple

from .clock import DAY, HOUR, MINUTE, next_clock, within

SUBMITTED, REVIEW, AT_CARRIER, OPENING, SHIPPED, ACTIVATED = (
    "已提交", "待审核", "已提运营商", "开卡中", "已发货", "已激活",
)
CANCELLED, REJECTED, OPEN_FAILED = "已撤单", "审核不通过", "开卡失败"

STAGE_OF: dict[str, str] = {
    SUBMITTED: "precheck", REVIEW: "review", AT_CARRIER: "carrier", OPENING: "opening",
    SHIPPED: "delivery",
}
"""Stage at cancellation, from the last status the order reached."""

BASE_CANCEL_PROBABILITY = 0.2
CANCEL_KINDS: tuple[tuple[str, float], ...] = (
    ("compliance", 28), ("compliance_carrier", 7), ("operator_error", 25),
    ("customer", 8), ("customer_refused", 4), ("timeout_unpaid", 3), ("timeout_inactive", 5),
    ("duplicate", 7), ("supply_stock", 3), ("supply_logistics", 2), ("system", 2),
    ("opaque", 4),
)
"""Mix of base cancellations by kind (see reason_texts.KIND_CATEGORY for categories)."""
LATE_KINDS = frozenset({"timeout_inactive", "customer_refused", "supply_logistics"})
"""The kinds whose cancellation can come days after the order: at or after delivery
(`cancelled_plan`), up to 7 days after it for the activation timeout. Every other kind
cancels before the order ships, within about two days."""

REVIEW_DESK = (9 * HOUR, 21 * HOUR + 30 * MINUTE)
COURIER_HOURS = (8 * HOUR, 20 * HOUR)
NIGHT_JOB_AT = 5 * MINUTE
ACTIVATION_WINDOW = 7 * DAY
UNPAID_WINDOW = DAY


class Step(NamedTuple):
    at: int
    status: str
    stage: str | None = None
    kind: str | None = None
    """Reason kind, for negative steps."""


def normal_plan(rng: Random, created: int) -> list[Step]:
    """The steps of an order that goes all the way to activation."""
    t1 = created + int(rng.uniform(5, 240))
    if within(t1, *REVIEW_DESK):
        t2 = t1 + int(min(4 * HOUR, rng.lognormvariate(7.3, 0.8)))  # median ~25 min
    else:
        t2 = next_clock(t1, REVIEW_DESK[0]) + int(rng.expovariate(1 / (20 * MINUTE)))
    t3 = t2 + int(min(3 * HOUR, rng.lognormvariate(6.8, 0.9)))  # median ~15 min
    t4 = t3 + int(min(2 * DAY, rng.lognormvariate(10.0, 0.6)))  # median ~6 h
    if not within(t4, *COURIER_HOURS):
        t4 = next_clock(t4, COURIER_HOURS[0]) + int(rng.uniform(0, 4 * HOUR))
    t5 = t4 + int(min(9 * DAY, rng.lognormvariate(12.3, 0.5)))  # median ~2.5 d
    if not within(t5, 8 * HOUR, 21 * HOUR):
        t5 = next_clock(t5, 9 * HOUR) + int(rng.uniform(0, 8 * HOUR))
    return [
        Step(created, SUBMITTED), Step(t1, REVIEW), Step(t2, AT_CARRIER), Step(t3, OPENING),
        Step(t4, SHIPPED), Step(t5, ACTIVATED),
    ]


def cut(plan: list[Step], at: int, kind: str, status: str = CANCELLED,
        stage: str | None = None) -> list[Step]:
    """The plan ended by a cancellation at `at` (steps from `at` on are dropped).

    The stage defaults to the stage of the last status reached.
    """
    kept = [s for s in plan if s.at < at] or plan[:1]
    at = max(at, kept[-1].at + 1)
    return [*kept, Step(at, status, stage or STAGE_OF.get(kept[-1].status, "precheck"), kind)]


def in_flight(plan: list[Step], at: int) -> bool:
    """Did the order exist and not yet reach its terminal step at `at`?"""
    return plan[0].at <= at < plan[-1].at


def night_job(after: int, rng: Random) -> int:
    """When the nightly timeout job (00:00-02:00) handles an order due at `after`.

    The job works through its backlog in the first half hour mostly, so cancellations
    pile up just after midnight.
    """
    spread = rng.expovariate(1 / (20 * MINUTE))
    return next_clock(after, NIGHT_JOB_AT) + int(min(spread, 110 * MINUTE))


def cancelled_plan(rng: Random, created: int, kind: str) -> list[Step]:
    """The plan of an order that the base stream cancels for a reason of `kind`."""
    plan = normal_plan(rng, created)
    t0, t1, t2, t3, t4, t5 = (s.at for s in plan)
    frac = rng.uniform(0.1, 0.95)

    def review_reject() -> list[Step]:
        status = REJECTED if rng.random() < 0.35 else CANCELLED
        return cut(plan, t2, kind, status)

    if kind in ("compliance", "operator_error"):
        if rng.random() < 0.4:
            return cut(plan, t0 + int(frac * (t1 - t0)), kind)
        return review_reject()
    if kind == "duplicate":
        if rng.random() < 0.7:
            return cut(plan, t0 + int(frac * (t1 - t0)), kind)
        return review_reject()
    if kind == "compliance_carrier":
        return cut(plan, t2 + int(frac * (t3 - t2)), kind)
    if kind == "customer":
        # customers change their mind early more often than late
        return cut(plan, t0 + int(frac * frac * (t4 - t0)), kind)
    if kind in ("customer_refused", "supply_logistics"):
        return cut(plan, t4 + int(frac * (t5 - t4)), kind)
    if kind == "timeout_unpaid":
        return [plan[0], Step(night_job(t0 + UNPAID_WINDOW, rng), CANCELLED, "payment", kind)]
    if kind == "timeout_inactive":
        at = night_job(t4 + ACTIVATION_WINDOW, rng)
        return [*plan[:5], Step(at, CANCELLED, "activation", kind)]
    if kind in ("supply_stock", "system"):
        if rng.random() < 0.5:
            return cut(plan, t2 + int(frac * (t3 - t2)), kind)
        status = OPEN_FAILED if rng.random() < 0.4 else CANCELLED
        return cut(plan, t3 + int(frac * (t4 - t3)), kind, status)
    # opaque reasons: anywhere before shipping
    return cut(plan, t0 + int(frac * (t4 - t0)), kind)


_STATUSES_BEFORE: dict[str, tuple[str, ...]] = {
    "precheck": (), "review": (REVIEW,), "carrier": (REVIEW, AT_CARRIER),
    "opening": (REVIEW, AT_CARRIER, OPENING),
}


def quick_cancel_plan(created: int, at: int, kind: str, stage: str = "precheck",
                      status: str = CANCELLED) -> list[Step]:
    """Created, rushed through the statuses before `stage`, cancelled at `at`.

    For test orders and for orders that incidents inject.
    """
    at = max(at, created + 4)
    between = _STATUSES_BEFORE[stage]
    gap = (at - created) // (len(between) + 1)
    steps = [Step(created, SUBMITTED)]
    steps += [Step(created + gap * (i + 1), s) for i, s in enumerate(between)]
    return [*steps, Step(at, status, stage, kind)]
