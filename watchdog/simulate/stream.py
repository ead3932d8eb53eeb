"""The simulated order stream: a pure, seeded function of simulated time.

`generate` works through hour buckets of order creation. Each bucket's orders are drawn
from a random stream keyed by (seed, hour) and each order from its own stream keyed by
(seed, hour, serial), so an hour's orders are the same whatever window is generated and
whichever incidents are injected (only the orders an incident touches change). An
order's writes span days; a heap merges them so that the output is in commit order.

All timestamps are naive Asia/Shanghai local time, as in the order table.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from random import Random

from .clock import DAY, HOUR, MINUTE, from_sim, to_sim, within
from .incidents import Incident, OpsBulkCancel
from .lifecycle import (
    BASE_CANCEL_PROBABILITY,
    CANCEL_KINDS,
    LATE_KINDS,
    Step,
    cancelled_plan,
    normal_plan,
    quick_cancel_plan,
)
from .reason_texts import KIND_CATEGORY
from .reasons import ReasonWriter
from .records import Order, OrderWrite
from .sampling import weighted_index
from .traffic import Traffic
from .world import Draft, World

__all__ = ["Order", "OrderWrite", "generate"]

IDS_PER_HOUR = 100_000
"""Order ids are hours-since-2000 * IDS_PER_HOUR + serial within the hour."""
LATE_COMMIT_PROBABILITY = 0.02
REPEAT_CALLBACK_PROBABILITY = 0.12
TEST_ORDERS_PER_WORK_HOUR = 0.6
BULK_ACTION_PROBABILITY = 0.5
"""Chance per day of an ops bulk cancellation (批量撤单) of one distributor's orders."""

_KINDS = [k for k, _ in CANCEL_KINDS]
_KIND_CUM = list(itertools.accumulate(w for _, w in CANCEL_KINDS))
_MASK64 = 2**64 - 1


def generate(
    start: datetime,
    end: datetime,
    *,
    seed: int = 0,
    incidents: Sequence[Incident] = (),
    daily_orders: int = 30_000,
    distributors: int = 2_000,
    lead_in: timedelta = timedelta(0),
    late_lead_in: timedelta = timedelta(0),
    routine: bool = True,
) -> Iterator[OrderWrite]:
    """Every write to the order table with start <= commit time < end, in commit order.

    Orders are created from `start - lead_in` on; a lead-in fills the pipeline so that the
    window starts in a steady state (orders from earlier days still being cancelled).
    `late_lead_in` reaches further back at a tenth of the cost: before the lead-in only
    the orders drawn to cancel late (`LATE_KINDS`: at delivery, or by the 7-day
    activation timeout) are made, so the window holds every night's activation sweep;
    each such order is the same as in a full stream, and the cancellations in the window
    are the full stream's, save the older orders an ops bulk action would catch.
    `routine` adds the platform's everyday noise that is not an incident: test orders and
    occasional ops bulk actions. Naive datetimes are Asia/Shanghai local time.
    """
    lo, hi = to_sim(start), to_sim(end)
    if hi <= lo:
        raise ValueError("end must be after start")
    if daily_orders < 1:
        raise ValueError("daily_orders must be at least 1")
    full = (lo - int(lead_in.total_seconds())) // HOUR * HOUR
    first = (full - int(late_lead_in.total_seconds())) // HOUR * HOUR
    world = World(seed, distributors)
    gen = _Generator(world, Traffic(daily_orders), seed, list(incidents), routine)
    if routine:
        gen.use(routine_incidents(seed, first, hi, world))
    heap: list[tuple[int, int, OrderWrite]] = []
    tie = itertools.count()
    bucket = first
    while True:
        nxt = bucket + HOUR
        if bucket < hi:
            for commit, write in gen.bucket(bucket, late_only=bucket < full):
                heapq.heappush(heap, (commit, next(tie), write))
        # writes of later buckets commit at or after their bucket's start
        while heap and (heap[0][0] < nxt or bucket >= hi):
            commit, _, write = heapq.heappop(heap)
            if commit >= hi:
                return
            if commit >= lo:
                yield write
        if bucket >= hi:
            return
        bucket = nxt


