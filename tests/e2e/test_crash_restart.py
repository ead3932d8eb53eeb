"""The daemon as a process: SIGKILL it mid-stream, restart it, and the counts are exact.

A writer thread plays the platform: new orders, cancellations with JSON-timeline remarks,
upstream callbacks that repeat a cancellation later, rows committed late with an older
timestamp, test orders. The daemon is killed twice at arbitrary points. At the end, the
counts on /metrics and in the state database equal the ground truth.
"""

from __future__ import annotations

import signal

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, wait_for
from tests.orderstream import (
    ID_NUMBER,
    Platform,
    Writer,
    counted,
    start_daemon,
    stop_daemon,
    write_config,
)
from watchdog.state_schema import events_table, metadata

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'state.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS orders"))
    metadata.drop_all(engine)
    yield url, url
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS orders"))
    metadata.drop_all(engine)
    engine.dispose()


def test_sigkill_mid_stream_then_restart_counts_exactly_once(tmp_path, databases):
    orders_url, state_url = databases
    platform = Platform(orders_url, "orders")
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", orders_url, state_url, port)
    log = tmp_path / "daemon.log"

    proc = start_daemon(cfg, log)
    try:
        with Writer(platform):
            for _ in range(2):  # kill twice, each time once the daemon has counted something
                wait_for(lambda: sum(counted(port).values()) > 0, 60, "daemon counting", log)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                proc = start_daemon(cfg, log)
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 90, "counts to equal the ground truth", log)
    finally:
        stop_daemon(proc, log)

    state = sa.create_engine(state_url)
    with state.connect() as conn:
        rows = conn.execute(sa.select(events_table.c.order_id, events_table.c.status)).all()
    state.dispose()
    platform.engine.dispose()
    assert len(rows) == len(set(rows)) == len(platform.truth)
    assert {(r.order_id, r.status) for r in rows} == set(platform.truth)
    assert ID_NUMBER not in log.read_text(encoding="utf-8", errors="replace")
