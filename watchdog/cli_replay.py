"""`replay` (backtest over historical rows) and `learn` (warm baselines from state)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

import click

from .cli import EXIT_RUNTIME, EXIT_USAGE, config_option, fail, load_or_exit, setup_logging
from .configtypes import parse_duration
from .detect.episodes import Transition

if TYPE_CHECKING:
    from .alerts.values import Notification
    from .tick import Tick


def _when(value: str, zone: ZoneInfo, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{what}: {value!r} is not a date/time (write e.g. 2024-05-01T08:00 or "
             "2024-05-01T00:00:00+08:00)", EXIT_USAGE)
    return t if t.tzinfo else t.replace(tzinfo=zone)


def transition_json(t: Transition, zone: ZoneInfo,
                    muted: str | None = None) -> dict[str, object]:
    s = t.signal
    labels = dict(s.labels)
    return {
        "type": "transition", "status": t.status, "at": s.at.astimezone(zone).isoformat(),
        "started_at": t.started_at.astimezone(zone).isoformat(), "episode": t.episode,
        "kind": s.kind, "category": s.category,
        "dimensions": {k: v for k, v in labels.items() if k != "category"},
        "observed": s.observed, "expected": s.expected, "window_seconds": s.window_seconds,
        "severity": s.severity, "score": s.score,
        "contributors": [{"dimension": c.dimension, "value": c.value, "observed": c.observed,
                          "expected": c.expected, "share_of_excess": c.share_of_excess}
                         for c in s.contributors],
        "samples": list(s.samples), "summary": s.summary,
        "muted": muted,
    }


def notification_json(n: Notification, zone: ZoneInfo, sent: bool) -> dict[str, object]:
    return {
        "type": "notification", "status": n.status,
        "at": n.created_at.astimezone(zone).isoformat(), "channel": n.channel,
        "route": n.route_id, "group": dict(n.group_labels), "sent": sent,
        "alerts": [{**dict(a.labels), "status": a.status} for a in n.alerts],
    }


def notification_text(n: Notification, zone: ZoneInfo, sent: bool) -> str:
    what = ", ".join(" ".join(f"{k}={v}" for k, v in a.labels.items()
                              if k not in ("alertname", "severity")) for a in n.alerts)
    verb = "sent to" if sent else "would notify"
    return (f"{n.created_at.astimezone(zone):%Y-%m-%d %H:%M:%S} -> {verb} {n.channel} "
            f"({n.status}, {len(n.alerts)} alert{'s' if len(n.alerts) != 1 else ''}): {what}")


def muted_reason(t: Transition, tick: Tick) -> str | None:
    from .alerts.lifecycle import alert_labels
    from .alerts.values import fingerprint

    if t.status == "resolved":
        return None
    return tick.muted.get(fingerprint(alert_labels(t.signal)))


def transition_text(t: Transition, zone: ZoneInfo, muted: str | None = None) -> str:
    s = t.signal
    scope = " ".join(f"{k}={v}" for k, v in s.labels.items() if k != "category")
    head = (f"{s.at.astimezone(zone):%Y-%m-%d %H:%M:%S} {t.status.upper():8} {s.kind:12} "
            f"{s.category}{' ' + scope if scope else ''}: {s.observed:g} vs {s.expected:g}")
    if muted:
        head += f"  [muted: {muted}]"
    lines = [head]
    if t.status != "resolved":
        lines += [f"    {c.dimension} {c.value}: {c.observed:g}, expected {c.expected:g} "
                  f"({c.share_of_excess:.0%} of the excess)" for c in s.contributors]
        lines += [f"    e.g. {x}" for x in s.samples]
    return "\n".join(lines)


@click.command()
@config_option
@click.option("--since", required=True, help="Start (ISO date/time; naive = source.timezone).")
@click.option("--until", required=True, help="End (ISO date/time).")
@click.option("--state", "state_url", help="State database URL for the replay "
              "(default: a temporary SQLite file; never point this at production state).")
@click.option("--step", help="Simulated poll interval (default: poll.interval).")
@click.option("--warmup", default="0s", show_default=True,
              help="Learn baselines over this much history before --since (e.g. 14d).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Where to write the transitions (default stdout).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--send", is_flag=True, help="Deliver the notifications through the "
              "configured channels (default: only print what would be sent).")
def replay(config_path: Path, since: str, until: str, state_url: str | None, step: str | None,
           warmup: str, fmt: str, output: TextIO, quiet: bool, send: bool) -> None:
    """Backtest: the daemon's pipeline, detection and alert lifecycle over historical rows
    with a simulated clock.

    Prints every alert transition the daemon would have produced (firing, updated,
    resolved; muted by a silence, maintenance or inhibition) and every notification it
    would have queued. Sends nothing unless --send; writes only to its own state
    database, whose silences it honours (--state).
    """
    from .replay import replay as run_replay
    from .replay import replay_steps

    cfg = load_or_exit(config_path)
    setup_logging(cfg, "warning")
    zone = cfg.source.zone
    t1, t2 = _when(since, zone, "--since"), _when(until, zone, "--until")
    try:
        step_td = parse_duration(step) if step else cfg.poll.interval
        warm_td = parse_duration(warmup)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if t2 <= t1:
        fail("--until must be after --since", EXIT_USAGE)
    if step_td <= timedelta(0):
        fail("--step must be positive", EXIT_USAGE)

    def emit(tick: Tick) -> None:
        for t in tick.transitions:
            muted = muted_reason(t, tick)
            if fmt == "jsonl":
                output.write(json.dumps(transition_json(t, zone, muted), ensure_ascii=False)
                             + "\n")
            else:
                output.write(transition_text(t, zone, muted) + "\n")
        for n in tick.notifications:
            if fmt == "jsonl":
                output.write(json.dumps(notification_json(n, zone, send), ensure_ascii=False)
                             + "\n")
            else:
                output.write(notification_text(n, zone, send) + "\n")
        output.flush()

    total = replay_steps(t1, t2, step_td, warm_td)
    show = not quiet and sys.stderr.isatty()
    with click.progressbar(length=total, label="replaying", file=sys.stderr,
                           hidden=not show) as bar:
        try:
            summary = run_replay(cfg, t1, t2, state_url=state_url, step=step_td,
                                 warmup=warm_td, on_tick=emit, on_progress=bar.update,
                                 send=send)
        except Exception as exc:  # a database error mid-replay: say what, no traceback
            fail(f"replay failed: {exc}", EXIT_RUNTIME)
    click.echo(f"replayed {summary.polls} polls ({summary.learning_polls} warm-up), "
               f"{summary.cancellations} cancellations, {summary.transitions} transitions",
               err=True)


@click.command()
@config_option
@click.option("--since", required=True, help="Learn from stored events since (ISO).")
@click.option("--until", help="... until (default: now).")
def learn(config_path: Path, since: str, until: str | None) -> None:
    """Warm the detector's baselines from the classified events in the state database."""
    from datetime import UTC

    from .detect.stage import learn_from_store, open_stage
    from .store import StateError, StateStore

    cfg = load_or_exit(config_path)
    setup_logging(cfg)
    zone = cfg.source.zone
    t1 = _when(since, zone, "--since")
    t2 = _when(until, zone, "--until") if until else datetime.now(UTC)
    try:
        store = StateStore.open(cfg.state.url)
    except StateError as exc:
        fail(str(exc), EXIT_RUNTIME)
    try:
        stage = open_stage(cfg, store, t2)
        n = learn_from_store(stage, t1, t2)
    finally:
        store.close()
    click.echo(f"learned from {n} events; {len(stage.detector.series)} series")
