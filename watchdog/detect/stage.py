"""The detection step of a poll, shared by the daemon and `replay`.

    stage = open_stage(cfg, store, now)          # load baselines, refill windows
    transitions = stage.after_poll(report, now)  # after every Pipeline.poll(now)

Both drivers call exactly this, so a backtest runs the production detection code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from ..config import Config
from ..pipeline import PollReport
from ..store import StateStore
from .detector import Detector, Paused
from .episodes import Transition
from .state import load_detector, refill_windows, save_detector, window_span

log = structlog.get_logger("watchdog.detect")


@dataclass
class DetectStage:
    detector: Detector
    store: StateStore | None
    cfg: Config
    last_saved: datetime | None = field(default=None)
    caught_up_at: datetime | None = field(default=None)
    """The last poll's `now` when that poll had read everything (None after a backlog
    poll or at start): events stamped before it are late and count at it."""

    def after_poll(self, report: PollReport, now: datetime, *,
                   learning: bool = False) -> list[Transition]:
        """Count the poll's fresh cancellations and orders, evaluate, save when due."""
        d = self.detector
        d.observe(report.fresh, now, learning=learning, since=self.caught_up_at)
        self.caught_up_at = now if report.caught_up else None
        if report.orders_since is not None and report.orders_until is not None:
            d.observe_orders(report.orders, report.orders_since, report.orders_until)
        transitions = d.step(now, learning=learning)
        due = self.last_saved is None or now - self.last_saved >= self.cfg.detect.save_interval
        if self.store is not None and (transitions or due):
            self.save(now)
        return transitions

    def save(self, now: datetime) -> None:
        if self.store is None:
            return
        save_detector(self.store.engine, self.detector)
        self.last_saved = now


def build_detector(cfg: Config, paused: Paused | None = None) -> Detector:
    """A detector for `cfg`; announced maintenance windows (alerting.maintenance) keep
    matching series from opening episodes unless `paused` is given."""
    if paused is None and cfg.alerting.maintenance:
        from ..alerts.maintenance import in_maintenance

        windows = tuple(cfg.alerting.maintenance)

        def paused(labels: Mapping[str, str], now: datetime) -> bool:
            return in_maintenance(labels, windows, now) is not None

    return Detector(cfg.detect, list(cfg.source.dimensions), cfg.source.zone, paused)


def open_stage(cfg: Config, store: StateStore, now: datetime,
               paused: Paused | None = None) -> DetectStage:
    """A stage with the detector's saved state and the last hour's events in its windows."""
    d = build_detector(cfg, paused)
    loaded = load_detector(store.engine, d)
    refilled = refill_windows(d, store.events(now - window_span(d), now), now)
    log.info("detector_loaded", series=loaded, recent_events=refilled,
             episodes=len(d.episodes.items))
    return DetectStage(d, store, cfg, last_saved=now)


def learn_from_store(stage: DetectStage, since: datetime, until: datetime,
                     step_minutes: int = 15) -> int:
    """Warm baselines from the classified events already in the state database."""
    from datetime import timedelta

    from ..model import Cancellation, Classified, Verdict

    d = stage.detector
    step = timedelta(minutes=step_minutes)
    batch: list[Classified] = []
    edge = since + step
    n = 0
    store = stage.store
    assert store is not None
    for e in store.events(since, until):
        while e.event_time >= edge:
            d.observe(batch, edge, learning=True)
            d.step(edge, learning=True)
            batch = []
            edge += step
        batch.append(Classified(Cancellation(e.order_id, e.status, e.reason, e.event_time,
                                             e.event_time, e.dimensions),
                                Verdict(e.category, e.rule)))
        n += 1
    d.observe(batch, edge, learning=True)
    d.step(min(edge, until), learning=True)
    stage.save(until)
    return n
