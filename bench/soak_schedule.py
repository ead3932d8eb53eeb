"""The soak's incidents fed straight to the detector: which of them alert, deterministically.

    .venv/bin/python bench/soak_schedule.py [--start 2024-05-06T23:05] [--hours 76]

`bench/soak.py` runs the daemon against the wall clock at x144, so which incidents alert
depends on the machine's load (a poll that stalls for 10 s skips 24 simulated minutes)
and on the hour it was started (its incidents fall every 6 simulated hours from then).
This feeds the same schedule (`soak.incidents`: a carrier outage or 号卡云仓's signature
break every 6 hours, 30 minutes each, the first at hour 8), at the soak's volume, from a
cold start with one hour of history, to the detector through `DetectStage.after_poll`
once a simulated minute, as the scenario harness does (no database, no clock). It prints
every system_fault alert that fired or resolved, and each incident with the minutes from
its onset to the first system_fault alert after it.

`--start` is local (Asia/Shanghai) time: 23:05 puts 号卡云仓's breaks at 13:05 and 01:05
every day, the run of 2026-12-03 15:05 UTC whose third 01:05 break went unreported.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soak import incidents  # noqa: E402

from tests.scenarios.harness import ZONE, Feed, config, polls  # noqa: E402
from watchdog.detect.stage import DetectStage, build_detector  # noqa: E402
from watchdog.rules import load_rules  # noqa: E402
from watchdog.simulate import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=datetime.fromisoformat,
                    default=datetime(2024, 5, 6, 23, 5), help="local start (default: %(default)s)")
    ap.add_argument("--hours", type=int, default=76, help="simulated hours after the start")
    ap.add_argument("--daily-orders", type=int, default=300_000)
    args = ap.parse_args()

    start, end = args.start, args.start + timedelta(hours=args.hours)
    injected = incidents(start, args.hours)
    cfg = config("sqlite://", "sqlite://")
    stage = DetectStage(build_detector(cfg), None, cfg)
    feed = Feed(load_rules([], use_defaults=True))
    history = start - timedelta(hours=1)
    writes = generate(history, end, seed=7, incidents=injected,
                      daily_orders=args.daily_orders, lead_in=timedelta(days=1))
    began = time.monotonic()
    for since, now, batch in polls(writes, history, start, timedelta(minutes=15)):
        stage.after_poll(feed.report(batch, since, now), now, learning=True)
    fired: list[datetime] = []
    for since, now, batch in polls(writes, start, end, timedelta(minutes=1)):
        for t in stage.after_poll(feed.report(batch, since, now), now):
            s = t.signal
            if s.category != "system_fault" or t.status == "updated":
                continue
            at = now.astimezone(ZONE).replace(tzinfo=None)
            if t.status == "firing":
                fired.append(at)
            print(f"{at:%m-%d %H:%M} {t.status:8} {s.kind} {s.labels} "
                  f"{s.observed:g} / {s.expected:g}", flush=True)
    print("\n| incident | onset | first system_fault alert after onset |\n|---|---|---|")
    found = 0
    for i, inc in enumerate(injected):
        nxt = injected[i + 1].start if i + 1 < len(injected) else end
        hits = [f for f in fired if inc.start <= f < nxt]
        what = getattr(inc, "carrier", None) or getattr(inc, "upstream", "")
        delay = f"{(hits[0] - inc.start).total_seconds() / 60:.0f} min" if hits else "none"
        found += bool(hits)
        print(f"| {type(inc).__name__} {what} | {inc.start:%m-%d %H:%M} | {delay} |")
    print(f"\n{found} of {len(injected)} incidents alerted; "
          f"{time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
