"""Catch-up throughput and memory on PostgreSQL: the watchdog against psycopg alone.

    .venv/bin/python bench/bench_catchup.py                    # 1,000,000 rows, SQLite state
    .venv/bin/python bench/bench_catchup.py --state both       # also PostgreSQL state
    .venv/bin/python bench/bench_catchup.py --rows 100000      # a quick run

A table of `--rows` cancellations (simulated reasons, 10,000 distributors, 200 products)
is built in the shared `test` database under a unique name. Then, side by side:

- raw: psycopg alone runs the watchdog's own SELECT (`OrderSource.fetch_statement`,
  compiled once) page by page with the same keyset and page size, and fetches every row;
- watchdog: a fresh process loads the config and runs the production path
  (`wiring.assemble`, then the daemon's poll job until caught up: fetch, classify, commit
  cursor + dedupe keys + events + counters, update metrics) and reports its peak RSS.

Result: rows/s of each, their ratio (target >= 0.5) and peak RSS (target < 200 MB).
Everything created is dropped at the end.

`--floor` also measures what any per-row Python catch-up could reach: the raw pass plus
the least work a row needs (its key, a category from a dict, an event tuple), then with
the exactly-once keys, then with the events too, written by sqlite3's executemany and
committed per page. No parsing, no time zones, no rules, no metrics.

`--vector-floor` measures what a vectorised catch-up could reach, with no Python per row:
the same SELECT fetched into Arrow by ADBC (libpq's binary protocol, columns in C), then
its keys and events handed to sqlite3's executemany as columns; then a single table that
holds key and event in one row; then that plus the Python work per *distinct* reason text
of each page (timeline reading, the default rules, masking). Needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import sqlalchemy as sa
from benchdata import (
    PG_URL,
    POOL_COLUMNS,
    build_orders,
    libpq_url,
    reason_pool,
    source_yaml,
    unique,
    write_config,
)

from watchdog.config import load_config
from watchdog.model import Cursor
from watchdog.source import OrderSource

Page = Sequence[tuple[Any, ...]]


class _Keyset:
    """The watchdog's own SELECT (`OrderSource.fetch_statement`) compiled once for a
    driver's `dialect`: `first` reads from the start of the look-back, `after(id, at)` the
    page after the row (id, at), as the watchdog's keyset does."""

    def __init__(self, config: Path, dialect: Any | None = None) -> None:
        self.cfg = load_config(config).source
        source = OrderSource(self.cfg)
        start = datetime.now(UTC) - self.cfg.initial_lookback
        first, self._next = (
            source.fetch_statement(Cursor(start, oid), self.cfg.batch_size).compile(
                dialect=dialect or source.engine.dialect,
                compile_kwargs={"render_postcompile": True})
            for oid in (None, 0))
        source.close()
        local = start.astimezone(self.cfg.zone).replace(tzinfo=None)
        self.first = first.string, self._bind(first, wd_lo=local)

    def after(self, last_id: Any, last_at: Any) -> tuple[str, Any]:
        return self._next.string, self._bind(self._next, wd_lo=last_at, wd_hi=last_at,
                                             wd_after_id=last_id)

    @staticmethod
    def _bind(compiled: Any, **values: Any) -> Any:
        """Parameters as the driver takes them: by name, or by position ($1..$n)."""
        params = {**compiled.params, **values}
        return [params[k] for k in compiled.positiontup] if compiled.positional else params


def raw_rate(config: Path, expected: int,
             per_page: Callable[[Page], None] | None = None,
             cpu: dict[str, float] | None = None) -> tuple[float, int]:
    """(seconds, rows) for psycopg paging through the table with the watchdog's SELECT;
    `per_page` (the floor) runs on each page's rows inside the measured time. `cpu`, if
    given, receives the CPU seconds of this process and of its PostgreSQL backend."""
    keyset = _Keyset(config)
    cfg = keyset.cfg
    rows = 0
    began = time.perf_counter()
    with psycopg.connect(libpq_url(), options=f"-c TimeZone={cfg.zone.key}") as conn, \
            _CpuSplit(conn.info.backend_pid, cpu):
        sql, params = keyset.first
        while True:
            with conn.cursor() as cur:
                page = cur.execute(sql, params).fetchall()
            conn.commit()
            if per_page is not None:
                per_page(page)
            rows += len(page)
            if len(page) < cfg.batch_size:
                break
            sql, params = keyset.after(page[-1][0], page[-1][2])
    seconds = time.perf_counter() - began
    if rows != expected:
        raise SystemExit(f"raw pass read {rows} rows, expected {expected}")
    return seconds, rows


