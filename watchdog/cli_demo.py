"""`cancel-watchdog demo`: the whole watchdog on a simulated order stream, no server needed.

It creates a SQLite order database, backfills a little simulated history, keeps feeding
it in (compressed) real time, and runs the real daemon against it with the same config
shape as config.example.yaml. Every few seconds it prints what the watchdog sees.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from .model import CATEGORY_NAMES_ZH

SHANGHAI = ZoneInfo("Asia/Shanghai")

DEMO_STATUSES = ["已撤单", "审核不通过", "开卡失败"]


def _outage(at: datetime) -> Any:
    from .simulate import CarrierOutage

    return CarrierOutage("中国联通", at, timedelta(minutes=20), rate_per_min=18)


def _pool(at: datetime) -> Any:
    from .simulate import NumberPoolExhausted

    return NumberPoolExhausted("联通大王卡29元", at, timedelta(minutes=40))


def _region(at: datetime) -> Any:
    from .simulate import RegionalPause

    return RegionalPause("河南", at, timedelta(minutes=30))


INCIDENTS = {"carrier-outage": _outage, "number-pool": _pool, "regional-pause": _region}
HISTORY_HOURS = 72.0
"""Three days of history, what the baselines need before a time of day is routine: with
one, the first night's timeout sweep alerted at every start hour (bench/cold_start.py).
About 40 s of set-up in all with the lead-in, 21 s more than one day (bench/RESULTS.md)."""
DEMO_DIMENSIONS = {
    "carrier": {"column": "carrier"},
    "upstream": {"column": "upstream"},
    "province": {"column": "province", "top_k": 40},
    # on its own family (watchdog_cancellations_by_dimension_total): a label, it would
    # multiply the series of every other one (see config.example.yaml)
    "product": {"column": "product", "top_k": 50, "alone": True},
    "distributor": {"column": "distributor_id", "label": False},
    "stage": {"column": "stage", "label": False},
}


def demo_config(directory: Path, port: int, interval: float) -> dict[str, Any]:
    """The demo's config: the same mapping as config.example.yaml, on local files."""
    return {
        "source": {
            "url": f"sqlite:///{directory / 'orders.db'}",
            "table": "orders",
            "columns": {"id": "id", "status": "status", "changed_at": "updated_at",
                        "reason": ["remark"], "created_at": "created_at"},
            "cancelled_statuses": DEMO_STATUSES,
            "dimensions": DEMO_DIMENSIONS,
            "initial_lookback": "30d",
            "count_orders": True,
        },
        "state": {"url": f"sqlite:///{directory / 'state.db'}"},
        "poll": {"interval": f"{interval}s"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise click.ClickException("no free TCP port on 127.0.0.1")


@click.command()
@click.option("--speed", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Simulated seconds per wall-clock second (60: one simulated hour a minute).")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop after this many wall-clock seconds (default: until Ctrl-C).")
@click.option("--history", type=click.FloatRange(min=0), default=HISTORY_HOURS,
              show_default=True,
              help="Hours of simulated history written before the live stream starts.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put orders.db and state.db (default: a new temporary folder).")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True,
              help="Port of /metrics (a free one is chosen if it is taken).")
@click.option("--every", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Seconds between status tables.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation.")
@click.option("--incident", type=click.Choice(sorted(INCIDENTS)), default=None,
              help="Inject an incident 20 simulated minutes into the live stream, to see "
              "detection fire (and resolve once it is over).")
def demo(speed: float, duration: float | None, history: float, directory: Path | None,
         port: int, every: float, seed: int, incident: str | None) -> None:
    """Run the watchdog on a simulated 172号卡-style order stream (SQLite, no server).

    Shows the counts per category as the daemon sees them, and where /metrics is.
    Stop with Ctrl-C.
    """
    from .cli import setup_logging
    from .config import Config
    from .daemon import run_daemon
    from .demo_db import DemoFeeder, create_order_db
    from .lease import lease_for
    from .wiring import assemble

    directory = directory or Path(tempfile.mkdtemp(prefix="cancel-watchdog-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port(port)
    interval = 2.0
    cfg = Config.model_validate(demo_config(directory, port, interval))
    setup_logging(None, "warning")

    engine = create_order_db(cfg.source.url)
    start = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    injected = [INCIDENTS[incident](start + timedelta(minutes=20))] if incident else []
    feeder = DemoFeeder(engine, speed=speed, seed=seed, start=start,
                        history=timedelta(hours=history), incidents=injected, lead_in=True)
    click.echo(f"cancel-watchdog demo: order database {directory / 'orders.db'}")
    written = _backfill(feeder)
    click.echo(f"  backfilled {written} rows of simulated history ({history:g} h); "
               f"streaming at {speed:g}x real time")

    # The stream's timestamps are simulated time, ahead of the wall clock at speed > 1.
    def sim_clock() -> datetime:
        return feeder.sim_now().replace(tzinfo=SHANGHAI).astimezone(UTC)

    parts = assemble(cfg, monitor=True, clock=sim_clock)
    _warm_up(parts, sim_clock(), timedelta(hours=history))
    stop = threading.Event()
    feeder_thread = threading.Thread(target=feeder.run, args=(stop,), name="feeder",
                                     daemon=True)
    feeder_thread.start()
    click.echo(f"  metrics: http://127.0.0.1:{port}/metrics   (also /healthz, /readyz)")
    click.echo("  Ctrl-C to stop\n")

    printer = threading.Thread(target=_print_status, args=(parts, feeder, stop, every),
                               daemon=True)
    printer.start()
    if duration:
        threading.Timer(duration, stop.set).start()
    try:
        run_daemon(parts, lease_for(parts.store.engine), stop=stop, clock=sim_clock)
    finally:
        stop.set()
        feeder_thread.join(timeout=10)
        printer.join(timeout=every + 1)
        engine.dispose()
        click.echo(_status_table(parts, feeder))
        click.echo(f"state and order databases kept in {directory}")


def _backfill(feeder: Any) -> int:
    """Write the simulated history, with a progress bar in simulated hours."""
    hour = timedelta(hours=1)
    with click.progressbar(length=max(1, round((feeder.start - feeder.first) / hour)),
                           label="  simulating history (h)", file=sys.stderr,
                           show_pos=True) as bar:
        def advance(at: datetime) -> None:
            bar.update(int((at - feeder.first) / hour) - bar.pos)

        written = feeder.backfill(on_batch=advance)
        bar.update(bar.length - bar.pos)  # the last write comes before the start's hour
        return written


def _warm_up(parts: Any, now: datetime, history: timedelta) -> None:
    """Count the backfilled history and learn baselines from it, as `learn` would, so
    detection is not cold when the live stream starts."""
    from .detect.stage import learn_from_store

    parts.take_lead(now)
    while not parts.pipeline.poll(now).caught_up:
        pass
    learned = learn_from_store(parts.stage, now - history, now)
    click.echo(f"  counted and learned from {learned} historical cancellations")


def _print_status(parts: Any, feeder: Any, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        click.echo(_status_table(parts, feeder))


def _status_table(parts: Any, feeder: Any) -> str:
    """Counts per category as exported on /metrics."""
    per_category: dict[str, float] = {}
    excluded = duplicates = 0.0
    for family in parts.registry.collect():
        for s in family.samples:
            if s.name == "watchdog_cancellations_total":
                cat = s.labels["category"]
                per_category[cat] = per_category.get(cat, 0) + s.value
            elif s.name == "watchdog_excluded_cancellations_total":
                excluded += s.value
            elif s.name == "watchdog_duplicate_rows_total":
                duplicates += s.value
    total = sum(per_category.values()) or 1
    sim = feeder.sim_now()
    head = f"── simulated time {sim:%Y-%m-%d %H:%M} " if sim else "── "
    lines = [head + "─" * max(0, 60 - len(head))]
    for cat, n in sorted(per_category.items(), key=lambda kv: -kv[1]):
        name = f"{CATEGORY_NAMES_ZH.get(cat, cat)} {cat}"
        lines.append(f"  {name:<32} {int(n):>7}  {100 * n / total:5.1f}%")
    lines.append(f"  {'total counted':<32} {int(sum(per_category.values())):>7}")
    lines.append(f"  excluded (tests, bulk ops) {int(excluded)}, repeated callbacks/"
                 f"overlap skipped {int(duplicates)}")
    active = parts.stage.detector.active() if parts.stage else []
    for sig in active:
        scope = ", ".join(f"{k}={v}" for k, v in sig.labels.items() if k != "category")
        name = CATEGORY_NAMES_ZH.get(sig.category, sig.category)
        lines.append(f"  ALERT {sig.kind} {name} {sig.category} {scope}".rstrip()
                     + f": {sig.observed:g} in {sig.window_seconds / 60:g} min, "
                     f"expected {sig.expected:.2g}")
        for c in sig.contributors[:2]:
            lines.append(f"        {c.dimension} {c.value}: {c.observed:g}, "
                         f"expected {c.expected:.2g}")
    if not active:
        lines.append("  alerts: none firing")
    return "\n".join(lines)
