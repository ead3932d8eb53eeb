"""Large order tables on PostgreSQL for the benchmarks, built server-side in seconds.

Reason texts, statuses and the other columns of cancelled rows come from the simulated
stream (`watchdog.simulate`: realistic Chinese remarks, JSON timelines, embedded ID numbers
and phones), collected once into a small pool table; `INSERT ... SELECT generate_series`
then joins every generated order to a pool row, so 10M rows take a minute, not an hour.
Distributor and product ids are drawn from 10,000 and 200 values, more than the simulator's
catalog holds, to exercise high-cardinality dimensions.

Timestamps are naive Asia/Shanghai local time, evenly spaced, the newest `end_gap` before
now, so the tail of the table looks like the live head of a real order table.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from watchdog.simulate import generate

SHANGHAI = ZoneInfo("Asia/Shanghai")
PG_URL = os.environ.get("WATCHDOG_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CANCELLED = ("已撤单", "审核不通过", "开卡失败")
DISTRIBUTORS = 10_000
PRODUCTS = 200
POOL_COLUMNS = ("status", "remark", "carrier", "upstream", "province", "city", "stage",
                "channel", "customer_name", "id_number", "phone", "address")


def libpq_url(url: str = PG_URL) -> str:
    """The SQLAlchemy URL as psycopg wants it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def local_now() -> datetime:
    return datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)


def reason_pool(seed: int = 1, days: int = 2) -> list[tuple[str | None, ...]]:
    """Every cancellation the simulator writes in `days` days (about 6,000 a day)."""
    start = datetime(2025, 3, 3)
    rows = []
    for w in generate(start, start + timedelta(days=days), seed=seed, distributors=DISTRIBUTORS):
        if w.cancelled:
            v = w.values()
            rows.append(tuple(v[c] for c in POOL_COLUMNS))
    return rows


@dataclass
class OrderTable:
    """One generated order table in the shared database; `drop()` removes it."""

    conn: psycopg.Connection
    name: str
    rows: int
    end: datetime
    """updated_at of the newest row (naive local time)."""
    step: timedelta
    pool_size: int

    @property
    def pool(self) -> str:
        return f"{self.name}_pool"

    def append(self, count: int, cancelled_share: float = 1.0,
               end: datetime | None = None) -> None:
        """`count` more orders after the newest, the last at `end` (default: now - 1s)."""
        end = end or local_now() - timedelta(seconds=1)
        step = (end - self.end) / (count + 1)
        _insert(self.conn, self.name, self.pool, self.pool_size, self.rows + 1,
                self.rows + count, self.end + step, step, cancelled_share)
        self.rows += count
        self.end = end

    def drop(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.name}")
            cur.execute(f"DROP TABLE IF EXISTS {self.pool}")
        self.conn.commit()


