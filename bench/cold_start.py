"""The first day after a cold start, as `scripts/demo` lives it: what alerts, by start hour.

    .venv/bin/python bench/cold_start.py [--hours 1,5,9,13,17,21] [--incident] [--live 24]

For each local start hour this writes the demo's order stream (its `DemoFeeder`: 30,000
orders a day, seed 0, the demo's lead-in, `--history` hours before the start)
into a SQLite order database with the demo's config, and replays it (`watchdog.replay`, the daemon's
pipeline, detection and alert lifecycle) with the demo's warm-up and its poll every two
simulated minutes, for `--live` hours. Without `--incident` every alert is a false one.
With it, the demo's carrier outage (中国联通, 18 a minute for 20 minutes) starts 20
minutes into the live stream, and the table gives the minutes from its onset to the first
system_fault alert.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchdog.cli import setup_logging  # noqa: E402
from watchdog.cli_demo import HISTORY_HOURS, INCIDENTS, SHANGHAI, demo_config  # noqa: E402
from watchdog.config import Config  # noqa: E402
from watchdog.demo_db import DemoFeeder, create_order_db  # noqa: E402
from watchdog.detect.episodes import Transition  # noqa: E402
from watchdog.replay import replay  # noqa: E402

DAY = datetime(2026, 12, 3)  # a Thursday, the day the demo's outage went unreported
POLL = timedelta(minutes=2)  # the demo polls every 2 s at 60x


def run(start: datetime, history: float, live: float, incident: bool
        ) -> tuple[list[tuple[datetime, str, bool]], float | None]:
    end = start + timedelta(hours=live)
    onset = start + timedelta(minutes=20)
    injected = [INCIDENTS["carrier-outage"](onset)] if incident else []
    fired: list[tuple[datetime, str, bool]] = []
    delay = None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config.model_validate(demo_config(Path(tmp), 0, POLL.total_seconds()))
        engine = create_order_db(cfg.source.url)
        DemoFeeder(engine, start=start, history=timedelta(hours=history), incidents=injected,
                   lead_in=True).backfill(until=end)
        engine.dispose()

        def seen(t: Transition) -> None:
            nonlocal delay
            if t.status != "firing":
                return
            s = t.signal
            at = s.at.astimezone(SHANGHAI).replace(tzinfo=None)
            hit = incident and s.category == "system_fault" \
                and onset <= at <= onset + timedelta(minutes=40)
            if hit and delay is None:
                delay = (at - onset).total_seconds() / 60
            fired.append((at, f"{s.kind} {s.category} {s.labels} {s.observed:g} / "
                              f"{s.expected:.3g}", hit))

        replay(cfg, start.replace(tzinfo=SHANGHAI), end.replace(tzinfo=SHANGHAI),
               step=POLL, warmup=timedelta(hours=history), on_transition=seen)
    return fired, delay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", default="1,5,9,13,17,21",
                    help="local start times, comma-separated, H (at H:30) or H:MM "
                    "(default: %(default)s)")
    ap.add_argument("--history", type=float, default=HISTORY_HOURS,
                    help="hours backfilled (default: the demo's, %(default)s)")
    ap.add_argument("--live", type=float, default=24.0, help="hours replayed after the start")
    ap.add_argument("--incident", action="store_true", help="the demo's carrier outage")
    args = ap.parse_args()
    setup_logging(None, "warning")
    rows = []
    for x in args.hours.split(","):
        h, _, m = x.partition(":")
        start = DAY + timedelta(hours=int(h), minutes=int(m or 30))
        began = time.monotonic()
        fired, delay = run(start, args.history, args.live, args.incident)
        for at, what, hit in fired:
            print(f"start {start:%H:%M}: {at:%m-%d %H:%M} {what}"
                  f"{'  (the incident)' if hit else ''}", flush=True)
        rows.append((start, sum(1 for f in fired if not f[2]), delay,
                     time.monotonic() - began))
    print(f"\n| start (local) | false alerts in {args.live:g} h | incident found after |"
          "\n|---|---|---|")
    for start, false, delay, _ in rows:
        found = "-" if not args.incident else ("none" if delay is None else f"{delay:.0f} min")
        print(f"| {start:%H:%M} | {false} | {found} |")
    print(f"\n{sum(r[1] for r in rows)} false alerts; {sum(r[3] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
