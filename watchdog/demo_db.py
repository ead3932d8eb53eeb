"""The demo order database: the `orders` table and a feeder that replays the simulated
stream into it, paced against the wall clock.

Timestamps are naive Asia/Shanghai local time, as in the MySQL DATETIME columns of real
platforms.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from .simulate import Incident, OrderWrite, generate
from .simulate.clock import ZONE, local_naive

BATCH_SIZE = 5_000
HORIZON = timedelta(days=365)
"""How far the feeder's stream reaches; generation is lazy, so this costs nothing."""
LEAD_IN = timedelta(days=2)
"""The demo's lead-in: two days of orders before its history, so that every night of the
history holds the nightly timeout sweep (it closes the unpaid orders of the day before
yesterday). Without it the first sweep came on the first night live, new, and alerted;
with one day, a demo started between 00:00 and 01:00 had seen two sweeps, not three,
and alerted on the third (bench/cold_start.py). Generating a day costs about 6 s."""
LATE_LEAD_IN = timedelta(days=8)
"""Eight more days before the lead-in, of the orders that cancel late only (see
`simulate.generate`): the nightly job that closes orders not activated 7 days after
delivery handles orders 7-10 days old, so every night of the history holds it too.
Without them it first ran live, on the demo's fourth night, and alerted on three nights.
A day of these costs about 0.4 s."""
MAX_WAIT = 0.25
"""Longest pause between checks of the stop event, in wall seconds."""


