"""What follows a poll on the leading replica: detection, then the alert lifecycle.

The daemon calls `after_poll` with the same `now` it gave `Pipeline.poll`; `replay` calls
the same `DetectStage.after_poll`, so a backtest runs the production detection.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from .detect.episodes import Transition
from .pipeline import PollReport
from .wiring import Parts

log = structlog.get_logger("watchdog.tick")


def after_poll(parts: Parts, report: PollReport | None, now: datetime) -> list[Transition]:
    """Detect on the poll's fresh cancellations and hand the signals to alerting.

    After a failed poll (`report` None) the open episodes are still handed over, so a
    firing alert does not resolve just because the order database is down.
    """
    stage, alerting = parts.stage, parts.alerting
    if stage is None:
        return []
    transitions = stage.after_poll(report, now) if report is not None else []
    for t in transitions:
        s = t.signal
        log.info("signal", status=t.status, kind=s.kind, labels=dict(s.labels),
                 observed=s.observed, expected=round(s.expected, 2), severity=s.severity)
    if alerting is not None:
        alerting.evaluate([t.signal for t in transitions] + stage.detector.active(), now)
    return transitions
