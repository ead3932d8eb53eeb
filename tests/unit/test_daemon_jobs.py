"""The daemon's scheduled jobs: a slow poll is counted, not stacked; pruning is the
leader's job."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta
from types import SimpleNamespace

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from watchdog.daemon import _prune, schedule_poll
from watchdog.metrics import Metrics
from watchdog.web import Health


def test_a_poll_running_past_its_interval_is_counted_not_stacked():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    lock = threading.Lock()
    state = {"running": 0, "most": 0, "runs": 0}
    entered, release, skipped_thrice = threading.Event(), threading.Event(), threading.Event()

    def slow_poll() -> None:
        with lock:
            state["running"] += 1
            state["runs"] += 1
            state["most"] = max(state["most"], state["running"])
        entered.set()
        release.wait(30)
        with lock:
            state["running"] -= 1

    skips: list[object] = []

    def on_skip(event: object) -> None:  # runs after the daemon's own listener
        skips.append(event)
        if len(skips) >= 3:
            skipped_thrice.set()

    scheduler = BackgroundScheduler(timezone=UTC)
    schedule_poll(scheduler, slow_poll, 0.05, metrics)
    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        assert entered.wait(10)
        assert skipped_thrice.wait(10), "the scheduler never found the poll still running"
        with lock:
            assert state["runs"] == 1  # the due runs were not started alongside it
        assert registry.get_sample_value("watchdog_polls_skipped_total") >= 3
        release.set()
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert state["most"] == 1
    assert registry.get_sample_value("watchdog_polls_skipped_total") == len(skips)


def test_prune_runs_on_the_leader_only():
    pruned: list[object] = []
    parts = SimpleNamespace(
        cfg=SimpleNamespace(state=SimpleNamespace(retention=timedelta(days=30))),
        store=SimpleNamespace(prune=lambda before: pruned.append(before) or (0, 0)),
        alerting=None)
    _prune(parts, Health(leader=False))
    assert pruned == []
    _prune(parts, Health(leader=True))
    assert len(pruned) == 1
