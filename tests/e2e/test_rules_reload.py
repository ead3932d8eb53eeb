"""The daemon as a process picks up edited rule files, refuses broken ones, obeys SIGHUP.

Everything is observed from outside, as an operator would: /metrics
(`watchdog_rules_info{version}`, `watchdog_rules_reload_errors_total`, the category of
newly written cancellations) and the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, metric_samples, signal_a_worker_thread, wait_for
from tests.integration.orderdb import insert, orders_table, row
from watchdog.rules import load_rules

pytestmark = pytest.mark.slow

RULE = """
rules:
  - id: site.xingyun_crm
    category: {category}
    priority: 50
    keywords: [星云crm]
"""
MTIME = 1_700_000_000 * 10**9


def write_rules(path: Path, text: str, step: int) -> None:
    path.write_text(text, encoding="utf-8")
    # A distinct, settled modification time per edit: the watcher reports it at once.
    os.utime(path, ns=(MTIME + step * 10**9, MTIME + step * 10**9))


def metric(port: int, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, labels, value in metric_samples(port):
        if n == name:
            out[",".join(f"{k}={v}" for k, v in sorted(labels.items()))] = value
    return out


def version(port: int) -> str | None:
    live = [k for k, v in metric(port, "watchdog_rules_info").items() if v == 1]
    return live[0].removeprefix("version=") if live else None


def reload_errors(port: int) -> float:
    return metric(port, "watchdog_rules_reload_errors_total").get("", -1.0)


def hits(port: int, rule: str) -> float:
    return metric(port, "watchdog_rule_hits_total").get(f"rule={rule}", 0.0)


def test_edit_refuse_and_sighup(tmp_path):
    orders_url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(orders_url)
    table = orders_table("orders")
    table.metadata.create_all(engine)
    local_now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    next_id = iter(range(1, 1000))

    def cancel_one() -> None:
        oid = next(next_id)
        insert(engine, table, [row(oid, local_now - timedelta(minutes=1, seconds=-oid),
                                   remark="星云CRM返回：请求被拒绝")])

    site = tmp_path / "site-rules.yaml"
    write_rules(site, RULE.format(category="system_fault"), 0)
    port = free_port()
    cfg = tmp_path / "watchdog.yaml"
    cfg.write_text(f"""
source:
  url: {orders_url}
  table: orders
  cancelled_statuses: [已撤单]
state:
  url: sqlite:///{tmp_path / 'state.db'}
rules:
  paths: [site-rules.yaml]
poll:
  interval: 0.2s
metrics:
  listen: 127.0.0.1:{port}
logging:
  format: json
""", encoding="utf-8")
    log = tmp_path / "daemon.log"
    v1 = load_rules([site]).version
    proc = subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: version(port) == v1, 60, "the daemon up with the first rules", log)
        cancel_one()
        wait_for(lambda: hits(port, "site.xingyun_crm") == 1, 60, "first cancellation", log)

        # A valid edit: the rule now says compliance, and new cancellations follow it.
        write_rules(site, RULE.format(category="compliance"), 1)
        v2 = load_rules([site]).version
        wait_for(lambda: version(port) == v2, 60, "the edited rules", log)
        cancel_one()
        wait_for(lambda: metric(port, "watchdog_cancellations_total").get(
            "category=compliance", 0) == 1, 60, "the second cancellation as compliance", log)
        assert reload_errors(port) == 0

        # An invalid edit: refused, counted, logged precisely; the running rules stay.
        write_rules(site, RULE.format(category="complience"), 2)
        wait_for(lambda: reload_errors(port) == 1, 60, "the refused reload", log)
        assert version(port) == v2
        text = log.read_text(encoding="utf-8")
        assert "rules_reload_refused" in text and "complience" in text
        assert "site-rules.yaml:" in text  # file:line of the problem

        # SIGHUP forces a reload: still broken, so one more refusal. The same when the
        # kernel hands the signal to a worker thread rather than the main one.
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reload_errors(port) == 2, 60, "the refused forced reload", log)
        signal_a_worker_thread(proc.pid, signal.SIGHUP)
        wait_for(lambda: reload_errors(port) == 3, 60,
                 "the refused reload forced through a worker thread", log)
        assert version(port) == v2

        write_rules(site, RULE.format(category="supply_shortage"), 3)
        v3 = load_rules([site]).version
        wait_for(lambda: version(port) == v3, 60, "the fixed rules", log)

        # SIGTERM through a worker thread stops the daemon as cleanly.
        signal_a_worker_thread(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        engine.dispose()
