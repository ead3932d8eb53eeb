"""Poll cost against table size, and against query-exporter, on PostgreSQL.

    .venv/bin/python bench/bench_poll_cost.py                       # 1M and 10M rows
    .venv/bin/python bench/bench_poll_cost.py --sizes 100000 1000000   # a quick run
    .venv/bin/python bench/bench_poll_cost.py --query-exporter /tmp/qe-venv/bin/query-exporter

For each size, an order table (30,000 orders a day, 20% cancelled, the newest two minutes
old) is built in the shared `test` database; the watchdog (SQLite state) catches up from
an hour back, then:

- idle poll: nothing new; the forward SELECT finds nothing and the overlap (10 min) is
  re-read, as on every poll of a caught-up daemon; with `count_orders: true` (as in
  config.example.yaml) the poll also counts new orders per minute over the overlap,
  reported on its own too;
- 1,000 new rows: 1,000 cancellations appended within the last minutes, then one poll.

DB time is the client-side time of every statement the source sends (SQLAlchemy cursor
events, as query-exporter measures its `query_latency`), median of the polls; EXPLAIN
(ANALYZE, BUFFERS) gives the server's execution time and the plan, which is printed.

On the largest table, query-exporter runs the windowed `count(*) ... GROUP BY reason`
query a user would otherwise deploy, for real when its executable is given (its own
`query_latency` histogram), and timed with psycopg alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from benchdata import (
    CANCELLED,
    PG_URL,
    OrderTable,
    build_orders,
    libpq_url,
    reason_pool,
    source_yaml,
    unique,
    write_config,
)
from prometheus_client.parser import text_string_to_metric_families

from watchdog.config import load_config
from watchdog.model import Cursor
from watchdog.wiring import Parts, assemble

IDLE_POLLS = 30
NEW_ROW_POLLS = 5
WINDOW = "10 minutes"


def qe_sql(table: str) -> str:
    statuses = ", ".join(f"'{s}'" for s in CANCELLED)
    return (f"SELECT coalesce(remark, '') AS reason, count(*) AS cancellations "
            f"FROM {table} WHERE status IN ({statuses}) "
            f"AND updated_at >= (now() AT TIME ZONE 'Asia/Shanghai') - interval '{WINDOW}' "
            f"GROUP BY remark")


@contextmanager
def statement_times(engine: sa.Engine) -> Iterator[list[tuple[str, float]]]:
    """Every statement's (kind, seconds) while the block runs."""
    times: list[tuple[str, float]] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["wd_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # set_config pins the session time zone per transaction; the rest is the SELECT
        kind = "other" if "set_config" in statement else "select"
        times.append((kind, time.perf_counter() - conn.info.pop("wd_started")))

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def timed_poll(parts: Parts) -> tuple[float, float, float, Any]:
    """(db ms, select ms, wall ms, report) of one production poll."""
    with statement_times(parts.source.engine) as times:
        began = time.perf_counter()
        report = parts.pipeline.poll(datetime.now(UTC))
        wall = time.perf_counter() - began
    return (sum(t for _, t in times) * 1e3, sum(t for k, t in times if k == "select") * 1e3,
            wall * 1e3, report)


def timed_order_count(parts: Parts) -> tuple[float, int]:
    """(db ms, groups) of the new-order count that `count_orders: true` adds to every poll:
    the minutes of the last `overlap`, per minute and labelled dimension."""
    now = datetime.now(UTC)
    since = (now - parts.cfg.source.overlap).replace(second=0, microsecond=0)
    with statement_times(parts.source.engine) as times:
        groups = parts.source.count_new_orders(since, now)
    return sum(t for _, t in times) * 1e3, len(groups)


def explain(parts: Parts, after: Cursor) -> tuple[float, str]:
    """(execution ms, plan) of the poll's SELECT from `after`."""
    stmt = parts.source.fetch_statement(after, parts.cfg.source.batch_size)
    compiled = stmt.compile(dialect=parts.source.engine.dialect,
                            compile_kwargs={"render_postcompile": True})
    with parts.source.engine.connect() as conn:
        parts.source._prepare(conn)
        lines = [r[0] for r in conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, dict(compiled.params))]
    ms = next(float(line.split()[2]) for line in lines if line.startswith("Execution Time"))
    return ms, "\n".join(lines)


def explain_sql(sql: str) -> tuple[float, str]:
    with psycopg.connect(libpq_url()) as conn:
        lines = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
    ms = next(float(line.split()[2]) for line in lines if line.startswith("Execution Time"))
    return ms, "\n".join(lines)


def time_sql(sql: str, repeat: int = 20) -> float:
    """Median ms of `sql` run by psycopg alone."""
    with psycopg.connect(libpq_url()) as conn:
        conn.execute(sql).fetchall()
        runs = []
        for _ in range(repeat):
            began = time.perf_counter()
            conn.execute(sql).fetchall()
            runs.append(time.perf_counter() - began)
    return statistics.median(runs) * 1e3


