"""The order database fails under a running daemon; it keeps running, says so, and the
counts end equal to the ground truth.

- PostgreSQL (a throwaway cluster of our own) stopped for WATCHDOG_FAULT_OUTAGE_S seconds
  (default 60, the issue's figure) mid-stream, then started again;
- MariaDB: our session KILLed in the middle of a SELECT, three times;
- PostgreSQL: the order table locked, so the SELECT hits the statement timeout;
- SQLite: the order database does not exist yet when the daemon starts.

The state database is a SQLite file: a daemon on the shared PostgreSQL would contend for
the leader lock with other users of the server.
"""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, wait_for
from tests.faults.throwaway_pg import ThrowawayPostgres
from tests.orderstream import (
    ID_NUMBER,
    Platform,
    Writer,
    counted,
    metric,
    start_daemon,
    stop_daemon,
    write_config,
)
from watchdog.demo_db import create_order_db

pytestmark = pytest.mark.slow

OUTAGE_S = float(os.environ.get("WATCHDOG_FAULT_OUTAGE_S", "60"))


def source_errors(port: int) -> float:
    return metric(port, "watchdog_poll_errors_total", stage="source") or 0.0


def log_events(log) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def own_postgres():
    try:
        pg = ThrowawayPostgres()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"cannot run a throwaway PostgreSQL here: {exc}")
    yield pg
    pg.remove()


def test_postgres_stopped_mid_stream_then_restarted(tmp_path, own_postgres):
    platform = Platform(own_postgres.url, "orders")
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", own_postgres.url,
                       f"sqlite:///{tmp_path / 'state.db'}", port, batch_size=50)
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        with Writer(platform, every=0.1) as writer:
            wait_for(lambda: sum(counted(port).values()) > 0, 60, "daemon counting", log)
            with writer.paused():
                platform.engine.dispose()
                own_postgres.stop()
                down_at = time.monotonic()
                wait_for(lambda: metric(port, "watchdog_source_up") == 0.0, 60,
                         "watchdog_source_up to drop to 0", log)
                assert source_errors(port) >= 1
                assert proc.poll() is None  # still running, still serving /metrics
                # The outage itself: the fault under test lasts this long.
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
                assert metric(port, "watchdog_source_up") == 0.0
                own_postgres.start()
            # rows keep arriving after the restart
            wait_for(lambda: len(platform.truth) > 0 and metric(port, "watchdog_source_up")
                     == 1.0, 360, "the daemon to reconnect (after its back-off)", log)
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "counts to equal the ground truth",
                 log)
    finally:
        stop_daemon(proc, log)
        platform.engine.dispose()
    text = log_events(log)
    assert '"poll_failed"' in text and '"stage": "source"' in text
    assert "check source.url, that the server is up" in text
    assert ID_NUMBER not in text


def test_started_while_the_order_database_is_unreachable(tmp_path):
    """The daemon starts before its order database exists (a SQLite file that is not
    there yet): it runs, says so on /metrics, and once the database appears with a
    backlog in it, counts that backlog and what follows exactly once."""
    orders = tmp_path / "orders.db"
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", f"sqlite:///{orders}",
                       f"sqlite:///{tmp_path / 'state.db'}", port)
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    staging = tmp_path / "staging.db"
    platform = None
    try:
        wait_for(lambda: metric(port, "watchdog_source_up") == 0.0, 60,
                 "watchdog_source_up 0 at start", log)
        wait_for(lambda: source_errors(port) >= 2, 60, "a retried, failed poll", log)
        assert proc.poll() is None
        assert metric(port, "watchdog_cancellations_total", category="compliance") == 0.0
        assert not orders.exists()  # read-only: the watchdog never creates it
        # The database comes up (restored, say) holding a backlog of several pages.
        platform = Platform(f"sqlite:///{staging}", "orders")
        for _ in range(5):
            platform.round()
        platform.engine.dispose()  # the last connection checkpoints the WAL into the file
        staging.rename(orders)
        platform.engine = create_order_db(f"sqlite:///{orders}")
        with Writer(platform, every=0.2):
            wait_for(lambda: metric(port, "watchdog_source_up") == 1.0, 120,
                     "the daemon to reach the database (after its back-off)", log)
            wait_for(lambda: sum(counted(port).values()) >= 5 * 20 * 0.3, 60,
                     "the backlog to be counted", log)
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "counts to equal the ground truth",
                 log)
        assert proc.poll() is None
    finally:
        stop_daemon(proc, log)
        if platform is not None:
            platform.engine.dispose()
    text = log_events(log)
    assert '"poll_failed"' in text and '"stage": "source"' in text
    assert ID_NUMBER not in text