def orders_table(metadata: sa.MetaData, name: str = "orders") -> sa.Table:
    """The order table the demo writes and config.example.yaml maps.

    The id is BIGINT on server databases (generated ids exceed 2**31) and INTEGER on
    SQLite, where that makes it the rowid.
    """
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=False),
        sa.Column("order_no", sa.String(32)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("remark", sa.Text),
        sa.Column("carrier", sa.String(16)),
        sa.Column("upstream", sa.String(32)),
        sa.Column("product", sa.String(64)),
        sa.Column("distributor_id", sa.String(16)),
        sa.Column("province", sa.String(16)),
        sa.Column("city", sa.String(16)),
        sa.Column("stage", sa.String(16)),
        sa.Column("channel", sa.String(16)),
        sa.Column("customer_name", sa.String(32)),
        sa.Column("id_number", sa.String(18)),
        sa.Column("phone", sa.String(11)),
        sa.Column("address", sa.String(128)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Index(f"ix_{name}_updated_at_id", "updated_at", "id"),
        sa.Index(f"ix_{name}_created_at", "created_at"),
        mysql_charset="utf8mb4",
    )


def create_order_db(url: str, *, table: str = "orders") -> sa.Engine:
    """An engine on `url` with the order table and its indexes created (if missing).

    SQLite files are switched to WAL so that the daemon can read while the feeder writes.
    """
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    metadata = sa.MetaData()
    orders_table(metadata, table)
    metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # a commit survives a crash of the process without an fsync each (only a power cut
    # could lose the last ones): a fsync per batch was a tenth of the demo's backfill
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


@dataclass(frozen=True, slots=True)
class DemoStats:
    """What has been written so far."""

    inserts: int = 0
    updates: int = 0
    cancellations: int = 0
    """Writes of a negative status, repeats included."""
    repeats: int = 0
    truth: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Ground-truth category -> cancellations (repeats excluded)."""


class _Writer:
    """Applies batches of OrderWrites to one table with executemany."""

    def __init__(self, engine: sa.Engine, table: str, *,
                 adopt_before: datetime | None = None) -> None:
        self.engine = engine
        self.adopt_before = adopt_before
        """A stream generated with a lead-in starts at this time: an order created before
        it may have had its insert before the stream, so its first write in the stream,
        whichever it is, inserts its whole row."""
        self.adopted: set[int] = set()
        """Orders created before `adopt_before` written so far (a lead-in's worth: the
        set does not grow with the stream)."""
        t = orders_table(sa.MetaData(), table)
        self.insert = t.insert()
        self.update = (
            t.update()
            .where(t.c.id == sa.bindparam("w_id"))
            .values(status=sa.bindparam("w_status"), remark=sa.bindparam("w_remark"),
                    stage=sa.bindparam("w_stage"), updated_at=sa.bindparam("w_updated_at"))
        )

    def write(self, batch: Sequence[OrderWrite]) -> None:
        # inserts first: a row's insert always precedes its updates in commit order, and
        # executemany keeps the order of the updates themselves
        rows = []
        changes = []
        for w in batch:
            if self._inserts(w):
                rows.append(w.values())
            else:
                changes.append({"w_id": w.order.id, "w_status": w.status, "w_remark": w.remark,
                                "w_stage": w.stage, "w_updated_at": w.updated_at})
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self.insert, rows)
            if changes:
                conn.execute(self.update, changes)

    def _inserts(self, w: OrderWrite) -> bool:
        cut = self.adopt_before
        if cut is None or w.order.created_at >= cut:
            return w.insert
        first = w.order.id not in self.adopted
        self.adopted.add(w.order.id)
        return first


def write_all(engine: sa.Engine, writes: Iterable[OrderWrite], *, table: str = "orders",
              batch_size: int = BATCH_SIZE, adopt_before: datetime | None = None) -> int:
    """Write every write, one transaction per batch; returns the number of writes.
    `adopt_before`: the start of a stream generated with a lead-in (_Writer)."""
    writer = _Writer(engine, table, adopt_before=adopt_before)
    total = 0
    it = iter(writes)
    while batch := list(itertools.islice(it, batch_size)):
        writer.write(batch)
        total += len(batch)
    return total


class DemoFeeder:
    """Writes the simulated stream into the order table as simulated time comes due.

    sim_time = start + (wall - wall0) * speed, where wall0 is when `run` (or the first
    `pump`) starts. `backfill` first writes `history` worth of the past at once.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        speed: float = 60.0,
        seed: int = 0,
        start: datetime | None = None,
        history: timedelta = timedelta(0),
        incidents: Sequence[Incident] = (),
        table: str = "orders",
        daily_orders: int = 30_000,
        lead_in: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start is None:
            start = datetime.now(ZONE).replace(microsecond=0)
        self.start = local_naive(start)
        self.speed = speed
        self._clock = clock
        self._wall0: float | None = None
        # `lead_in` starts the history in a steady state (`LEAD_IN`, `LATE_LEAD_IN`):
        # orders created before it are still being cancelled (the nightly timeout sweeps
        # of earlier days' orders); their rows are written whole at their first write
        self.first = self.start - history
        """Where the history (the stream written) begins."""
        self._writer = _Writer(engine, table, adopt_before=self.first if lead_in else None)
        full, late = (LEAD_IN, LATE_LEAD_IN) if lead_in else (timedelta(0), timedelta(0))
        self._stream: Iterator[OrderWrite] = generate(
            self.first, self.start + HORIZON, seed=seed, incidents=incidents,
            daily_orders=daily_orders, lead_in=full, late_lead_in=late,
        )
        self._next: OrderWrite | None = next(self._stream, None)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._truth: Counter[str] = Counter()

    @property
    def stats(self) -> DemoStats:
        with self._lock:
            c = self._counts
            return DemoStats(c["inserts"], c["updates"], c["cancellations"], c["repeats"],
                             MappingProxyType(dict(self._truth)))

    def sim_now(self) -> datetime:
        """The simulated present (the start until the feeder begins to run)."""
        if self._wall0 is None:
            return self.start
        return self.start + timedelta(seconds=(self._clock() - self._wall0) * self.speed)

    def backfill(self, until: datetime | None = None,
                 on_batch: Callable[[datetime], None] | None = None) -> int:
        """Write the history before `until` (default: `start`) at once; returns the rows
        written. `on_batch` gets the simulated time written up to after each batch."""
        return self._write_due(self.start if until is None else until, inclusive=False,
                               on_batch=on_batch)

    def pump(self) -> int:
        """Write every write whose simulated time has come; returns how many."""
        if self._wall0 is None:
            self._wall0 = self._clock()
        return self._write_due(self.sim_now(), inclusive=True)

    @property
    def exhausted(self) -> bool:
        return self._next is None

    def run(self, stop: threading.Event) -> None:
        """Pump until `stop` is set (or the stream ends), waiting for the next due write."""
        while not stop.is_set() and not self.exhausted:
            self.pump()
            if self._next is None:
                return
            due = (self._next.commit_at - self.sim_now()).total_seconds() / self.speed
            stop.wait(min(MAX_WAIT, max(0.0, due)))

    def _write_due(self, until: datetime, *, inclusive: bool,
                   on_batch: Callable[[datetime], None] | None = None) -> int:
        total = 0
        while True:
            batch: list[OrderWrite] = []
            while (
                self._next is not None
                and len(batch) < BATCH_SIZE
                and (self._next.commit_at <= until if inclusive else self._next.commit_at < until)
            ):
                batch.append(self._next)
                self._next = next(self._stream, None)
            if not batch:
                return total
            self._writer.write(batch)
            self._count(batch)
            total += len(batch)
            if on_batch:
                on_batch(batch[-1].commit_at)

    def _count(self, batch: Sequence[OrderWrite]) -> None:
        with self._lock:
            for w in batch:
                self._counts["inserts" if w.insert else "updates"] += 1
                if w.cancelled:
                    self._counts["cancellations"] += 1
                    if w.repeat:
                        self._counts["repeats"] += 1
                    elif w.truth:
                        self._truth[w.truth] += 1
