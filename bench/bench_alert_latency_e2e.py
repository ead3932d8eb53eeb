"""Alert latency through the real daemon and the real detector: commit -> webhook.

A realistic order stream (the demo's simulated 172号卡 platform, ~30k orders a day) is
backfilled for `--history` hours, counted and learned (as `cancel-watchdog learn` would),
then fed live at real time while a `cancel-watchdog run` process polls it with detection
and a webhook channel (Alertmanager v4 payload) pointed at a receiver in this process.
One after another, `--incidents` bursts are committed: `--burst` cancellations of one
category on one carrier, in one transaction. Measured: the commit returning -> the
firing notification for that category arriving. Target: p99 <= poll interval + 2 s.

Episodes must end before a series can alert again, so categories rotate and a category
is reused only after its resolved notice arrived; bursts are at least `--gap` apart (more
than the spike window: two bursts in one window read as a traffic surge). That makes one
run slow (~66 s an incident), so several runs, each its own platform and daemon, can go
in parallel and be merged (see RESULTS.md for the settings):

    .venv/bin/python bench/bench_alert_latency_e2e.py --incidents 10 --poll 2 \
        --seed K --start-at T --dir /tmp/lat/p2_K          # K = 1..5, one T for all
    .venv/bin/python bench/bench_alert_latency_e2e.py --merge /tmp/lat/p2_*/result.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_breakdown import breakdown, read_log  # noqa: E402

from tests.e2e.helpers import WebhookReceiver, free_port, metric_samples, wait_for  # noqa: E402
from watchdog.cli_demo import DEMO_DIMENSIONS, DEMO_STATUSES  # noqa: E402
from watchdog.config import load_config  # noqa: E402
from watchdog.demo_db import DemoFeeder, create_order_db, orders_table  # noqa: E402
from watchdog.detect.stage import learn_from_store  # noqa: E402
from watchdog.simulate.catalog import CARRIERS, PRODUCTS, PROVINCES  # noqa: E402
from watchdog.wiring import assemble  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
# One reason per category, taken from the simulated platform's own texts (known templates,
# so the burst is a spike of a familiar reason, not a new-template alert).
REASONS = {
    "system_fault": "BSS接口超时",
    "compliance": "一证五号校验未通过",
    "supply_shortage": "号码资源不足",
    "operator_error": "身份证号码错误",
    "customer_initiated": "客户主动撤单",
    "duplicate": "重复下单",
}
ID_BASE = 9_000_000_000_000_000  # far above the simulator's ids (hours since 2000 * 1e6)


class Receiver(WebhookReceiver):
    """The webhook endpoint: keeps every payload with its arrival time (time.time())."""

    def alerts(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, alert) for every alert of every payload so far, in arrival order."""
        with self.lock:
            return [(at, a) for at, p in self.got for a in p.get("alerts", [])]

    def firing_since(self, category: str, since: float) -> tuple[float, dict[str, Any]] | None:
        for at, a in self.alerts():
            if at > since and a["status"] == "firing" and a["labels"].get("category") == category:
                return at, a
        return None

    def open_categories(self) -> dict[str, float]:
        """Categories with an alert not yet resolved at the webhook -> 0; resolved -> when."""
        last: dict[str, tuple[str, str, float]] = {}
        for at, a in self.alerts():
            last[a["fingerprint"]] = (a["labels"].get("category", ""), a["status"], at)
        out: dict[str, float] = {}
        for category, status, at in last.values():
            if status == "firing":
                out[category] = float("inf")
            else:
                out[category] = max(out.get(category, 0.0), at)
        return out


