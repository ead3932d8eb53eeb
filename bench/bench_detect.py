"""Detector cost per poll with ~5,000 live series, and its memory.

    .venv/bin/python bench/bench_detect.py [--series 5000] [--polls 600] [--distributors N]

Builds a detector with 7 categories x (1 + 6 dimensions x top-K values) series, warms it
for two simulated days (learning mode), then measures `observe` + `step` per 30 s poll at
daytime volume (about 10 cancellations a minute), in wall time and in this process's CPU
time (on a shared machine the wall figures include preemption by other processes).
Memory: tracemalloc peak of the warmed detector (Python allocations).

`--distributors N` also feeds new orders per distributor (what `source.count_orders_by`
hands the volume test: ~50 orders a minute over N distributors, a few busy and a long
tail) and gives the cancellations those distributors, so the volume table runs at its
bound (`detect.volume.max_values`, 1,000) with N far above it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from random import Random

from watchdog.detect import DetectConfig, Detector
from watchdog.model import Cancellation, Classified, OrderCount, Verdict

CATS = ("compliance", "operator_error", "customer_initiated", "duplicate", "supply_shortage",
        "system_fault", "unknown")
DIMS = ("carrier", "upstream", "province", "product", "distributor", "stage")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--polls", type=int, default=600)
    ap.add_argument("--distributors", type=int, default=0,
                    help="also feed new orders per distributor over this many of them")
    args = ap.parse_args()
    # series ~= (7 categories + ALL) x (1 + sum of K): choose K per dimension to reach it
    k = max(1, round((args.series / 8 - 1) / len(DIMS)))
    cfg = DetectConfig(default_top_k=k)
    rng = Random(1)
    values = {d: [f"{d}{i}" for i in range(k + 5)] for d in DIMS}
    n_dist = args.distributors
    if n_dist:
        values["distributor"] = [f"D{i}" for i in range(n_dist)]
    # cumulative once: rng.choices with plain weights sums all N on every call
    cum = list(accumulate(1.0 / (i + 1) for i in range(max(n_dist, 1))))
    tracemalloc.start()
    det = Detector(cfg, DIMS)
    now = datetime(2024, 5, 6, tzinfo=UTC)
    serial = 0

    def events(n: int, at: datetime) -> list[Classified]:
        nonlocal serial
        out = []
        for _ in range(n):
            serial += 1
            dims = {d: pick(d) for d in DIMS}
            t = at - timedelta(seconds=rng.uniform(0, 30))
            c = Cancellation(str(serial), "已撤单", f"原因 {rng.randrange(300)}", t, t, dims)
            out.append(Classified(c, Verdict(rng.choice(CATS), "r")))
        return out

    def orders(minutes: float, at: datetime) -> list[OrderCount]:
        """New orders per distributor in the `minutes` before `at`, per minute."""
        if not n_dist:
            return []
        out = []
        for j in range(max(1, round(minutes))):
            minute = (at - timedelta(minutes=j + 1)).replace(second=0, microsecond=0)
            picks = rng.choices(values["distributor"], cum_weights=cum, k=50)
            out += [OrderCount({"distributor": v}, picks.count(v), minute, count_by=True)
                    for v in set(picks)]
        return out

    def pick(d: str) -> str:
        if d == "distributor" and n_dist:
            return rng.choices(values[d], cum_weights=cum)[0]
        return rng.choice(values[d])

    # touch every value of every dimension in every category so all series exist
    seed = []
    for cat in CATS:
        for i in range(k + 5):
            dims = {d: values[d][i] for d in DIMS}
            seed.append(Classified(Cancellation(f"s{cat}{i}", "已撤单", "x", now, now, dims),
                                   Verdict(cat, "r")))
    det.observe(seed, now, learning=True)
    end = now + timedelta(days=2)
    while now < end:
        now += timedelta(minutes=15)
        det.observe(events(150, now), now, learning=True)
        det.observe_orders(orders(15, now), now - timedelta(minutes=15), now)
        det.step(now, learning=True)
    gc.collect()
    _, peak = tracemalloc.get_traced_memory()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    live = len(det.series)
    costs, cpu = [], []
    for _ in range(args.polls):
        now += timedelta(seconds=30)
        batch = events(rng.randrange(3, 8), now)
        new_orders = orders(1, now) if now.second == 0 else []
        t0, c0 = time.perf_counter(), time.process_time()
        det.observe(batch, now)
        det.observe_orders(new_orders, now - timedelta(minutes=1), now)
        det.step(now)
        costs.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    costs.sort()
    cpu.sort()
    print(f"live series: {live}"
          + (f"; volume table: {len(det.volumes.entries)} of {n_dist} distributors"
             if n_dist and det.volumes is not None else ""))
    print(f"per poll (observe + step), {args.polls} polls: mean {statistics.mean(costs):.1f} ms, "
          f"p50 {costs[len(costs) // 2]:.1f} ms, p99 {costs[int(len(costs) * 0.99)]:.1f} ms, "
          f"max {costs[-1]:.1f} ms")
    # CPU time of this process: what the wall figures are once other processes' load
    # (preemption on a shared machine) is taken out
    print(f"per poll, CPU time: mean {statistics.mean(cpu):.1f} ms, "
          f"p50 {cpu[len(cpu) // 2]:.1f} ms, p99 {cpu[int(len(cpu) * 0.99)]:.1f} ms, "
          f"max {cpu[-1]:.1f} ms")
    print(f"memory (tracemalloc): detector {current / 2**20:.1f} MiB, "
          f"peak while warming {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