def routine_incidents(seed: int, lo: int, hi: int, world: World) -> list[Incident]:
    """The ops bulk actions of the days in [lo, hi): about one every other day."""
    out: list[Incident] = []
    for day in range(lo // DAY, hi // DAY + 1):
        rng = Random(f"bulk:{seed}:{day}")
        if rng.random() < BULK_ACTION_PROBABILITY and world.distributors > 1:
            at = day * DAY + int(rng.uniform(10 * HOUR, 18 * HOUR))
            rank = rng.randrange(min(20, world.distributors - 1), min(300, world.distributors))
            out.append(OpsBulkCancel(from_sim(at), distributor=world.distributor_ids[rank]))
    return out


class _Generator:
    """The per-call state of `generate`: read-only after construction."""

    def __init__(self, world: World, traffic: Traffic, seed: int,
                 incidents: list[Incident], routine: bool) -> None:
        self.world = world
        self.traffic = traffic
        self.seed = seed & _MASK64
        self.routine = routine
        self.incidents: list[Incident] = []
        self.rewriters: list[Incident] = []
        self.by_distributor: dict[str, list[Incident]] = {}
        """Rewriters of one distributor's orders (`Incident.rewrites_only`): a year of the
        demo's stream has ~180 ops bulk actions, and asking each of them about every
        order cost a fifth of generating it."""
        self.holders: list[Incident] = []
        self.use(incidents)

    def use(self, incidents: list[Incident]) -> None:
        # most incidents implement one hook; calling the no-op ones for every write of a
        # month of history would cost more than the incidents themselves
        self.incidents += incidents
        for i in incidents:
            if type(i).rewrite is Incident.rewrite:
                continue
            only = i.rewrites_only()
            if only is None:
                self.rewriters.append(i)
            else:
                self.by_distributor.setdefault(only, []).append(i)
        self.holders += [i for i in incidents if type(i).hold is not Incident.hold]

    def bucket(self, lo: int, late_only: bool = False) -> list[tuple[int, OrderWrite]]:
        """All writes of the orders created in the hour starting at lo (with `late_only`,
        of those drawn to cancel late only: see `generate`)."""
        hi = lo + HOUR
        hour = lo // HOUR
        world = self.world
        rng = Random((self.seed << 64) | (hour & _MASK64))
        arrivals = [(t, None) for t in self.traffic.arrivals(rng, lo, hi)]
        burst = self.traffic.burst(rng, lo, world.distributors, len(world.products))
        if burst:
            t = float(burst.start)
            while (t := t + rng.expovariate(burst.per_min / MINUTE)) < min(burst.end, hi):
                arrivals.append((int(t), burst))
            arrivals.sort(key=lambda a: a[0])

        serial = itertools.count()
        out: list[tuple[int, OrderWrite]] = []
        previous: Draft | None = None
        for created, promo in arrivals:
            k = next(serial)
            orng = Random((self.seed << 64) | ((hour & 0xFFFFFFFFFFF) << 20) | k)
            u = orng.random()
            kind: str | None = _KINDS[weighted_index(orng, _KIND_CUM)]
            if late_only and kind not in LATE_KINDS:
                continue  # its own random stream: skipping it changes no other order
            person, product, distributor, other_no = None, None, None, None
            if promo:
                product, distributor = promo.product_index, promo.distributor_rank
            if kind == "duplicate" and previous is not None and u < BASE_CANCEL_PROBABILITY:
                # the customer (or the distributor) submitted the same order again
                other_no = previous.order.order_no
                person = previous.person
                product = world.product_index(previous.order.product)
                distributor = world.rank_of[previous.order.distributor_id]
            draft = world.draft(orng, created, hour * IDS_PER_HOUR + k, product=product,
                                distributor=distributor, person=person)
            if u >= BASE_CANCEL_PROBABILITY * draft.product.reject_factor and other_no is None:
                kind = None
            plan = cancelled_plan(orng, created, kind) if kind else normal_plan(orng, created)
            plan = self._rewrite(draft, plan, orng)
            if plan:
                out += self._expand(draft, plan, orng, other_no)
            previous = draft

        if late_only:
            return out  # test orders and injected orders end within hours, not days
        if self.routine:
            out += self._test_orders(lo, hour, serial)
        for idx, incident in enumerate(self.incidents):
            irng = Random(f"incident:{self.seed}:{idx}:{hour}")
            for draft, plan in incident.inject(world, lo, hi, irng, lambda: hour * IDS_PER_HOUR
                                               + next(serial)):
                out += self._expand(draft, self._rewrite(draft, plan, irng) or plan, irng, None)
        return out

    def _rewrite(self, draft: Draft, plan: list[Step], rng: Random) -> list[Step]:
        own = self.by_distributor.get(draft.order.distributor_id)
        for incident in itertools.chain(self.rewriters, own) if own else self.rewriters:
            new = incident.rewrite(draft, plan, rng)
            if new is None:
                continue
            if not new:
                return []
            if new[-1].at < plan[-1].at:  # the earliest cancellation wins
                plan = new
        return plan

    def _test_orders(
        self, lo: int, hour: int, serial: Iterator[int]
    ) -> list[tuple[int, OrderWrite]]:
        rng = Random(f"test:{self.seed}:{hour}")
        rate = TEST_ORDERS_PER_WORK_HOUR if within(lo, 10 * HOUR, 19 * HOUR) else 0.02
        out: list[tuple[int, OrderWrite]] = []
        while rng.random() < rate / (1 + rate):
            k = next(serial)
            created = lo + rng.randrange(HOUR)
            draft = self.world.draft(rng, created, hour * IDS_PER_HOUR + k)
            order = replace(draft.order, order_no=f"TestOrder172{k:04d}", customer_name="测试")
            draft = replace(draft, order=order)
            at = created + int(rng.uniform(20, 600))
            out += self._expand(draft, quick_cancel_plan(created, at, "test"), rng, None)
        return out

    def _expand(self, draft: Draft, plan: list[Step], rng: Random,
                other_no: str | None) -> list[tuple[int, OrderWrite]]:
        """The writes that carry out a plan: one per step, late commits, repeated callbacks."""
        writer = ReasonWriter(rng, draft, other_no)
        out: list[tuple[int, OrderWrite]] = []
        last_commit = last_updated = plan[0].at
        order = draft.order
        for i, step in enumerate(plan):
            negative = step.kind is not None
            reason = writer.reason(step.kind) if step.kind else None
            remark = writer.remark(step.at, step.status, reason, negative)
            commit = updated = step.at
            if rng.random() < LATE_COMMIT_PROBABILITY:
                # the transaction committed after the row's timestamp was set
                limit = plan[i + 1].at - 1 if i + 1 < len(plan) else step.at + 300
                commit = max(step.at, min(step.at + int(rng.uniform(30, 300)), limit))
            held = self._hold(draft, commit)
            if held != commit:
                commit = updated = held
            commit, updated = max(commit, last_commit), max(updated, last_updated)
            truth = KIND_CATEGORY[step.kind] if step.kind else None
            commit_at = from_sim(commit)
            updated_at = commit_at if updated == commit else from_sim(updated)
            out.append((commit, OrderWrite(
                commit_at, i == 0, order, step.status, remark,
                step.stage if negative else None, updated_at, truth,
            )))
            last_commit, last_updated = commit, updated
            if negative and rng.random() < REPEAT_CALLBACK_PROBABILITY:
                out += self._repeats(draft, rng, commit, step, remark, truth)
        return out

    def _repeats(self, draft: Draft, rng: Random, t: int, step: Step, remark: str | None,
                 truth: str | None) -> list[tuple[int, OrderWrite]]:
        out = []
        for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
            t = self._hold(draft, t + int(min(12 * HOUR, rng.lognormvariate(6.8, 1.2))))
            stamp = from_sim(t)
            out.append((t, OrderWrite(stamp, False, draft.order, step.status, remark,
                                      step.stage, stamp, truth, repeat=True)))
        return out

    def _hold(self, draft: Draft, commit: int) -> int:
        for incident in self.holders:
            commit = incident.hold(draft, commit)
        return commit

