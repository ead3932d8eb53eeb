"""Soak: the real daemon under a steady stream, watched for memory growth, lag and loss.

    .venv/bin/python bench/soak.py                        # 5 min warm-up + 20 min at ~100/s
    .venv/bin/python bench/soak.py --minutes 2 --warmup 1 # a short check that it works
    .venv/bin/python bench/soak.py --alerts                # ... with detection and alerts

The simulated platform (`watchdog.demo_db.DemoFeeder`, with carrier outages and upstream
signature breaks injected every few simulated hours) writes into a SQLite order database
at `--speed` times real time; `--daily-orders` and `--speed` set the rate (defaults: about
100 cancellations a second). The daemon runs as its own process on the same simulated
clock (`bench/soak_daemon.py`: `wiring.assemble` + `daemon.run_daemon`, what `run` does),
SQLite state. Every 5 s the script samples the daemon's RSS (psutil), cursor lag and poll
errors from /metrics. At the end the feeder stops, the daemon catches up, and what it
counted is compared with what the feeder wrote.

Memory: the daemon's detector learns for its first simulated hours (baselines turn warm
after 6 learned hours, new-wording templates are learned for a day; at x144 a simulated
day is 10 minutes), so RSS rises for the first minutes and then levels. `--warmup` minutes
are run first and reported apart; flatness (target: within 10%) compares the median RSS
of the first and the last quarter of the `--minutes` after it.

`--alerts` turns detection and alerting on: a local webhook receiver takes the daemon's
notifications (Alertmanager v4 payloads), the summary counts them per category and
status, and the run fails unless the injected incidents (carrier outages, signature
breaks: system_fault) fired. `--extra-config FILE` appends a YAML fragment (detect, alerting,
routes...) to the daemon's config, for tuning.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.helpers import WebhookReceiver  # noqa: E402
from watchdog.demo_db import DemoFeeder, create_order_db  # noqa: E402
from watchdog.simulate import (  # noqa: E402
    CarrierOutage,
    OrderWrite,
    UpstreamSignatureBreak,
)
from watchdog.simulate.clock import ZONE  # noqa: E402


class RecordingFeeder(DemoFeeder):
    """The demo feeder, also remembering every (order id, status) it wrote as cancelled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written: set[tuple[str, str]] = set()
        self.history: dict[str, list[tuple[Any, ...]]] = {}
        """Per order id, each write: batch, status, stamp, commit due, kind, simulated and
        wall time of the write (to diagnose a miss)."""
        self._batches = 0

    def _count(self, batch: Sequence[OrderWrite]) -> None:
        super()._count(batch)
        self._batches += 1
        self.written.update((str(w.id), w.status) for w in batch if w.cancelled)
        wall, sim = time.time(), self.sim_now()
        for w in batch:
            kind = ("insert" if w.insert else "update") + (" repeat" if w.repeat else "")
            self.history.setdefault(str(w.id), []).append(
                (self._batches, w.status, w.updated_at, w.commit_at, kind, sim, wall))


def scrape(port: int) -> dict[str, float]:
    """Totals of the metrics the soak watches; {} while the endpoint is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("watchdog_cancellations_total", "watchdog_excluded_cancellations_total",
                          "watchdog_poll_errors_total", "watchdog_cursor_lag_seconds",
                          "watchdog_duplicate_rows_total"):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def total(m: dict[str, float]) -> float:
    return m.get("watchdog_cancellations_total", 0) + \
        m.get("watchdog_excluded_cancellations_total", 0)


def final_cancelled(engine: sa.Engine) -> set[tuple[str, str]]:
    """The cancelled rows as the order table holds them at the end."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, status FROM orders WHERE status IN ('已撤单', '审核不通过', '开卡失败')"))
        return {(str(r.id), r.status) for r in rows}


def counted_events(work: Path) -> list[tuple[str, str]]:
    """Every (order id, status) the daemon stored as counted, doubles included."""
    state = sa.create_engine(f"sqlite:///{work / 'state.db'}")
    try:
        with state.connect() as conn:
            return [(r.order_id, r.status) for r in conn.execute(
                sa.text("SELECT order_id, status FROM watchdog_events"))]
    finally:
        state.dispose()