def test_mariadb_session_killed_mid_select(tmp_path, mysql_url, unique_name):
    platform = Platform(mysql_url, unique_name)
    # SLEEP in a one-row derived table: every SELECT takes 0.3 s, long enough to be
    # caught running and killed in the middle of a batch.
    query = f"""
  query: |
    SELECT o.id, o.status, o.updated_at AS changed_at, o.remark AS reason, o.carrier
    FROM {unique_name} AS o CROSS JOIN (SELECT SLEEP(0.3) AS slow) AS s
    WHERE o.updated_at >= :since_ts"""
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", mysql_url, f"sqlite:///{tmp_path / 's.db'}",
                       port, extra_source=query, batch_size=100)
    log = tmp_path / "daemon.log"
    admin = sa.create_engine(mysql_url)
    proc = start_daemon(cfg, log)
    killed = 0
    try:
        with Writer(platform, every=0.5):
            wait_for(lambda: sum(counted(port).values()) > 0, 60, "daemon counting", log)
            found: list[int] = []

            def running_select() -> bool:
                with admin.connect() as conn:
                    found[:] = conn.execute(sa.text(
                        "SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE COMMAND = 'Query' AND INFO LIKE :table "
                        "AND INFO LIKE '%SLEEP(0.3)%' AND ID <> CONNECTION_ID()"
                    ), {"table": f"%{unique_name}%"}).scalars().all()
                return bool(found)

            for n in range(3):
                errors = source_errors(port)
                wait_for(running_select, 60, f"a running SELECT to kill ({n + 1})", log)
                with admin.connect() as conn:
                    conn.execute(sa.text(f"KILL {int(found[0])}"))
                killed += 1
                wait_for(lambda e=errors: source_errors(port) > e, 60,
                         "the failed poll to be counted", log)
                assert proc.poll() is None
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "counts to equal the ground truth",
                 log)
        assert metric(port, "watchdog_source_up") == 1.0
    finally:
        stop_daemon(proc, log)
        admin.dispose()
        platform.drop()
    assert killed == 3
    text = log_events(log)
    assert text.count('"poll_failed"') >= 3
    assert ID_NUMBER not in text


def test_statement_timeout_on_a_locked_table(tmp_path, postgres_url, unique_name):
    platform = Platform(postgres_url, unique_name)
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", postgres_url,
                       f"sqlite:///{tmp_path / 'state.db'}", port, table=unique_name,
                       extra_source="  statement_timeout: 1s", batch_size=50)
    log = tmp_path / "daemon.log"
    locker = sa.create_engine(postgres_url)
    proc = start_daemon(cfg, log)
    try:
        with Writer(platform, every=0.1) as writer:
            wait_for(lambda: sum(counted(port).values()) > 0, 60, "daemon counting", log)
            with writer.paused(), locker.connect() as conn:
                # A migration holding an exclusive lock: our SELECT waits until the
                # database cancels it at source.statement_timeout.
                conn.execute(sa.text(f"LOCK TABLE {unique_name} IN ACCESS EXCLUSIVE MODE"))
                wait_for(lambda: source_errors(port) >= 2, 60, "two timed-out polls", log)
                assert metric(port, "watchdog_source_up") == 0.0
                assert proc.poll() is None
                conn.rollback()
            wait_for(lambda: metric(port, "watchdog_source_up") == 1.0, 120,
                     "the daemon to read again", log)
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "counts to equal the ground truth",
                 log)
    finally:
        stop_daemon(proc, log)
        locker.dispose()
        platform.drop()
    text = log_events(log)
    assert "statement timeout" in text
    assert "ran longer than source.statement_timeout (1s)" in text