def write_config(directory: Path, receiver: int, poll: float, port: int) -> Path:
    """The demo's source mapping, a webhook channel, and detection/grouping settings that
    let one series alert again within about two minutes (the bench needs 50 episodes)."""
    cfg = {
        "source": {
            "url": f"sqlite:///{directory / 'orders.db'}", "table": "orders",
            "columns": {"id": "id", "status": "status", "changed_at": "updated_at",
                        "reason": ["remark"], "created_at": "created_at"},
            "cancelled_statuses": DEMO_STATUSES, "dimensions": DEMO_DIMENSIONS,
            "initial_lookback": "30d", "count_orders": True,
        },
        "state": {"url": f"sqlite:///{directory / 'state.db'}"},
        "poll": {"interval": f"{poll}s"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "logging": {"format": "json"},
        "detect": {"spike": {"window": "1m"}, "resolve_after": "30s",
                   "step": {"enabled": False}},
        "alerting": {"default_channels": ["hook"], "group_interval": "10s"},
        "channels": {"hook": {"type": "webhook",
                              "urls": [f"http://127.0.0.1:{receiver}/alerts"]}},
    }
    path = directory / "config.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def warm(config: Path, history: timedelta) -> int:
    """Count the backfilled history and learn baselines from it (as the demo does)."""
    cfg = load_config(config)
    parts = assemble(cfg, monitor=True)
    now = datetime.now(UTC)
    parts.take_lead(now)
    while not parts.pipeline.poll(now).caught_up:
        pass
    assert parts.stage is not None
    learned = learn_from_store(parts.stage, now - history, now)
    parts.close(now)
    return learned


def burst_rows(rng: random.Random, serial: itertools.count, category: str, carrier: str,
               n: int) -> list[dict[str, Any]]:
    now = datetime.now(SHANGHAI).replace(tzinfo=None)
    products = [p for p in PRODUCTS if p.carrier == carrier]
    rows = []
    for _ in range(n):
        oid = ID_BASE + next(serial)
        p, prov = rng.choice(products), rng.choice(PROVINCES)
        rows.append({
            "id": oid, "order_no": f"BENCH{oid}", "status": "已撤单",
            "remark": REASONS[category], "carrier": carrier, "upstream": p.upstream,
            "product": p.name, "distributor_id": f"D{rng.randrange(10_000, 99_999)}",
            "province": prov.name, "city": prov.cities[0][0], "stage": "carrier",
            "channel": "h5", "created_at": now - timedelta(minutes=rng.uniform(5, 90)),
            "updated_at": now,
        })
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="bench-latency-e2e-"))
    directory.mkdir(parents=True, exist_ok=True)
    receiver = Receiver()
    port = free_port()
    config = write_config(directory, receiver.port, args.poll, port)
    engine = create_order_db(f"sqlite:///{directory / 'orders.db'}")
    history = timedelta(hours=args.history)
    start = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    feeder = DemoFeeder(engine, speed=1.0, seed=args.seed, start=start, history=history)
    t0 = time.perf_counter()
    written = feeder.backfill()
    stop = threading.Event()
    # Live from here on: the stream's timestamps follow the wall clock during warm-up too.
    feed = threading.Thread(target=feeder.run, args=(stop,), daemon=True)
    feed.start()
    learned = warm(config, history)
    print(f"backfilled {written} writes ({args.history:g} h), learned from {learned} "
          f"cancellations in {time.perf_counter() - t0:.0f}s; dir {directory}", flush=True)

    log = directory / "daemon.log"
    daemon = subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(config)],
                              stdout=log.open("ab"), stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    table = orders_table(sa.MetaData())
    rng = random.Random(args.seed)
    serial = itertools.count(1)
    incidents: list[dict[str, Any]] = []
    try:
        wait_for(lambda: any(n == "watchdog_leader" and v == 1
                             for n, _, v in metric_samples(port)), 60, "the daemon to lead", log)
        # The daemon's first polls and any start-up alert; parallel runs start together.
        time.sleep(max(args.settle, args.start_at - time.time()))
        background = len(receiver.alerts())
        categories = itertools.cycle(REASONS)
        carriers = itertools.cycle(CARRIERS)
        for i in range(args.incidents):
            category, reuse_at = _next_free(receiver, categories, args.poll)
            # One burst per spike window: two bursts in one window look like a traffic
            # surge to the detector (the traffic factor scales expectations) and may not fire.
            if incidents:
                reuse_at = max(reuse_at, incidents[-1]["committed"] + args.gap)
            while time.time() < reuse_at:
                time.sleep(0.1)
            time.sleep(rng.uniform(0, args.poll))  # land anywhere in the poll cycle
            carrier = next(carriers)
            rows = burst_rows(rng, serial, category, carrier, args.burst)
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
            committed = time.time()
            hit = None
            deadline = committed + args.poll + 60
            while hit is None and time.time() < deadline:
                time.sleep(0.01)
                hit = receiver.firing_since(category, committed)
            inc = {"n": i + 1, "category": category, "carrier": carrier,
                   "committed": committed, "received": hit[0] if hit else None,
                   "latency": hit[0] - committed if hit else None,
                   "labels": hit[1]["labels"] if hit else None,
                   "observed": hit[1]["annotations"].get("observed") if hit else None}
            incidents.append(inc)
            lat = f"{inc['latency']:.2f}s" if hit else "MISSED"
            print(f"  #{i + 1:2d} {category:18s} {carrier}: {lat} "
                  f"{inc['labels'] if hit else ''}", flush=True)
        poll_sum = sum(v for n, _, v in metric_samples(port)
                       if n == "watchdog_poll_duration_seconds_sum")
        poll_count = sum(v for n, _, v in metric_samples(port)
                         if n == "watchdog_poll_duration_seconds_count")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        stop.set()
        feed.join(10)
        receiver.server.shutdown()
        engine.dispose()
    events = read_log(log)
    for inc in incidents:
        inc.update(breakdown(events, inc))
    result = {"poll": args.poll, "incidents": incidents, "background_alerts": background,
              "mean_poll_s": poll_sum / poll_count if poll_count else None,
              "dir": str(directory)}
    (directory / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return result


def _next_free(receiver: Receiver, categories: itertools.cycle, poll: float
               ) -> tuple[str, float]:
    """The next category in rotation whose alerts have all resolved at the webhook, and
    when it may be used: one poll after its resolved notice, when its group is gone."""
    while True:
        state = receiver.open_categories()
        for _ in range(len(REASONS)):
            category = next(categories)
            resolved_at = state.get(category, 0.0)
            if resolved_at != float("inf"):
                return category, resolved_at + poll + 1
        time.sleep(0.2)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def report(result: dict[str, Any]) -> None:
    poll = result["poll"]
    incs = result["incidents"]
    lat = [i["latency"] for i in incs if i["latency"] is not None]
    target = poll + 2
    print(f"\npoll interval {poll:g}s, {len(incs)} incidents, {len(incs) - len(lat)} missed, "
          f"{result['background_alerts']} background alerts before the first incident; "
          f"target p99 <= {target:g}s")
    if not lat:
        return
    p = {q: pct(lat, q) for q in (50, 95, 99)}
    print(f"min {min(lat):.2f}  p50 {p[50]:.2f}  p95 {p[95]:.2f}  p99 {p[99]:.2f}  "
          f"max {max(lat):.2f}  mean {statistics.mean(lat):.2f}  -> "
          f"{'met' if p[99] <= target else 'MISSED'}")
    for key in ("to_signal", "signal_to_queued", "queued_to_received"):
        xs = [i[key] for i in incs if i.get(key) is not None]
        if xs:
            print(f"  {key:20s} p50 {pct(xs, 50):.2f}  p95 {pct(xs, 95):.2f}  "
                  f"max {max(xs):.2f}  (n={len(xs)})")
    if result["mean_poll_s"] is not None:
        print(f"  mean poll duration {result['mean_poll_s']:.3f}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=50)
    ap.add_argument("--poll", type=float, default=2.0)
    ap.add_argument("--burst", type=int, default=30, help="cancellations per incident")
    ap.add_argument("--history", type=float, default=26.0, help="hours of warm history")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds before the first")
    ap.add_argument("--gap", type=float, default=65.0,
                    help="least seconds between two bursts (more than detect.spike.window)")
    ap.add_argument("--start-at", type=float, default=0.0,
                    help="Unix time before which no burst is committed (parallel runs)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--merge", nargs="+", type=Path, metavar="RESULT_JSON",
                    help="only report over the result.json files of several runs")
    args = ap.parse_args()
    if args.merge:
        runs = [json.loads(f.read_text(encoding="utf-8")) for f in args.merge]
        polls = {r["poll"] for r in runs}
        assert len(polls) == 1, f"runs with different poll intervals: {polls}"
        polled = [r["mean_poll_s"] for r in runs if r["mean_poll_s"] is not None]
        report({"poll": polls.pop(), "incidents": [i for r in runs for i in r["incidents"]],
                "background_alerts": sum(r["background_alerts"] for r in runs),
                "mean_poll_s": statistics.mean(polled) if polled else None})
        return
    report(run(args))


if __name__ == "__main__":
    main()
