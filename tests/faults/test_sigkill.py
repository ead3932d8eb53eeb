"""SIGKILL of the daemon at 20 random points over a stream: the final counts are exact.

The kills land wherever they land: while starting, while reading, between the insert of
the events and the commit, while idle. Each restart continues from the last commit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, wait_for
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
from watchdog.state_schema import events_table

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("WATCHDOG_FAULT_KILLS", "20"))


def test_twenty_sigkills_at_random_points_lose_and_double_nothing(tmp_path):
    rng = random.Random(20)
    orders_url = f"sqlite:///{tmp_path / 'orders.db'}"
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    platform = Platform(orders_url, "orders")
    port = free_port()
    cfg = write_config(tmp_path / "config.yaml", orders_url, state_url, port, interval="0.1s")
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        with Writer(platform, every=0.02):
            for n in range(KILLS):
                # Up and polling (its endpoint serves the committed totals), then a random
                # moment: mostly mid-poll, as rows arrive all the time and a poll reads
                # up to 3 pages of 7 rows.
                wait_for(lambda: metric(port, "watchdog_last_successful_poll_timestamp_seconds")
                         not in (None, 0.0), 60, f"daemon polling before kill {n + 1}", log)
                with contextlib.suppress(subprocess.TimeoutExpired):  # still running: fine
                    proc.wait(rng.uniform(0.0, 1.0))
                assert proc.poll() is None, log.read_text()[-3000:]
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                proc = start_daemon(cfg, log)
        expected = platform.expected()
        wait_for(lambda: counted(port) == expected, 120, "counts to equal the ground truth",
                 log)
    finally:
        stop_daemon(proc, log)
    state = sa.create_engine(state_url)
    with state.connect() as conn:
        rows = conn.execute(sa.select(events_table.c.order_id, events_table.c.status)).all()
    state.dispose()
    assert len(rows) == len(set(rows)) == len(platform.truth)
    assert {(r.order_id, r.status) for r in rows} == set(platform.truth)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert text.count('"listening"') == KILLS + 1  # killed only once up and polling
    assert ID_NUMBER not in text
