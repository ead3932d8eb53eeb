"""End-to-end alert latency: a cancellation's commit -> the webhook receiving its alert.

A writer thread commits a burst of system_fault cancellations (BSS errors for one
carrier) into a SQLite order database at a random moment; a scheduler-like loop runs the
real poll pipeline every POLL seconds, turns the poll report into a threshold signal
(stand-in for the detector), and hands it to `Alerting.evaluate`, which queues the alert
and starts delivery at once. A local HTTP receiver notes when the Alertmanager-v4 webhook
arrives. Target: latency <= one poll interval + 2 s.

    .venv/bin/python bench/bench_alert_latency.py [--trials 10] [--poll 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.notify_servers import HttpReceiver  # noqa: E402
from watchdog.config import Config  # noqa: E402
from watchdog.demo_db import create_order_db, orders_table  # noqa: E402
from watchdog.model import Signal  # noqa: E402
from watchdog.notifiers.worker import build_alerting  # noqa: E402
from watchdog.wiring import assemble  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
THRESHOLD = 5


def run(trials: int, poll: float) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-alert-"))
    order_url, state_url = f"sqlite:///{tmp / 'orders.db'}", f"sqlite:///{tmp / 'state.db'}"
    engine = create_order_db(order_url)
    table = orders_table(sa.MetaData())
    arrivals: list[float] = []
    receiver = HttpReceiver(respond=lambda _: (arrivals.append(time.perf_counter()) or 200, b""))
    receiver.start()
    cfg = Config.model_validate({
        "source": {"url": order_url, "dimensions": {"carrier": {"column": "carrier"}},
                   "initial_lookback": "1m", "overlap": "1m"},
        "state": {"url": state_url},
        "poll": {"interval": f"{poll}s"},
        "channels": {"hook": {"type": "webhook", "urls": [f"{receiver.url}/hook"]}},
        "alerting": {"default_channels": ["hook"], "group_wait": "0s",
                     "group_interval": "0s", "resolve_timeout": "1h"},
    })
    parts = assemble(cfg, CollectorRegistry())
    alerting = build_alerting(cfg, parts.store.engine, parts.registry)
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            now = datetime.now(UTC)
            report = parts.pipeline.poll(now)
            n = report.by_category.get("system_fault", 0)
            signals = [Signal("threshold", {"category": "system_fault", "carrier": "中国联通"},
                              now, n >= THRESHOLD, float(n), 0.2, poll, "critical")] if n else []
            alerting.evaluate(signals, now)
            stop.wait(poll)

    poller = threading.Thread(target=tick, daemon=True)
    poller.start()
    latencies: list[float] = []
    rng = random.Random(5)
    next_id = 1
    for trial in range(trials):
        time.sleep(rng.uniform(0, poll))  # land anywhere in the poll cycle
        local = datetime.now(SHANGHAI).replace(tzinfo=None)
        rows = []
        for _ in range(THRESHOLD + 2):
            rows.append({"id": next_id, "order_no": f"B{next_id}", "status": "已撤单",
                         "remark": "BSS系统异常，请稍后重试", "carrier": "中国联通",
                         "created_at": local - timedelta(minutes=5), "updated_at": local})
            next_id += 1
        before = len(arrivals)
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        committed = time.perf_counter()
        deadline = committed + poll + 30
        while len(arrivals) == before and time.perf_counter() < deadline:
            time.sleep(0.005)
        if len(arrivals) == before:
            raise SystemExit(f"trial {trial}: no alert within {poll + 30}s")
        latencies.append(arrivals[before] - committed)
        # resolve the alert (a quiet poll) so the next burst fires a new notification
        quiet_until = time.perf_counter() + 2 * poll + 1
        while time.perf_counter() < quiet_until:
            time.sleep(0.05)
        alerting.evaluate([Signal("threshold", {"category": "system_fault",
                                                "carrier": "中国联通"},
                                  datetime.now(UTC), False, 0, 0.2, poll, "critical")])
        wait = time.perf_counter() + 10
        while len(arrivals) < before + 2 and time.perf_counter() < wait:
            time.sleep(0.01)
    stop.set()
    poller.join(poll + 10)
    alerting.close()
    parts.close()
    receiver.stop()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--poll", type=float, default=2.0)
    args = ap.parse_args()
    lat = run(args.trials, args.poll)
    target = args.poll + 2
    print(f"poll interval {args.poll:g}s, {len(lat)} trials, target <= {target:g}s")
    print("latencies (s): " + ", ".join(f"{x:.2f}" for x in lat))
    print(f"min {min(lat):.2f}  median {statistics.median(lat):.2f}  max {max(lat):.2f}  "
          f"-> {'OK' if max(lat) <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
