"""Two replicas on one PostgreSQL state database; the leader is SIGKILLed mid-stream.

The standby takes over within two lease intervals; no cancellation is counted twice or
missed, and the alert raised by a burst reaches the webhook exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import WebhookReceiver, free_port, metric_samples, wait_for
from tests.orderstream import Platform, Writer
from watchdog.config import load_config
from watchdog.detect.stage import DetectStage, build_detector
from watchdog.detect.state import save_detector
from watchdog.model import Cancellation, Classified, Verdict
from watchdog.pipeline import PollReport
from watchdog.store import StateStore

pytestmark = pytest.mark.slow

LEASE_S = 1


class Receiver(WebhookReceiver):
    def firing(self, category: str) -> list[dict[str, Any]]:
        return [p for p in self.payloads if p.get("status") == "firing"
                and p.get("commonLabels", {}).get("category") == category]


CONFIG = """
source:
  url: {url}
  table: orders
  cancelled_statuses: [已撤单, 审核不通过]
  dimensions:
    carrier: {{column: carrier}}
  batch_size: 20
  max_batches_per_poll: 2
state:
  url: {url}
  lease_interval: {lease}s
poll:
  interval: 0.5s
metrics:
  listen: 127.0.0.1:${{WD_PORT}}
logging:
  format: json
alerting:
  group_by: [category]
  default_channels: [hook]
  delivery: {{check_interval: 0.5s}}
channels:
  hook:
    type: webhook
    urls: ["http://127.0.0.1:{receiver}/alerts"]
detect:
  dimensions: [carrier]
"""


def warm_detector(config: Path, url: str, now: datetime) -> None:
    """Eight hours of quiet history, learned, so that a burst stands out."""
    cfg = load_config(config, env={"WD_PORT": "0"})
    stage = DetectStage(build_detector(cfg), None, cfg)
    t, n = now - timedelta(hours=8), 0
    while t < now:
        until = t + timedelta(minutes=15)
        items = []
        for i in range(6):
            n += 1
            at = t + timedelta(minutes=2 * i)
            category = "system_fault" if i == 0 else "compliance"
            c = Cancellation(f"w{n}", "已撤单", "一证五号超限", at, at, {"carrier": "中国电信"})
            items.append(Classified(c, Verdict(category, "warm")))
        report = PollReport(len(items), len(items), 0, {}, 0, 1, True, None, tuple(items))
        stage.after_poll(report, until, learning=True)
        t = until
    store = StateStore.open(url)
    save_detector(store.engine, stage.detector, full=True)
    store.close()


def start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(config)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "WD_PORT": str(port), "PYTHONUNBUFFERED": "1"})


def sample(port: int, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in metric_samples(port)
               if n == name and all(lab.get(k) == x for k, x in labels.items()))


def leader(port: int) -> bool:
    return any(n == "watchdog_leader" and v == 1 for n, _, v in metric_samples(port))


def counted(port: int) -> int:
    return int(sample(port, "watchdog_cancellations_total")
               + sample(port, "watchdog_excluded_cancellations_total"))


def test_standby_takes_over_from_a_killed_leader_exactly_once(tmp_path,
                                                              postgres_database):
    database = postgres_database
    platform = Platform(database, "orders", seed=11)
    receiver = Receiver()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=database, receiver=receiver.port, lease=LEASE_S),
                      encoding="utf-8")
    warm_detector(config, database, datetime.now(UTC))
    port_a, port_b = free_port(), free_port()
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"

    a = start(config, port_a, log_a)
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: leader(port_a), 60, "replica A to lead", log_a)
        b = start(config, port_b, log_b)
        wait_for(lambda: any(n == "watchdog_leader" and v == 0
                             for n, _, v in metric_samples(port_b)), 60,
                 "replica B to stand by", log_b)
        assert counted(port_b) == 0  # a standby exports no counts of its own
        with Writer(platform, every=0.1):
            wait_for(lambda: counted(port_a) > 0, 60, "A counting", log_a)
            # A carrier outage: a burst of system faults, then the leader dies at once.
            platform.burst(60, "中国联通", "BSS系统异常，调用CRM接口超时")
            wait_for(lambda: sample(port_a, "watchdog_cancellations_total",
                                    category="system_fault") > 0, 60, "A to see the burst",
                     log_a)
            killed = time.monotonic()
            a.send_signal(signal.SIGKILL)
            a.wait(10)
            wait_for(lambda: leader(port_b), 10, "B to take over", log_b)
            took = time.monotonic() - killed
            assert took <= 2 * LEASE_S, f"takeover took {took:.2f}s, over two lease intervals"
        expected = len(platform.truth)
        wait_for(lambda: counted(port_b) == expected, 90, "B's counts to equal the truth",
                 log_b)
        wait_for(lambda: len(receiver.firing("system_fault")) >= 1, 90,
                 "the alert at the webhook", log_b)
        wait_for(lambda: sample(port_b, "watchdog_outbox_pending") == 0, 90,
                 "the outbox to drain", log_b)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(30) == 0
        receiver.close()

    assert len(receiver.firing("system_fault")) == 1, receiver.payloads
    state = sa.create_engine(database)
    with state.connect() as conn:
        rows = conn.execute(sa.text("SELECT order_id, status FROM watchdog_events")).all()
    state.dispose()
    platform.engine.dispose()
    assert len(rows) == len(set(rows)) == len(platform.truth)
    assert {(r.order_id, r.status) for r in rows} == set(platform.truth)