class _CpuSplit:
    """Records, into `out` (when given), the CPU seconds this process and a PostgreSQL
    backend (by pid, so on this machine) spend inside the `with` block."""

    def __init__(self, backend_pid: int, out: dict[str, float] | None) -> None:
        self.out = out
        self.procs = (psutil.Process(), psutil.Process(backend_pid)) if out is not None else ()

    def _now(self) -> list[float]:
        return [sum(p.cpu_times()[:2]) for p in self.procs]  # user + system

    def __enter__(self) -> _CpuSplit:
        self.start = self._now()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.out is not None:
            end = self._now()
            self.out.update(client=end[0] - self.start[0], backend=end[1] - self.start[1])


FLOORS = ("per-row loop", "+ keys written", "+ keys and events written")


def floor_rate(config: Path, expected: int, tmp: str, variant: str) -> float:
    """Seconds for the raw pass plus the least per-row work of `variant` (see FLOORS)."""
    db = sqlite3.connect(f"{tmp}/floor-{FLOORS.index(variant)}.db")
    db.execute("CREATE TABLE seen (order_id TEXT, status TEXT, PRIMARY KEY (order_id, status))")
    db.execute("CREATE TABLE events (order_id TEXT, status TEXT, category TEXT, "
               "event_time TEXT, dims TEXT)")
    categories: dict[Any, str] = {}

    def per_page(page: Page) -> None:
        keys, events = [], []
        for r in page:  # id, status, updated_at, remark, then the dimension columns
            key = (str(r[0]), r[1])
            category = categories.get(r[3])
            if category is None:
                category = categories[r[3]] = "unknown"
            keys.append(key)
            events.append((*key, category, r[2].isoformat(), "|".join(map(str, r[5:]))))
        if variant != FLOORS[0]:
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", keys)
        if variant == FLOORS[2]:
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", events)
        db.commit()

    try:
        return raw_rate(config, expected, per_page)[0]
    finally:
        db.close()


VECTOR_FLOORS = (
    "Arrow fetch (ADBC)",
    "+ keys written",
    "+ keys and events written (two tables, as today)",
    "+ key and event in one row of one table",
    "+ one table, and each page's distinct texts read, classified, masked",
)


