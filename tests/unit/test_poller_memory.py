"""The daemon's poll job lets go of a poll's report before it starts the next poll.

A report carries every cancellation its poll read (up to max_batches_per_poll pages,
100,000 by default): holding the previous one doubles the peak memory of a catch-up.
"""

from __future__ import annotations

import gc
import threading
import weakref
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from watchdog.daemon import Poller
from watchdog.lease import SoleLease
from watchdog.metrics import Metrics
from watchdog.web import Health


class Report:
    def __init__(self, caught_up: bool) -> None:
        self.caught_up = caught_up
        self.rows_read = self.new = self.duplicates = self.excluded = 0
        self.by_category: dict[str, int] = {}


class Pipeline:
    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.previous: weakref.ref[Report] | None = None
        self.alive_at_next_poll: list[bool] = []

    def poll(self, now, should_stop=None):
        if self.previous is not None:
            gc.collect()
            self.alive_at_next_poll.append(self.previous() is not None)
        self.polls -= 1
        report = Report(caught_up=self.polls == 0)
        self.previous = weakref.ref(report)
        return report


def test_previous_report_is_released_before_the_next_poll():
    pipeline = Pipeline(polls=4)
    parts = SimpleNamespace(pipeline=pipeline, metrics=Metrics(CollectorRegistry()),
                            cfg=None, stage=None, alerting=None)
    seen: list[int] = []
    poller = Poller(parts, Health(leader=True), threading.Event(), SoleLease(),
                    on_report=lambda r: seen.append(id(r)))
    assert poller.poll_until_caught_up()
    assert len(seen) == 4
    assert pipeline.alive_at_next_poll == [False, False, False]