def incidents(start: datetime, hours: int) -> list[CarrierOutage | UpstreamSignatureBreak]:
    """An outage or a signature break every 6 simulated hours, 30 simulated minutes each.

    The first at hour 8: the detector learns baselines for 6 hours before it judges a
    series (docs/detection.md), and the soak starts from 1 hour of history.
    """
    found: list[CarrierOutage | UpstreamSignatureBreak] = []
    for n, h in enumerate(range(8, hours, 6)):
        at = start + timedelta(hours=h)
        if n % 2:
            found.append(UpstreamSignatureBreak("号卡云仓", at, timedelta(minutes=30)))
        else:
            found.append(CarrierOutage(("中国联通", "中国移动", "中国电信")[n % 3], at,
                                       timedelta(minutes=30)))
    return found


def alerting_yaml(receiver_port: int) -> str:
    """Detection on, every notification to the receiver as an Alertmanager v4 webhook."""
    return f"""alerting:
  default_channels: [soak]
channels:
  soak:
    type: webhook
    urls: [http://127.0.0.1:{receiver_port}/alerts]
"""


def alert_summary(payloads: Sequence[dict[str, Any]]) -> tuple[str, int]:
    """'alerts per category and status' and how many system_fault alerts fired."""
    tally: dict[tuple[str, str], int] = {}
    for p in payloads:
        for alert in p.get("alerts", []):
            key = (alert.get("labels", {}).get("category", "?"), alert["status"])
            tally[key] = tally.get(key, 0) + 1
    text = ", ".join(f"{c} {s} {n}" for (c, s), n in sorted(tally.items())) or "none"
    return f"{len(payloads)} notifications; alerts: {text}", \
        tally.get(("system_fault", "firing"), 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0,
                    help="measured minutes after the warm-up")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="minutes run first, while the detector learns (reported apart)")
    ap.add_argument("--daily-orders", type=int, default=300_000)
    ap.add_argument("--speed", type=float, default=144.0)
    ap.add_argument("--alerts", action="store_true",
                    help="detect and alert, to a local webhook receiver; check what arrived")
    ap.add_argument("--extra-config", type=Path, help="a YAML fragment appended to the config")
    ap.add_argument("--dir", type=Path, help="keep the databases and log here")
    args = ap.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="watchdog-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    orders_url = f"sqlite:///{work / 'orders.db'}"
    engine = create_order_db(orders_url)
    # Simulated time runs `speed` times faster than the wall clock; the daemon runs on
    # the same simulated clock (bench/soak_daemon.py), as `cancel-watchdog demo` does.
    start = datetime.now(ZONE).replace(microsecond=0, tzinfo=None)
    run_minutes = args.warmup + args.minutes
    sim_hours = int(run_minutes * 60 * args.speed / 3600) + 2
    injected = incidents(start, sim_hours)
    feeder = RecordingFeeder(engine, speed=args.speed, start=start,
                             history=timedelta(hours=1), daily_orders=args.daily_orders,
                             incidents=injected, clock=time.time)  # type: ignore[arg-type]
    feeder.backfill()

    receiver = WebhookReceiver() if args.alerts else None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = work / "soak.yaml"
    config.write_text(f"""source:
  url: {orders_url}
  table: orders
  cancelled_statuses: [已撤单, 审核不通过, 开卡失败]
  columns: {{created_at: created_at}}
  dimensions:
    carrier: {{column: carrier}}
    upstream: {{column: upstream}}
    province: {{column: province, top_k: 40}}
    product: {{column: product, label: false}}
    distributor: {{column: distributor_id, label: false}}
  initial_lookback: 2h
  # 1 simulated hour = 25 s of wall time at x144: room for the feeder to fall behind
  # its schedule on a loaded machine (the overlap must exceed the longest lateness).
  overlap: 1h
  count_orders: true
state:
  url: sqlite:///{work / 'state.db'}
poll:
  interval: 2s
metrics:
  listen: 127.0.0.1:{port}
logging:
  format: json
""" + (alerting_yaml(receiver.port) if receiver else "")
          + (args.extra_config.read_text(encoding="utf-8") if args.extra_config else ""),
                      encoding="utf-8")
    log = work / "daemon.log"
    t0 = time.time()
    feeder.pump()  # starts the simulated clock at t0 (the feeder's clock is time.time)
    runner = Path(__file__).with_name("soak_daemon.py")
    daemon = subprocess.Popen([sys.executable, str(runner), str(config), start.isoformat(),
                               repr(t0), repr(args.speed)],
                              stdout=log.open("ab"), stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc = psutil.Process(daemon.pid)
    stop = threading.Event()
    writer = threading.Thread(target=feeder.run, args=(stop,), daemon=True)
    writer.start()
    print(f"# soak {datetime.now():%Y-%m-%d %H:%M}, {args.warmup:g} min warm-up + "
          f"{args.minutes:g} min, speed x{args.speed:g},"
          f" {args.daily_orders:,} orders/simulated day; files in {work}", flush=True)
    samples: list[tuple[float, float, dict[str, float]]] = []
    began = time.monotonic()
    try:
        while time.monotonic() - began < run_minutes * 60:
            time.sleep(5)
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}); see {log}")
            rss = proc.memory_info().rss / 2**20
            m = scrape(port)
            samples.append((time.monotonic() - began, rss, m))
            if len(samples) % 12 == 0:
                counted = total(m)
                print(f"  {samples[-1][0]:5.0f}s rss {rss:5.0f} MB, counted {counted:,.0f}, "
                      f"lag {m.get('watchdog_cursor_lag_seconds', 0):.0f}s", flush=True)
        stop.set()
        writer.join(60)
        final = final_cancelled(engine)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            events = counted_events(work)
            counted = total(scrape(port))
            if final <= set(events) and counted == len(events):
                break
            time.sleep(1)
    finally:
        stop.set()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
    wall = samples[-1][0] if samples else 0.0
    rss = [s[1] for s in samples]
    steady = [s[1] for s in samples if s[0] >= args.warmup * 60] or rss
    quarter = max(1, len(steady) // 4)
    first_q = sorted(steady[:quarter])[quarter // 2]
    last_q = sorted(steady[-quarter:])[quarter // 2]
    growth = last_q / first_q - 1
    warm_end = steady[0] if steady else 0.0
    errors = samples[-1][2].get("watchdog_poll_errors_total", 0) if samples else 0
    lag = max((s[2].get("watchdog_cursor_lag_seconds", 0) for s in samples), default=0)
    events = counted_events(work)
    doubles = len(events) - len(set(events))
    missed = final - set(events)
    invented = set(events) - feeder.written
    overwritten = len(feeder.written - set(events) - final)
    print(f"\n| measured | value |\n|---|---|\n"
          f"| wall time | {wall / 60:.1f} min |\n"
          f"| cancellations written (distinct order, status) | {len(feeder.written):,} "
          f"({len(feeder.written) / max(wall, 1):.0f}/s) |\n"
          f"| counted on /metrics / stored events | {counted:,.0f} / {len(events):,} |\n"
          f"| counted twice / final cancelled rows missed / never written | "
          f"{doubles} / {len(missed)} / {len(invented)} |\n"
          f"| statuses overwritten before any poll could see them | {overwritten} |\n"
          f"| peak RSS | {max(rss, default=0):.0f} MB |\n"
          f"| RSS at the end of the {args.warmup:g} min warm-up | {warm_end:.0f} MB |\n"
          f"| median RSS after it, first vs last quarter | {first_q:.0f} -> {last_q:.0f} MB "
          f"({growth:+.1%}; target within 10%) |\n"
          f"| max cursor lag seen | {lag:.0f} s |\n"
          f"| poll errors | {errors:.0f} |\n"
          f"| daemon exit code (SIGTERM) | {code} |")
    if receiver:
        summary, system_faults = alert_summary(receiver.payloads)
        began_sim = [i for i in injected if i.start < start + timedelta(seconds=wall * args.speed)]
        print(f"| incidents injected (system_fault) | {len(began_sim)} |\n"
              f"| received | {summary} |")
        if not system_faults:
            raise SystemExit("no system_fault alert arrived for the injected incidents")
    for order_id, status in sorted(missed)[:20]:
        print(f"missed {order_id} {status}:")
        for batch, status, stamp, due, kind, sim, wall in feeder.history.get(order_id, []):
            print(f"    batch {batch} {kind} {status} stamped {stamp} due {due}, written at "
                  f"simulated {sim:%Y-%m-%d %H:%M:%S} (wall {wall:.3f})")
    if doubles or missed or invented or counted != len(events):
        raise SystemExit("counts differ from what was written")
    if abs(growth) > 0.10:
        raise SystemExit(f"RSS after the warm-up moved {growth:+.1%}: not flat")


if __name__ == "__main__":
    main()
