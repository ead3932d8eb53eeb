"""The daemon on a simulated clock, for bench/soak.py (as `cancel-watchdog demo` runs it).

    python bench/soak_daemon.py CONFIG START_LOCAL T0_EPOCH SPEED

The soak's feeder writes simulated time at SPEED times real time from T0; the daemon's
`now` must be that simulated time, or the overlap re-read (a window of change time
before now) would look at the wall clock, hours away from the data.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from watchdog.cli import setup_logging
from watchdog.config import load_config
from watchdog.daemon import run_daemon
from watchdog.lease import lease_for
from watchdog.wiring import assemble


def main() -> None:
    config, start_local, t0, speed = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
        float(sys.argv[4])
    start = datetime.fromisoformat(start_local).replace(tzinfo=ZoneInfo("Asia/Shanghai"))

    def sim_clock() -> datetime:
        return (start + timedelta(seconds=(time.time() - t0) * speed)).astimezone(UTC)

    cfg = load_config(config)
    setup_logging(cfg)
    parts = assemble(cfg, monitor=True, clock=sim_clock)  # as `run` does: detect and alert
    sys.exit(run_daemon(parts, lease_for(parts.store.engine), clock=sim_clock))


if __name__ == "__main__":
    main()
