"""Detector cost per poll with ~5,000 live series, and its memory.

    .venv/bin/python bench/bench_detect.py [--series 5000] [--polls 600]

Builds a detector with 7 categories x (1 + 6 dimensions x top-K values) series, warms it
for two simulated days (learning mode), then measures `observe` + `step` per 30 s poll at
daytime volume (about 10 cancellations a minute), in wall time and in this process's CPU
time (on a shared machine the wall figures include preemption by other processes).
Memory: tracemalloc peak of the warmed detector (Python allocations).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from random import Random

from watchdog.detect import DetectConfig, Detector
from watchdog.model import Cancellation, Classified, Verdict

CATS = ("compliance", "operator_error", "customer_initiated", "duplicate", "supply_shortage",
        "system_fault", "unknown")
DIMS = ("carrier", "upstream", "province", "product", "distributor", "stage")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--polls", type=int, default=600)
    args = ap.parse_args()
    # series ~= (7 categories + ALL) x (1 + sum of K): choose K per dimension to reach it
    k = max(1, round((args.series / 8 - 1) / len(DIMS)))
    cfg = DetectConfig(default_top_k=k)
    rng = Random(1)
    values = {d: [f"{d}{i}" for i in range(k + 5)] for d in DIMS}
    tracemalloc.start()
    det = Detector(cfg, DIMS)
    now = datetime(2024, 5, 6, tzinfo=UTC)
    serial = 0

    def events(n: int, at: datetime) -> list[Classified]:
        nonlocal serial
        out = []
        for _ in range(n):
            serial += 1
            dims = {d: rng.choice(values[d]) for d in DIMS}
            t = at - timedelta(seconds=rng.uniform(0, 30))
            c = Cancellation(str(serial), "已撤单", f"原因 {rng.randrange(300)}", t, t, dims)
            out.append(Classified(c, Verdict(rng.choice(CATS), "r")))
        return out

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
        t0, c0 = time.perf_counter(), time.process_time()
        det.observe(batch, now)
        det.step(now)
        costs.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    costs.sort()
    cpu.sort()
    print(f"live series: {live}")
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