def arrow_rate(config: Path, expected: int,
               per_page: Callable[[Any], None] | None = None,
               cpu: dict[str, float] | None = None) -> float:
    """Seconds for ADBC to page through the table with the watchdog's SELECT into Arrow
    tables (the keyset and `cpu` as in `raw_rate`); `per_page` runs on each page, timed."""
    import adbc_driver_postgresql.dbapi as adbc
    from sqlalchemy.dialects import postgresql

    # ADBC binds $1..$n
    keyset = _Keyset(config, postgresql.psycopg.dialect(paramstyle="numeric_dollar"))
    cfg = keyset.cfg
    rows = 0
    began = time.perf_counter()
    with adbc.connect(libpq_url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        with _CpuSplit(cur.fetchone()[0], cpu):
            cur.execute(f"SET TimeZone = '{cfg.zone.key}'")
            sql, params = keyset.first
            while True:
                cur.execute(sql, params)
                page = cur.fetch_arrow_table()
                conn.commit()
                if per_page is not None:
                    per_page(page)
                rows += page.num_rows
                if page.num_rows < cfg.batch_size:
                    break
                sql, params = keyset.after(page.column(0)[-1].as_py(),
                                           page.column(2)[-1].as_py())
    seconds = time.perf_counter() - began
    if rows != expected:
        raise SystemExit(f"Arrow pass read {rows} rows, expected {expected}")
    return seconds


def vector_floor_rate(config: Path, expected: int, tmp: str, variant: str) -> float:
    """Seconds for the Arrow pass plus the bulk work of `variant` (see VECTOR_FLOORS),
    into a SQLite database with the state database's pragmas and table shapes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from watchdog.privacy import mask_text
    from watchdog.rules import load_rules
    from watchdog.timeline import current_reason

    level = VECTOR_FLOORS.index(variant)
    zone = load_config(config).source.zone
    rules = load_rules() if level == 4 else None
    db = sqlite3.connect(f"{tmp}/vector-floor-{level}.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE seen (order_id TEXT, status TEXT, seen_at TEXT, "
               "PRIMARY KEY (order_id, status))")
    db.execute("CREATE INDEX seen_at ON seen (seen_at)")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, order_id TEXT, status TEXT, "
               "category TEXT, rule TEXT, event_time TEXT, ingested_at TEXT, dims TEXT, "
               "reason TEXT)")
    db.execute("CREATE TABLE keyed (order_id TEXT, status TEXT, category TEXT, rule TEXT, "
               "event_time TEXT, ingested_at TEXT, dims TEXT, reason TEXT, "
               "PRIMARY KEY (order_id, status)) WITHOUT ROWID")
    for table in ("events", "keyed"):
        db.execute(f"CREATE INDEX {table}_time ON {table} (event_time)")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    shares: list[float] = []  # distinct texts / rows, per page

    def per_page(page: Any) -> None:
        if level == 0 or not page.num_rows:
            return
        ids = pc.cast(page.column(0), pa.string()).to_pylist()
        statuses = page.column(1).to_pylist()
        times = pc.cast(page.column(2), pa.string()).to_pylist()
        if level == 4:
            distinct = pc.unique(page.column(3)).to_pylist()
            shares.append(len(distinct) / page.num_rows)
            assert rules is not None
            for text in distinct:
                reason = current_reason(text, zone)[0]
                rules.classify(reason)
                if reason:
                    mask_text(reason)
        if level >= 3:
            db.executemany(f"INSERT OR IGNORE INTO keyed VALUES "
                           f"(?, ?, 'unknown', 'r', ?, '{now}', '{{}}', NULL)",
                           zip(ids, statuses, times, strict=True))
        else:
            db.executemany(f"INSERT OR IGNORE INTO seen VALUES (?, ?, '{now}')",
                           zip(ids, statuses, strict=True))
        if level == 2:
            db.executemany("INSERT INTO events (order_id, status, category, rule, event_time, "
                           f"ingested_at, dims, reason) VALUES (?, ?, 'unknown', 'r', ?, "
                           f"'{now}', '{{}}', NULL)", zip(ids, statuses, times, strict=True))
        db.commit()

    try:
        return arrow_rate(config, expected, per_page)
    finally:
        db.close()
        if shares:
            print(f"  distinct texts per page: {sum(shares) / len(shares):.0%} of its rows "
                  f"on average", flush=True)


def text_costs(config: Path) -> dict[str, float]:
    """µs per distinct reason text of the tables' pool: reading (`current_reason`),
    classifying (default rules, no cache) and masking, best of 3 passes."""
    from watchdog.privacy import mask_text
    from watchdog.rules import load_rules
    from watchdog.timeline import current_reason

    zone = load_config(config).source.zone
    rules = load_rules(cache_size=0)
    at = POOL_COLUMNS.index("remark")
    texts = list(dict.fromkeys(r[at] for r in reason_pool() if r[at] is not None))
    best: dict[str, float] = {}
    for _ in range(3):
        began = time.perf_counter()
        reasons = [current_reason(t, zone)[0] for t in texts]
        read = time.perf_counter()
        for reason in reasons:
            rules.classify(reason)
        classified = time.perf_counter()
        for reason in reasons:
            if reason:
                mask_text(reason)
        masked = time.perf_counter()
        for stage, seconds in (("read", read - began), ("classify", classified - read),
                               ("mask", masked - classified)):
            per_text = seconds * 1e6 / len(texts)
            best[stage] = min(best.get(stage, per_text), per_text)
    return {"texts": len(texts), **best}


def watchdog_child(config: Path) -> None:
    """Runs in its own process: catch up as the daemon does, print the figures.

    The daemon's own poll job (`daemon.Poller.poll_until_caught_up`: polls back to back
    until caught up) on parts from `wiring.assemble`. No lease: on a shared PostgreSQL
    the leader lock would stand other users' daemons by.
    """
    import threading

    from watchdog.cli import setup_logging
    from watchdog.daemon import Poller
    from watchdog.lease import SoleLease
    from watchdog.web import Health
    from watchdog.wiring import assemble

    began = time.perf_counter()
    cfg = load_config(config)
    setup_logging(cfg)
    parts = assemble(cfg)
    parts.metrics.ledger.activate(parts.store.counters())  # as a leader does
    setup = time.perf_counter() - began
    totals = {"polls": 0, "new": 0, "rows_read": 0}

    def tally(report: Any) -> None:
        totals["polls"] += 1
        totals["new"] += report.new
        totals["rows_read"] += report.rows_read

    poller = Poller(parts, Health(leader=True), threading.Event(), SoleLease(),
                    on_report=tally)
    began = time.perf_counter()
    if not poller.poll_until_caught_up():
        raise SystemExit("a poll failed")
    seconds = time.perf_counter() - began
    parts.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "setup": setup, **totals,
                      "peak_rss_mb": peak_kb / 1024}))


def watchdog_rate(config: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(config)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pg_state_url(schema: str) -> str:
    # A schema of our own keeps the state tables apart from other users of the database.
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--state", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--floor", action="store_true",
                    help="also the least per-row work any Python catch-up needs")
    ap.add_argument("--vector-floor", action="store_true",
                    help="also what a vectorised catch-up (Arrow, bulk writes) could reach")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        watchdog_child(args.child)
        return

    print(f"# catch-up benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
          f"Python {platform.python_version()}, {args.rows:,} rows", flush=True)
    conn = psycopg.connect(libpq_url())
    table = build_orders(conn, unique("bench_catchup"), args.rows, cancelled_share=1.0,
                         per_day=max(1, args.rows // 7), end_gap=timedelta(minutes=30))
    engine = sa.create_engine(PG_URL)
    schemas: list[str] = []
    results: list[tuple[str, float, dict[str, Any]]] = []
    floors: list[tuple[str, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = source_yaml(PG_URL, table.name, batch_size=args.batch_size)
            states = ["sqlite", "postgres"] if args.state == "both" else [args.state]
            raw_config = write_config(Path(tmp, "raw.yaml"), source, "sqlite://")
            raw_best = min(raw_rate(raw_config, args.rows)[0] for _ in range(2))
            print(f"  raw psycopg: {args.rows / raw_best:,.0f} rows/s", flush=True)
            for state in states:
                if state == "sqlite":
                    url = f"sqlite:///{tmp}/state.db"
                else:
                    schema = unique("bench_state")
                    schemas.append(schema)
                    with engine.begin() as c:
                        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
                    url = pg_state_url(schema)
                config = write_config(Path(tmp, f"{state}.yaml"), source, url)
                ours = watchdog_rate(config)
                if ours["new"] != args.rows:
                    raise SystemExit(f"watchdog counted {ours['new']}, expected {args.rows}")
                # The raw pass again, right after, so the ratio compares like with like.
                raw_after = raw_rate(raw_config, args.rows)[0]
                raw_best = min(raw_best, raw_after)
                results.append((state, raw_best, ours))
                print(f"  watchdog, {state} state: {args.rows / ours['seconds']:,.0f} rows/s, "
                      f"{ours['polls']} polls, peak RSS {ours['peak_rss_mb']:.0f} MB",
                      flush=True)
            if args.vector_floor:
                costs = text_costs(raw_config)
                print(f"  per distinct text ({costs['texts']:,} texts): read "
                      f"{costs['read']:.1f} µs, classify {costs['classify']:.1f} µs, "
                      f"mask {costs['mask']:.1f} µs", flush=True)
                raw_cpu: dict[str, float] = {}
                arrow_cpu: dict[str, float] = {}
                passes = (("raw psycopg", raw_rate(raw_config, args.rows, cpu=raw_cpu)[0],
                           raw_cpu),
                          ("Arrow", arrow_rate(raw_config, args.rows, cpu=arrow_cpu),
                           arrow_cpu))
                for name, seconds, cpu in passes:
                    print(f"  CPU of the {name} pass: {seconds:.2f} s wall, client "
                          f"{cpu['client']:.2f} s, PostgreSQL backend {cpu['backend']:.2f} s",
                          flush=True)
            runs = [*((v, v, floor_rate) for v in (FLOORS if args.floor else ())),
                    *((f"vectorised: {v}", v, vector_floor_rate)
                      for v in (VECTOR_FLOORS if args.vector_floor else ()))]
            for label, variant, rate in runs:
                seconds = rate(raw_config, args.rows, tmp, variant)
                raw_best = min(raw_best, raw_rate(raw_config, args.rows)[0])
                floors.append((label, raw_best, seconds))
                print(f"  floor, {label}: {args.rows / seconds:,.0f} rows/s", flush=True)
    finally:
        table.drop()
        conn.close()
        with engine.begin() as c:
            for schema in schemas:
                c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()

    print("\n| state DB | raw psycopg rows/s | watchdog rows/s | ratio | polls | peak RSS |")
    print("|---|---|---|---|---|---|")
    for state, raw, ours in results:
        print(f"| {state} | {args.rows / raw:,.0f} | {args.rows / ours['seconds']:,.0f} | "
              f"{raw / ours['seconds']:.2f} | {ours['polls']} | "
              f"{ours['peak_rss_mb']:.0f} MB |")
    if floors:
        print("\n| floor (least work a row needs) | raw psycopg rows/s | rows/s | ratio |")
        print("|---|---|---|---|")
        for variant, raw, seconds in floors:
            print(f"| {variant} | {args.rows / raw:,.0f} | {args.rows / seconds:,.0f} | "
                  f"{raw / seconds:.2f} |")


if __name__ == "__main__":
    main()
