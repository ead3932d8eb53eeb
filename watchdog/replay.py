"""Backtesting: the daemon's pipeline and detection over historical rows, simulated clock.

`replay` steps `now` from `since` to `until` by the poll interval and calls exactly what
the daemon calls each tick: `Pipeline.poll(now)`, then `tick.after_poll` (detection and
the alert lifecycle: silences, inhibition, maintenance, grouping). The source sees only
rows whose change time is at most `now` (the future is not visible yet). State goes to a
separate database (a temporary SQLite file unless given), so a backtest never touches
production state; the silences it honours are those in that database. Notifications are
queued there and reported, and sent through the configured channels only with `send`.

A warm-up before `since` runs the same code with larger steps in learning mode (baselines
learn, nothing is tested).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .config import Config, StateConfig
from .detect import state as _detect_tables  # noqa: F401 - registers the detector's tables
from .detect.episodes import Transition
from .detect.stage import open_stage
from .model import Cursor
from .source import OrderSource
from .tick import Tick, after_poll
from .wiring import Parts, assemble

LEARN_STEP = timedelta(minutes=15)


class ReplaySource(OrderSource):
    """An order source that cannot see rows changed after the simulated `until`."""

    until: datetime | None = None

    def fetch_statement(self, after: Cursor | None, limit: int) -> sa.Select[Any]:
        stmt = super().fetch_statement(after, limit)
        if self.until is None:
            return stmt
        changed = stmt.selected_columns["wd_changed_at"]
        column = getattr(changed, "element", changed)
        return stmt.where(column <= sa.bindparam("wd_until", self._bind_time(self.until)[1]))


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    polls: int
    learning_polls: int
    cancellations: int
    transitions: int
    state_url: str


def replay(cfg: Config, since: datetime, until: datetime, *, state_url: str | None = None,
           step: timedelta | None = None, warmup: timedelta = timedelta(0),
           on_transition: Callable[[Transition], None] = lambda t: None,
           on_progress: Callable[[int], None] | None = None,
           before_poll: Callable[[datetime], None] | None = None,
           tmp_dir: Path | None = None, send: bool = False,
           on_tick: Callable[[Tick], None] | None = None) -> ReplaySummary:
    """Run the pipeline, detection and alert lifecycle from `since - warmup` to `until`.

    `on_transition` receives each firing/updated/resolved transition from `since` on;
    `on_tick` each tick's transitions, queued notifications and muted alerts;
    `on_progress` the number of polls done since the last call. `before_poll(now)` lets a
    test harness write the rows committed by `now` first (a live feed instead of a table
    whose rows already hold their last state). `send` delivers the notifications through
    the configured channels (waiting for them at the end); otherwise nothing is sent.
    """
    if until <= since:
        raise ValueError("--until must be after --since")
    step = step or cfg.poll.interval
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        url = state_url or f"sqlite:///{Path(tmp) / 'replay-state.db'}"
        rcfg = cfg.model_copy(update={
            "state": StateConfig(url=url, retention=cfg.state.retention),
            "source": cfg.source.model_copy(update={"initial_lookback": timedelta(0)}),
        })
        clock = _Clock(since - warmup)
        parts = assemble(rcfg, monitor=True, clock=clock)
        source = ReplaySource(rcfg.source)
        parts.pipeline.source = source
        try:
            parts.stage = open_stage(rcfg, parts.store, clock.now)
            summary = _run(parts, source, clock, since, until, step, on_transition, on_tick,
                           on_progress, before_poll, url, send)
            if send and parts.alerting is not None:
                parts.alerting.finish(within=30.0)
            return summary
        finally:
            source.close()
            parts.close()


def replay_steps(since: datetime, until: datetime, step: timedelta,
                 warmup: timedelta = timedelta(0)) -> int:
    """How many polls a replay makes (for a progress bar)."""
    learn = int(warmup / LEARN_STEP) + 1 if warmup else 0
    return learn + int((until - since) / step) + 1


class _Clock:
    """The simulated clock the alert lifecycle and the outbox read."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _run(parts: Parts, source: ReplaySource, clock: _Clock, since: datetime,
         until: datetime, step: timedelta, on_transition: Callable[[Transition], None],
         on_tick: Callable[[Tick], None] | None,
         on_progress: Callable[[int], None] | None,
         before_poll: Callable[[datetime], None] | None, url: str,
         send: bool) -> ReplaySummary:
    polls = learning_polls = cancellations = transitions = 0
    now = start = clock.now
    stage = parts.stage
    assert stage is not None
    while now <= until:
        clock.now = now
        learning = now < since
        if before_poll:
            before_poll(now)
        source.until = now
        if parts.store.load_cursor() is None:
            # no row read yet: the first cursor is `start` (the pipeline starts an empty
            # state at now - initial_lookback, which would skip the empty polls' spans)
            parts.pipeline.cfg = parts.pipeline.cfg.model_copy(
                update={"initial_lookback": now - start})
        report = parts.pipeline.poll(now)
        # a backlog larger than one poll's page budget is read before the clock moves on
        while not report.caught_up:
            more = parts.pipeline.poll(now)
            report = _merge(report, more)
        cancellations += len(report.fresh)
        tick = after_poll(parts, report, now, learning=learning, deliver=send,
                          explain=on_tick is not None)
        for t in tick.transitions:
            transitions += 1
            on_transition(t)
        if on_tick is not None and not learning:
            on_tick(tick)
        polls += 1
        learning_polls += learning
        if on_progress:
            on_progress(1)
        if learning:
            now = min(now + max(LEARN_STEP, step), since)
        else:
            now += step
    stage.save(until)
    return ReplaySummary(polls, learning_polls, cancellations, transitions,
                         sa.make_url(url).render_as_string(hide_password=True))


def _merge(a: Any, b: Any) -> Any:
    from dataclasses import replace

    return replace(b, fresh=a.fresh + b.fresh, orders=a.orders + b.orders,
                   orders_since=a.orders_since or b.orders_since)
