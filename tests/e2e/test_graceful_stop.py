"""SIGTERM/SIGINT in the middle of a long catch-up: exit 0 in bounded time, lose nothing.

The daemon catches up a backlog of thousands of cancellations in pages of a few rows,
all in one poll (a page budget larger than the backlog). A stop request ends that poll
after the page in progress: the process exits 0 well before the backlog is done, with a
committed cursor, and a restart counts the rest, each cancellation exactly once.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, wait_for
from tests.orderstream import (
    STATUSES,
    Platform,
    counted,
    local_now,
    start_daemon,
    stop_daemon,
    write_config,
)
from watchdog.state_schema import events_table

pytestmark = pytest.mark.slow

BACKLOG = 2000
STOP_BOUND_S = 15.0
"""From the signal to the exit: one page, detection on what was read, saving state."""


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'state.db'}"
    url = request.getfixturevalue("postgres_database")
    return url, url


def backlog(platform: Platform, n: int) -> None:
    """`n` orders over the last hour (all cancelled, one in ten repeated by a callback)."""
    start = local_now() - timedelta(hours=1)
    rows = [platform.row(i, STATUSES[i % 2], "BSS系统异常" if i % 3 else "客户主动取消",
                         start + timedelta(seconds=i * 3600 / n))
            for i in range(1, n + 1)]
    for i in range(0, n, 1000):
        platform.insert(rows[i:i + 1000])
    platform.next_id = n + 1


def events(state_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                sa.select(events_table.c.order_id, events_table.c.status))]
    finally:
        engine.dispose()


def stop_mid_catch_up_then_restart(tmp_path, orders_url: str, state_url: str,
                                   signum: signal.Signals) -> None:
    platform = Platform(orders_url, "orders")
    backlog(platform, BACKLOG)
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", orders_url, state_url, port,
                       batch_size=5, max_batches_per_poll=100_000)
    log = tmp_path / "daemon.log"

    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: sum(counted(port).values()) > 0, 60, "the catch-up to start", log)
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(STOP_BOUND_S + 30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert code == 0, tail
    assert took < STOP_BOUND_S, f"stopping took {took:.1f}s\n{tail}"
    stopped_at = events(state_url)
    # It stopped inside the poll, not after catching up: most of the backlog is left.
    assert 0 < len(stopped_at) < BACKLOG / 2, len(stopped_at)
    assert len(stopped_at) % 5 == 0  # whole pages only
    assert '"event": "stopped"' in tail and '"clean": true' in tail

    proc = start_daemon(cfg, log)
    try:
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "the restart to finish exactly",
                 log)
    finally:
        stop_daemon(proc, log)
    rows = events(state_url)
    platform.engine.dispose()
    assert len(rows) == len(set(rows)) == len(platform.truth) == BACKLOG
    assert set(rows) == set(platform.truth)


def test_sigterm_mid_catch_up_exits_0_and_a_restart_counts_exactly(tmp_path, databases):
    orders_url, state_url = databases
    stop_mid_catch_up_then_restart(tmp_path, orders_url, state_url, signal.SIGTERM)


def test_sigint_mid_catch_up_exits_0_and_a_restart_counts_exactly(tmp_path):
    stop_mid_catch_up_then_restart(tmp_path, f"sqlite:///{tmp_path / 'orders.db'}",
                                   f"sqlite:///{tmp_path / 'state.db'}", signal.SIGINT)