def run_query_exporter(exe: str, table: str, tmp: Path, seconds: float = 20) -> float:
    """Mean ms per cycle from query-exporter's own `query_latency` histogram."""
    port = _free_port()
    config = tmp / "query-exporter.yaml"
    config.write_text(f"""databases:
  orders:
    dsn: {PG_URL}
metrics:
  cancellations:
    type: gauge
    description: Cancelled orders in the last {WINDOW}, by reason text
    labels: [reason]
queries:
  cancellations_by_reason:
    interval: 1
    databases: [orders]
    metrics: [cancellations]
    sql: "{qe_sql(table)}"
""", encoding="utf-8")
    proc = subprocess.Popen([exe, "--config", str(config), "-p", str(port), "-L", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(seconds)  # a benchmark run, not a test: let it do ~20 cycles
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "query_latency_sum":
                total += s.value
            elif s.name == "query_latency_count":
                count += s.value
    if not count:
        raise SystemExit(f"query-exporter ran no query: {err.decode()[-2000:]}")
    return total / count * 1e3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(table: OrderTable, tmp: Path) -> dict[str, Any]:
    config = write_config(tmp / f"{table.name}.yaml",
                          source_yaml(PG_URL, table.name, lookback="1h", count_orders=True),
                          f"sqlite:///{tmp}/{table.name}.db")
    parts = assemble(load_config(config))
    largest = table.rows == max(args.sizes)
    try:
        while not parts.pipeline.poll(datetime.now(UTC)).caught_up:
            pass
        idle = [timed_poll(parts) for _ in range(IDLE_POLLS)]
        assert all(r[3].new == 0 for r in idle)
        counts = [timed_order_count(parts) for _ in range(IDLE_POLLS)]
        cursor = parts.store.load_cursor()
        assert cursor is not None
        fwd_ms, fwd_plan = explain(parts, cursor)
        reread_ms, reread_plan = explain(
            parts, Cursor(datetime.now(UTC) - parts.cfg.source.overlap, None))
        result: dict[str, Any] = {
            "idle_db": statistics.median(r[0] for r in idle),
            "idle_select": statistics.median(r[1] for r in idle),
            "idle_wall": statistics.median(r[2] for r in idle),
            "idle_rows": idle[-1][3].rows_read,
            "count_db": statistics.median(c[0] for c in counts),
            "count_groups": counts[-1][1],
            "explain_forward": fwd_ms, "explain_reread": reread_ms,
            "plan_forward": fwd_plan, "plan_reread": reread_plan,
        }
        if largest:
            result["qe_direct"] = time_sql(qe_sql(table.name))
            result["qe_explain"], result["qe_plan"] = explain_sql(qe_sql(table.name))
            if args.query_exporter:
                result["qe_real"] = run_query_exporter(args.query_exporter, table.name, tmp)
        busy = []
        for _ in range(NEW_ROW_POLLS):
            table.append(1000, cancelled_share=1.0)
            db, select, wall, report = timed_poll(parts)
            assert report.new == 1000, report
            busy.append((db, select, wall))
        result.update(new_db=statistics.median(b[0] for b in busy),
                      new_select=statistics.median(b[1] for b in busy),
                      new_wall=statistics.median(b[2] for b in busy))
        if largest:
            result["qe_direct_after"] = time_sql(qe_sql(table.name))
            idle_after = [timed_poll(parts) for _ in range(10)]
            result["idle_db_after"] = statistics.median(r[0] for r in idle_after)
        return result
    finally:
        parts.close()


def main() -> None:
    print(f"# poll cost benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
          f"Python {platform.python_version()}", flush=True)
    conn = psycopg.connect(libpq_url())
    pool = reason_pool()
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            table = build_orders(conn, unique("bench_poll"), size, pool=pool,
                                 end_gap=timedelta(minutes=2))
            try:
                results[size] = measure(table, Path(tmp))
            finally:
                table.drop()
    conn.close()

    small, large = min(args.sizes), max(args.sizes)
    print("\n| rows in table | idle poll: DB time (SELECT only) | idle: EXPLAIN forward + "
          "re-read | idle wall | 1,000 new rows: DB time (SELECT only) | 1,000 new wall |")
    print("|---|---|---|---|---|---|")
    for size, r in results.items():
        print(f"| {size:,} | {r['idle_db']:.2f} ms ({r['idle_select']:.2f} ms) | "
              f"{r['explain_forward']:.3f} + {r['explain_reread']:.3f} ms | "
              f"{r['idle_wall']:.1f} ms | {r['new_db']:.1f} ms ({r['new_select']:.1f} ms) | "
              f"{r['new_wall']:.0f} ms |")
    a, b = results[small], results[large]
    print(f"\nratio {large:,} / {small:,}: idle DB time x{b['idle_db'] / a['idle_db']:.2f}, "
          f"1,000-row poll DB time x{b['new_db'] / a['new_db']:.2f} (target <= 1.5)")
    print(f"\nidle poll re-read {b['idle_rows']} rows (the {WINDOW} overlap)")
    for size, r in results.items():
        print(f"with count_orders, each poll also counts new orders over the overlap: "
              f"{r['count_db']:.2f} ms DB time on {size:,} rows ({r['count_groups']} groups)")
    print(f"\nquery-exporter's query on {large:,} rows ({WINDOW} window):")
    if "qe_real" in b:
        print(f"- query-exporter itself (query_latency): {b['qe_real']:.2f} ms per cycle")
    print(f"- psycopg timing of its query: {b['qe_direct']:.2f} ms; EXPLAIN ANALYZE "
          f"{b['qe_explain']:.3f} ms")
    print(f"- ours, idle poll: {b['idle_db']:.2f} ms DB time")
    print(f"- after 5,000 new cancellations in the window: theirs {b['qe_direct_after']:.2f} ms,"
          f" ours idle {b['idle_db_after']:.2f} ms")
    print(f"\nplan, forward SELECT ({large:,} rows):\n{b['plan_forward']}")
    print(f"\nplan, overlap re-read ({large:,} rows):\n{b['plan_reread']}")
    print(f"\nplan, query-exporter's query:\n{b['qe_plan']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--query-exporter", help="path of the query-exporter executable")
    args = ap.parse_args()
    main()
