"""What follows a poll on the leading replica: detection, then the alert lifecycle.

The daemon calls `after_poll` with the same `now` it gave `Pipeline.poll`; `replay` calls
this same function on its simulated clock (delivering only with `--send`), so a backtest
runs the production detection, silences, inhibition, maintenance and grouping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from .detect.episodes import Transition
from .pipeline import PollReport
from .wiring import Parts

if TYPE_CHECKING:
    from .alerts.values import Notification

log = structlog.get_logger("watchdog.tick")


@dataclass(frozen=True, slots=True)
class Tick:
    transitions: list[Transition]
    notifications: list[Notification] = field(default_factory=list)
    """Queued in the outbox by this evaluation (delivered at once unless told not to)."""
    muted: dict[str, str] = field(default_factory=dict)
    """Firing alerts kept quiet, by fingerprint: `silence:<id>`, `maintenance:<name>` or
    `inhibited:<fingerprint>` (only with `explain`)."""


def after_poll(parts: Parts, report: PollReport | None, now: datetime, *,
               learning: bool = False, deliver: bool = True, explain: bool = False) -> Tick:
    """Detect on the poll's fresh cancellations and hand the signals to alerting.

    After a failed poll (`report` None) the open episodes are still handed over, so a
    firing alert does not resolve just because the order database is down. `learning`
    (a replay's warm-up) only learns: no tests, no alerts. `deliver` False queues
    notifications without sending them; `explain` also says which alerts are muted.
    """
    stage, alerting = parts.stage, parts.alerting
    if stage is None:
        return Tick([])
    transitions = stage.after_poll(report, now, learning=learning) if report is not None \
        else []
    for t in transitions:
        s = t.signal
        log.info("signal", status=t.status, kind=s.kind, labels=dict(s.labels),
                 observed=s.observed, expected=round(s.expected, 2), severity=s.severity)
    if alerting is None or learning:
        return Tick(transitions)
    notes = alerting.evaluate([t.signal for t in transitions] + stage.detector.active(), now,
                              deliver=deliver)
    return Tick(transitions, notes, _muted(parts, now) if explain else {})


def _muted(parts: Parts, now: datetime) -> dict[str, str]:
    from .alerts.lifecycle import Mutes, mutes_for
    from .alerts.state import load_silences, load_state

    assert parts.alerting is not None
    a = parts.alerting.cfg.alerting
    with parts.store.engine.connect() as conn:
        alerts = load_state(conn).alerts
        mutes = Mutes(load_silences(conn, now), a.inhibit, a.maintenance)
    return {fp: m.reason for fp, m in mutes_for(alerts, mutes, now).items()}
