"""`replay` (backtest over historical rows) and `learn` (warm baselines from state)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import click

from .cli import EXIT_RUNTIME, EXIT_USAGE, config_option, fail, load_or_exit, setup_logging
from .configtypes import parse_duration
from .detect.episodes import Transition


def _when(value: str, zone: ZoneInfo, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{what}: {value!r} is not a date/time (write e.g. 2024-05-01T08:00 or "
             "2024-05-01T00:00:00+08:00)", EXIT_USAGE)
    return t if t.tzinfo else t.replace(tzinfo=zone)


def transition_json(t: Transition, zone: ZoneInfo) -> dict[str, object]:
    s = t.signal
    labels = dict(s.labels)
    return {
        "status": t.status, "at": s.at.astimezone(zone).isoformat(),
        "started_at": t.started_at.astimezone(zone).isoformat(), "episode": t.episode,
        "kind": s.kind, "category": s.category,
        "dimensions": {k: v for k, v in labels.items() if k != "category"},
        "observed": s.observed, "expected": s.expected, "window_seconds": s.window_seconds,
        "severity": s.severity, "score": s.score,
        "contributors": [{"dimension": c.dimension, "value": c.value, "observed": c.observed,
                          "expected": c.expected, "share_of_excess": c.share_of_excess}
                         for c in s.contributors],
        "samples": list(s.samples), "summary": s.summary,
    }


def transition_text(t: Transition, zone: ZoneInfo) -> str:
    s = t.signal
    scope = " ".join(f"{k}={v}" for k, v in s.labels.items() if k != "category")
    head = (f"{s.at.astimezone(zone):%Y-%m-%d %H:%M:%S} {t.status.upper():8} {s.kind:12} "
            f"{s.category}{' ' + scope if scope else ''}: {s.observed:g} vs {s.expected:g}")
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
def replay(config_path: Path, since: str, until: str, state_url: str | None, step: str | None,
           warmup: str, fmt: str, output: TextIO, quiet: bool) -> None:
    """Backtest: run the pipeline and detection over historical rows with a simulated clock.

    Prints every alert transition the daemon would have produced (firing, updated,
    resolved). Sends nothing; writes only to its own state database.
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

    def emit(t: Transition) -> None:
        if fmt == "jsonl":
            output.write(json.dumps(transition_json(t, zone), ensure_ascii=False) + "\n")
        else:
            output.write(transition_text(t, zone) + "\n")
        output.flush()

    total = replay_steps(t1, t2, step_td, warm_td)
    show = not quiet and sys.stderr.isatty()
    with click.progressbar(length=total, label="replaying", file=sys.stderr,
                           hidden=not show) as bar:
        try:
            summary = run_replay(cfg, t1, t2, state_url=state_url, step=step_td,
                                 warmup=warm_td, on_transition=emit, on_progress=bar.update)
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
