"""Incidents to inject into the simulated stream, each with its ground-truth category.

An incident acts through up to three hooks the generator calls:
- `inject`: extra orders created in one hour bucket (outages, signature breaks, abuse);
- `rewrite`: change a base order's plan, e.g. cancel it early (pool exhausted, regional
  pause, takedown, policy change, ops bulk action); an empty plan drops the order;
- `hold`: delay when a write becomes visible (an upstream whose callbacks stop).
Base orders keep their own random streams, so adding an incident changes only the orders
it touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from .catalog import CARRIERS, PROVINCES, UPSTREAMS
from .clock import MINUTE, to_sim
from .lifecycle import (
    CANCELLED,
    OPEN_FAILED,
    REJECTED,
    SHIPPED,
    Step,
    cut,
    in_flight,
    normal_plan,
    quick_cancel_plan,
)
from .world import Draft, World

Planned = tuple[Draft, list[Step]]
NewId = Callable[[], int]


class Incident:
    """Base class: every hook does nothing."""

    __slots__ = ()

    def inject(self, world: World, lo: int, hi: int, rng: Random, new_id: NewId) -> list[Planned]:
        return []

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        """A replacement plan for a base order, or None to leave it alone."""
        return None

    def rewrites_only(self) -> str | None:
        """The one distributor whose orders `rewrite` can touch, or None for any: the
        generator then asks it about that distributor's orders alone."""
        return None

    def hold(self, draft: Draft, commit: int) -> int:
        return commit


def _window(start: datetime, duration: timedelta | None) -> tuple[int, int]:
    s = to_sim(start)
    if duration is None:
        return s, 2**62
    return s, s + int(duration.total_seconds())


def _poisson_times(rng: Random, lo: int, hi: int, per_min: float) -> list[int]:
    out, t = [], float(lo)
    while per_min > 0:
        t += rng.expovariate(per_min / MINUTE)
        if t >= hi:
            break
        out.append(int(t))
    return out


def _overlap(lo: int, hi: int, window: tuple[int, int]) -> tuple[int, int]:
    return max(lo, window[0]), min(hi, window[1])


def _status_at(plan: list[Step], at: int) -> str:
    last = plan[0].status
    for step in plan:
        if step.at > at:
            break
        last = step.status
    return last


def _check(value: str, known: tuple[str, ...], what: str) -> None:
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(known)}")


@dataclass(frozen=True, slots=True)
class CarrierOutage(Incident):
    """One carrier's BSS/CRM fails: system_fault cancellations at `rate_per_min`."""

    carrier: str
    start: datetime
    duration: timedelta
    rate_per_min: float = 18.0

    def __post_init__(self) -> None:
        _check(self.carrier, CARRIERS, "carrier")

    def inject(self, world: World, lo: int, hi: int, rng: Random, new_id: NewId) -> list[Planned]:
        a, b = _overlap(lo, hi, _window(self.start, self.duration))
        out = []
        for created in _poisson_times(rng, a, b, self.rate_per_min):
            draft = world.draft(rng, created, new_id(), carrier=self.carrier)
            stage = rng.choice(("carrier", "opening"))
            status = OPEN_FAILED if stage == "opening" and rng.random() < 0.4 else CANCELLED
            at = created + int(rng.uniform(30, 150))
            out.append((draft, quick_cancel_plan(created, at, "outage", stage, status)))
        return out


@dataclass(frozen=True, slots=True)
class UpstreamSignatureBreak(Incident):
    """An upstream's key expired or its payload changed: 签名验证失败 on its orders."""

    upstream: str
    start: datetime
    duration: timedelta
    rate_per_min: float = 10.0

    def __post_init__(self) -> None:
        _check(self.upstream, tuple(u.name for u in UPSTREAMS), "upstream")

    def inject(self, world: World, lo: int, hi: int, rng: Random, new_id: NewId) -> list[Planned]:
        a, b = _overlap(lo, hi, _window(self.start, self.duration))
        out = []
        for created in _poisson_times(rng, a, b, self.rate_per_min):
            draft = world.draft(rng, created, new_id(), upstream=self.upstream)
            at = created + int(rng.uniform(5, 120))
            out.append((draft, quick_cancel_plan(created, at, "signature")))
        return out


@dataclass(frozen=True, slots=True)
class UpstreamSilence(Incident):
    """An upstream's callbacks stop; its status writes arrive in a burst when they resume."""

    upstream: str
    start: datetime
    duration: timedelta
    flush: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        _check(self.upstream, tuple(u.name for u in UPSTREAMS), "upstream")

    def hold(self, draft: Draft, commit: int) -> int:
        a, b = _window(self.start, self.duration)
        if draft.order.upstream != self.upstream or not a <= commit < b:
            return commit
        # keep the original order of writes inside the flush
        return b + int((commit - a) / (b - a) * self.flush.total_seconds())