def build_orders(
    conn: psycopg.Connection, name: str, rows: int, *, per_day: int = 30_000,
    cancelled_share: float = 0.2, end_gap: timedelta = timedelta(minutes=2),
    pool: list[tuple[str | None, ...]] | None = None, log: bool = True,
) -> OrderTable:
    """Create `name` with `rows` orders, `per_day` of them per simulated day, a share of
    them cancelled; indexes as in the README (built after the load, as a DBA would)."""
    started = time.perf_counter()
    pool = pool if pool is not None else reason_pool()
    with conn.cursor() as cur:
        cur.execute(f"""
            CREATE TABLE {name} (
                id bigint PRIMARY KEY, order_no varchar(32), status varchar(32) NOT NULL,
                remark text, carrier varchar(16), upstream varchar(32), product varchar(64),
                distributor_id varchar(16), province varchar(16), city varchar(16),
                stage varchar(16), channel varchar(16), customer_name varchar(32),
                id_number varchar(18), phone varchar(11), address varchar(128),
                created_at timestamp NOT NULL, updated_at timestamp NOT NULL)""")
        cur.execute(f"CREATE TABLE {name}_pool (k int PRIMARY KEY, "
                    + ", ".join(f"{c} text" for c in POOL_COLUMNS) + ")")
        with cur.copy(f"COPY {name}_pool (k, {', '.join(POOL_COLUMNS)}) FROM STDIN") as copy:
            for k, values in enumerate(pool):
                copy.write_row((k, *values))
    conn.commit()
    step = timedelta(days=1) / per_day
    end = local_now() - end_gap
    first = end - step * (rows - 1)
    table = OrderTable(conn, name, rows, end, step, len(pool))
    try:
        for lo in range(1, rows + 1, 2_000_000):  # chunks keep each transaction's WAL modest
            hi = min(rows, lo + 1_999_999)
            _insert(conn, name, table.pool, len(pool), lo, hi, first + step * (lo - 1), step,
                    cancelled_share)
        with conn.cursor() as cur:
            cur.execute(f"CREATE INDEX ix_{name}_updated_at_id ON {name} (updated_at, id)")
            cur.execute(f"CREATE INDEX ix_{name}_created_at ON {name} (created_at)")
            cur.execute(f"ANALYZE {name}")
        conn.commit()
    except BaseException:
        conn.rollback()
        table.drop()
        raise
    if log:
        print(f"  built {name}: {rows:,} rows in {time.perf_counter() - started:.0f}s",
              flush=True)
    return table


def _insert(conn: psycopg.Connection, name: str, pool: str, pool_size: int, lo: int, hi: int,
            first: datetime, step: timedelta, cancelled_share: float) -> None:
    """Orders lo..hi; order g is at first + (g - lo) * step. Cancelled ones take a pool row."""
    percent = round(cancelled_share * 100)
    with conn.cursor() as cur:
        cur.execute(f"""
            INSERT INTO {name}
            SELECT g, 'NO' || g,
                   CASE WHEN x.cancelled THEN p.status ELSE '已激活' END,
                   CASE WHEN x.cancelled THEN p.remark END,
                   p.carrier, p.upstream,
                   'P' || lpad(mod(g * 40503, {PRODUCTS})::text, 3, '0'),
                   'D' || lpad(mod(g * 2654435761, {DISTRIBUTORS})::text, 5, '0'),
                   p.province, p.city, p.stage, p.channel, p.customer_name, p.id_number,
                   p.phone, p.address,
                   x.ts - interval '2 hours', x.ts
            FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
            CROSS JOIN LATERAL (
                SELECT date_trunc('milliseconds',
                                  %(first)s::timestamp + (g - %(lo)s) * %(step)s::interval) AS ts,
                       mod(g * 37, 100) < %(percent)s AS cancelled
            ) AS x
            JOIN {pool} AS p ON p.k = mod(g * 7919, {pool_size})""",
            {"lo": lo, "hi": hi, "first": first, "step": step, "percent": percent})
    conn.commit()


def source_yaml(url: str, table: str, *, batch_size: int = 5000, max_batches: int = 20,
                lookback: str = "30d", overlap: str = "10m",
                count_orders: bool = False) -> str:
    """The `source:` section the benchmarks use (the dimensions of config.example.yaml)."""
    return f"""source:
  url: {url}
  table: {table}
  columns: {{id: id, status: status, changed_at: updated_at, reason: [remark],
            created_at: created_at}}
  cancelled_statuses: [{", ".join(CANCELLED)}]
  dimensions:
    carrier: {{column: carrier}}
    upstream: {{column: upstream}}
    province: {{column: province, top_k: 40}}
    product: {{column: product, label: false}}
    distributor: {{column: distributor_id, label: false}}
    stage: {{column: stage, label: false}}
  timezone: Asia/Shanghai
  batch_size: {batch_size}
  max_batches_per_poll: {max_batches}
  overlap: {overlap}
  initial_lookback: {lookback}
  statement_timeout: 60s
  count_orders: {str(count_orders).lower()}
"""


def write_config(path: Path, source: str, state_url: str) -> Path:
    path.write_text(source + f"""state:
  url: {state_url}
logging:
  level: warning
  format: json
""", encoding="utf-8")
    return path
