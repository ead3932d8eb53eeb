"""Feed the simulated order stream into an order database (the compose stack's PostgreSQL).

`cancel-watchdog demo` does the same into SQLite and runs the daemon itself; here the
daemon runs in its own container, as in production, and this script plays the platform.

    python feed_demo.py --url postgresql+psycopg://feeder:...@postgres/orders --speed 60
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import timedelta

import sqlalchemy as sa

from watchdog.demo_db import DemoFeeder, create_order_db


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ORDERS_DB_URL"),
                        help="SQLAlchemy URL of the order database (default: $ORDERS_DB_URL)")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="simulated seconds per wall-clock second")
    parser.add_argument("--history", type=float, default=2.0,
                        help="hours of history written before the live stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url or ORDERS_DB_URL is required")

    engine = create_order_db(args.url)
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT count(*) FROM orders")).scalar():
            # The stream is deterministic per seed: replaying it would collide with the
            # rows already there.
            print("feed_demo: the order table already has rows; to start over run "
                  "`docker compose down -v`", flush=True)
            return 0
    feeder = DemoFeeder(engine, speed=args.speed, seed=args.seed,
                        history=timedelta(hours=args.history), lead_in=True)
    print(f"feed_demo: backfilled {feeder.backfill()} rows; streaming at {args.speed:g}x",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    feeder.run(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
