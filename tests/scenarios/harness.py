"""Scenario harness: simulated order streams through the detector, by replay and directly.

- `warm_detector` learns baselines from a few simulated days fed to the detector in
  learning mode (the compact warm-up the issue allows: no database in between).
- `run_clean` continues the same stream for days with one evaluation per simulated poll,
  through `DetectStage.after_poll` (the daemon's detection code), for false-alert counts.
- `run_replay` writes an incident window into a SQLite order database *as simulated time
  passes* and runs `watchdog.replay.replay` over it: the real pipeline (source, rules,
  dedupe, state) and detection, from the warm state.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from watchdog.config import Config
from watchdog.demo_db import create_order_db, orders_table
from watchdog.detect.episodes import Transition
from watchdog.detect.stage import DetectStage, build_detector
from watchdog.detect.state import save_detector
from watchdog.model import Cancellation, Classified, OrderCount
from watchdog.pipeline import PollReport
from watchdog.replay import replay
from watchdog.rules import RuleSet
from watchdog.simulate import Incident, OrderWrite, generate
from watchdog.simulate.records import NEGATIVE_STATUSES
from watchdog.store import StateStore
from watchdog.timeline import current_reason

ZONE = ZoneInfo("Asia/Shanghai")
SEED = 7
WARM_START = datetime(2024, 4, 22)  # local, a Monday; the clean run crosses the month end
WARM_DAYS = 4
T0 = WARM_START + timedelta(days=WARM_DAYS, hours=10)
"""Warm-up ends (and every scenario starts) on a Friday at 10:00."""
POLL = timedelta(seconds=60)
LEAD_IN = timedelta(days=10)
"""History generated before the warm-up and the clean run: long enough that the writes of
orders created earlier (deliveries, the 7-day activation timeouts at 00:05) are all
there. With one day, those timeouts appear only on day 8 of the clean run, as a new
nightly burst that alerted every night of a month."""
DIMENSIONS = {
    "carrier": ("carrier", True, 20),
    "upstream": ("upstream", True, 20),
    "province": ("province", True, 40),
    "product": ("product", False, 40),
    "distributor": ("distributor_id", False, 50),
    "stage": ("stage", False, 20),
}


def config(order_url: str, state_url: str, detect: dict[str, Any] | None = None,
           alerting: dict[str, Any] | None = None) -> Config:
    dims = {name: {"column": col, "label": label, "top_k": k}
            for name, (col, label, k) in DIMENSIONS.items()}
    return Config.model_validate({
        "source": {
            "url": order_url, "table": "orders",
            "columns": {"id": "id", "status": "status", "changed_at": "updated_at",
                        "reason": ["remark"], "created_at": "created_at"},
            "cancelled_statuses": sorted(NEGATIVE_STATUSES),
            "dimensions": dims, "count_orders": True,
            "count_orders_by": ["distributor"],
        },
        "state": {"url": state_url},
        "poll": {"interval": "60s"},
        "detect": {"top_k": {n: k for n, (_, _, k) in DIMENSIONS.items()}, **(detect or {})},
        "alerting": alerting or {},
    })


def local(t: datetime) -> datetime:
    return t.replace(tzinfo=ZONE)


# --- synthesized polls (no database): what the pipeline would hand the detector ---------

@dataclass
class Feed:
    """Turns OrderWrites into per-poll reports the way source + pipeline would."""

    rules: RuleSet
    seen: set[tuple[int, str]] = field(default_factory=set)

    def report(self, writes: Sequence[OrderWrite], since: datetime, until: datetime
               ) -> PollReport:
        fresh = []
        orders: dict[tuple[str, str, str, datetime], int] = {}
        by_distributor: dict[tuple[str, datetime], int] = {}
        for w in writes:
            if w.insert:
                # per minute of creation, as source.count_new_orders counts them: by the
                # label dimensions, and again by distributor (count_orders_by)
                o = w.order
                minute = local(o.created_at).astimezone(UTC).replace(second=0, microsecond=0)
                k = (o.carrier, o.upstream, o.province, minute)
                orders[k] = orders.get(k, 0) + 1
                kd = (o.distributor_id or "", minute)
                by_distributor[kd] = by_distributor.get(kd, 0) + 1
            if w.status not in NEGATIVE_STATUSES or (w.id, w.status) in self.seen:
                continue
            self.seen.add((w.id, w.status))
            fresh.append(self.classified(w))
        counts = tuple(OrderCount({"carrier": c, "upstream": u, "province": p}, n, m)
                       for (c, u, p, m), n in orders.items())
        counts += tuple(OrderCount({"distributor": d}, n, m, count_by=True)
                        for (d, m), n in by_distributor.items())
        return PollReport(len(fresh), len(fresh), 0, {}, 0, 1, True, None, tuple(fresh),
                          counts, since, until)

    def classified(self, w: OrderWrite) -> Classified:
        v = w.values()
        changed = local(w.updated_at).astimezone(UTC)
        reason, event_time = current_reason(w.remark, ZONE)
        dims = {name: str(v[col] or "") for name, (col, _, _) in DIMENSIONS.items()}
        c = Cancellation(str(w.id), w.status, reason, event_time or changed, changed, dims, w.id)
        return Classified(c, self.rules.classify(reason, {**dims, "status": w.status}))


def polls(writes: Iterable[OrderWrite], start: datetime, end: datetime, step: timedelta
          ) -> Iterator[tuple[datetime, datetime, list[OrderWrite]]]:
    """(since, now, writes committed in [since, now)) per simulated poll, UTC times."""
    it = iter(writes)
    pending = next(it, None)
    since = local(start).astimezone(UTC)
    stop = local(end).astimezone(UTC)
    while since < stop:
        now = min(since + step, stop)
        batch = []
        while pending is not None and local(pending.commit_at).astimezone(UTC) < now:
            batch.append(pending)
            pending = next(it, None)
        yield since, now, batch
        since = now


def warm_detector(cfg: Config, rules: RuleSet) -> tuple[DetectStage, Feed]:
    stage = DetectStage(build_detector(cfg), None, cfg)
    feed = Feed(rules)
    writes = generate(WARM_START, T0, seed=SEED, lead_in=LEAD_IN)
    for since, now, batch in polls(writes, WARM_START, T0, timedelta(minutes=15)):
        stage.after_poll(feed.report(batch, since, now), now, learning=True)
    return stage, feed


def save_state(stage: DetectStage, url: str) -> None:
    store = StateStore.open(url)
    try:
        save_detector(store.engine, stage.detector, full=True)
    finally:
        store.close()


def run_clean(stage: DetectStage, feed: Feed, days: float) -> list[Transition]:
    out: list[Transition] = []
    end = T0 + timedelta(days=days)
    writes = generate(T0, end, seed=SEED, lead_in=LEAD_IN)
    for since, now, batch in polls(writes, T0, end, POLL):
        out += stage.after_poll(feed.report(batch, since, now), now)
    return out


# --- replay over a live-fed order database ----------------------------------------------

class LiveOrders:
    """Writes each OrderWrite when simulated time reaches its commit time."""

    def __init__(self, url: str, writes: Iterable[OrderWrite]) -> None:
        self.engine = create_order_db(url)
        t = orders_table(sa.MetaData())
        self.insert = t.insert()
        self.update = t.update().where(t.c.id == sa.bindparam("w_id")).values(
            status=sa.bindparam("w_status"), remark=sa.bindparam("w_remark"),
            stage=sa.bindparam("w_stage"), updated_at=sa.bindparam("w_updated_at"))
        self.it = iter(writes)
        self.pending = next(self.it, None)
        self.inserted: set[int] = set()

    def until(self, now: datetime) -> None:
        rows, changes = [], []
        limit = now.astimezone(ZONE).replace(tzinfo=None)
        while self.pending is not None and self.pending.commit_at <= limit:
            w = self.pending
            if w.insert or w.id not in self.inserted:
                # the order was created before the generated window: its row appears now
                rows.append(w.values())
                self.inserted.add(w.id)
            else:
                changes.append({"w_id": w.id, "w_status": w.status, "w_remark": w.remark,
                                "w_stage": w.stage, "w_updated_at": w.updated_at})
            self.pending = next(self.it, None)
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self.insert, rows)
            if changes:
                conn.execute(self.update, changes)

    def close(self) -> None:
        self.engine.dispose()


def run_replay(tmp: Path, warm_state: Path, incidents: Sequence[Incident], hours: float,
               detect: dict[str, Any] | None = None, routine: bool = True,
               alerting: dict[str, Any] | None = None) -> list[Transition]:
    order_url = f"sqlite:///{tmp / 'orders.db'}"
    state = tmp / "state.db"
    shutil.copy(warm_state, state)
    end = T0 + timedelta(hours=hours)
    writes = generate(T0, end, seed=SEED, incidents=incidents, lead_in=timedelta(days=1),
                      routine=routine)
    live = LiveOrders(order_url, writes)
    out: list[Transition] = []
    try:
        cfg = config(order_url, f"sqlite:///{state}", detect, alerting)
        replay(cfg, local(T0), local(end), state_url=f"sqlite:///{state}", step=POLL,
               on_transition=out.append, before_poll=live.until)
    finally:
        live.close()
    return out