@dataclass(frozen=True, slots=True)
class DistributorAbuse(Incident):
    """One distributor floods orders that mostly end as compliance or duplicate cancels."""

    distributor: str
    start: datetime
    duration: timedelta
    rate_per_min: float = 3.0
    cancel_share: float = 0.85

    def inject(self, world: World, lo: int, hi: int, rng: Random, new_id: NewId) -> list[Planned]:
        rank = world.rank_of.get(self.distributor)
        if rank is None:
            raise ValueError(f"distributor {self.distributor!r} is not in the simulated population")
        a, b = _overlap(lo, hi, _window(self.start, self.duration))
        out = []
        for created in _poisson_times(rng, a, b, self.rate_per_min):
            draft = world.draft(rng, created, new_id(), distributor=rank)
            if rng.random() < self.cancel_share:
                kind = "abuse" if rng.random() < 0.65 else "duplicate"
                at = created + int(rng.uniform(20, 15 * MINUTE))
                plan = quick_cancel_plan(created, at, kind, rng.choice(("precheck", "review")))
            else:
                plan = normal_plan(rng, created)
            out.append((draft, plan))
        return out


@dataclass(frozen=True, slots=True)
class NumberPoolExhausted(Incident):
    """One product's number pool runs dry: orders fail when they reach the carrier."""

    product: str
    start: datetime
    duration: timedelta
    share: float = 0.9

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        if draft.order.product != self.product:
            return None
        a, b = _window(self.start, self.duration)
        i = next((i for i, s in enumerate(plan) if s.status == "已提运营商"), None)
        if i is None or i + 1 == len(plan) or not a <= plan[i].at < b:
            return None
        if rng.random() >= self.share:
            return None
        # the number is reserved right after submission, before card opening starts
        reserve, after = plan[i].at, plan[i + 1].at
        at = reserve + max(1, min(int(rng.uniform(5, 120)), (after - reserve) // 2))
        status = OPEN_FAILED if rng.random() < 0.3 else CANCELLED
        return cut(plan, at, "number_pool", status, stage="carrier")


@dataclass(frozen=True, slots=True)
class RegionalPause(Incident):
    """Every order to one province is cancelled for a while (policy, or logistics)."""

    province: str
    start: datetime
    duration: timedelta
    category: str = "compliance"

    def __post_init__(self) -> None:
        _check(self.province, tuple(p.name for p in PROVINCES), "province")
        _check(self.category, ("compliance", "supply_shortage"), "category")

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        if draft.order.province != self.province:
            return None
        a, b = _window(self.start, self.duration)
        kind = "region_pause" if self.category == "compliance" else "region_logistics"
        if in_flight(plan, a):
            return cut(plan, a + int(rng.uniform(0, 45 * MINUTE)), kind)
        if a <= plan[0].at < b:
            return cut(plan, plan[0].at + int(rng.uniform(30, 10 * MINUTE)), kind)
        return None


@dataclass(frozen=True, slots=True)
class ProductTakedown(Incident):
    """A product is withdrawn: unshipped orders cancelled within `spread`, no new orders."""

    product: str
    at: datetime
    spread: timedelta = timedelta(minutes=45)

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        if draft.order.product != self.product:
            return None
        a = to_sim(self.at)
        if plan[0].at >= a:
            return []
        if in_flight(plan, a) and _status_at(plan, a) != SHIPPED:
            return cut(plan, a + int(rng.uniform(0, self.spread.total_seconds())), "takedown")
        return None


@dataclass(frozen=True, slots=True)
class PolicyChange(Incident):
    """A carrier (optionally in one province) starts rejecting a share of reviews, with new
    wordings; with no duration it stays."""

    carrier: str
    start: datetime
    duration: timedelta | None = None
    province: str | None = None
    share: float = 0.3

    def __post_init__(self) -> None:
        _check(self.carrier, CARRIERS, "carrier")

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        o = draft.order
        if o.carrier != self.carrier or self.province not in (None, o.province):
            return None
        a, b = _window(self.start, self.duration)
        reviewed = next((s.at for s in plan if s.status == "已提运营商"), None)
        if reviewed is None or not a <= reviewed < b or rng.random() >= self.share:
            return None
        return cut(plan, reviewed, "policy", REJECTED if rng.random() < 0.4 else CANCELLED)


@dataclass(frozen=True, slots=True)
class OpsBulkCancel(Incident):
    """Operations cancel a set of unshipped orders in one go (批量撤单, excluded)."""

    at: datetime
    distributor: str | None = None
    product: str | None = None

    def rewrites_only(self) -> str | None:
        return self.distributor

    def rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step] | None:
        o = draft.order
        if self.distributor not in (None, o.distributor_id):
            return None
        if self.product not in (None, o.product):
            return None
        a = to_sim(self.at)
        if not in_flight(plan, a) or _status_at(plan, a) == SHIPPED:
            return None
        return cut(plan, a + int(rng.uniform(0, 120)), "bulk")
