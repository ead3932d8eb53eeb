"""`cancel-watchdog rules coverage`: re-classify past cancellations with the current rules.

Reads the state database's classified events (default) or the order database itself
(`--from-source`), feeds them to `rules.coverage` and prints its report. Both databases
are only read: the state database is not created or migrated, and the order database is
read through the same read-only, keyset-paginated source the daemon uses.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa

from .config import Config
from .configtypes import parse_duration
from .model import Cursor
from .rules.coverage import TOP_TEMPLATES, Record, coverage, render_jsonl, render_table

EXIT_USAGE, EXIT_RUNTIME = 2, 1
PAGE = 5000
LOOKUP_CHUNK = 500

HELP = """Re-classify past cancellations with the current rules and report the share per
category, what changed against the category recorded at the time, and the most frequent
unknown reason templates (numbers and personal data folded): what to write rules for next.

\b
By default the cancellations classified by the daemon are read from the state database.
Note that the state keeps reasons masked and cut to their first 300 characters: a rule
that needs the full text, or digits that masking hides, can classify a stored reason
differently than the live one. --from-source reads the full reasons from the order
database instead (and compares with the state database where it has the order).

\b
cancel-watchdog rules coverage -c watchdog.yaml --since 7d
cancel-watchdog rules coverage -c watchdog.yaml --since 2026-11-01 --until 2026-11-08
cancel-watchdog rules coverage -c watchdog.yaml --from-source --rules new-rules.yaml
cancel-watchdog rules coverage -c watchdog.yaml --format jsonl | jq 'select(.type=="change")'
"""


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def parse_when(value: str, now: datetime, zone: Any) -> datetime:
    """A duration back from now (`7d`, `36h`) or an ISO date/time (naive: `zone`)."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (7d, 24h) nor an ISO "
                                 "date/time (2026-11-01, 2026-11-01T08:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(UTC)


@click.command("coverage", help=HELP)
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The daemon's configuration: its state database, order database and "
                   "rules.")
@click.option("--since", default="7d", show_default=True,
              help="Start: a duration back from now (7d, 24h) or an ISO date/time; naive "
                   "times are in source.timezone.")
@click.option("--until", default=None, help="End (exclusive), like --since; default now.")
@click.option("--from-source", is_flag=True,
              help="Read cancellations (full reasons) from the order database instead of "
                   "the state database.")
@click.option("--rules", "extra", multiple=True, metavar="PATH",
              type=click.Path(path_type=Path),
              help="Extra rule file or directory to try on top of the configured rules "
                   "(repeatable).")
@click.option("--no-defaults", is_flag=True, help="Do not load the shipped default rules.")
@click.option("--top", default=TOP_TEMPLATES, show_default=True, type=click.IntRange(0),
              help="How many unknown reason templates to list.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True)
def coverage_command(config_path: Path, since: str, until: str | None, from_source: bool,
                     extra: tuple[Path, ...], no_defaults: bool, top: int, fmt: str) -> None:
    from .cli_rules import _load

    cfg = load_config_or_exit(config_path)
    ruleset = _load(config_path, extra, no_defaults)
    now = datetime.now(UTC)
    start = parse_when(since, now, cfg.source.zone)
    end = parse_when(until, now, cfg.source.zone) if until else now
    if start >= end:
        _fail(f"--since ({start:%Y-%m-%d %H:%M} UTC) is not before --until "
              f"({end:%Y-%m-%d %H:%M} UTC)")
    state = _state_engine(cfg)
    try:
        if from_source:
            records, length, what = _from_source(cfg, state, start, end), None, \
                "the order database (full reasons)"
        else:
            if state is None:
                _fail(f"no state database at {cfg.state.url}; run the daemon first, or use "
                      "--from-source")
            length = _count_events(state, start, end)
            records, what = _from_state(state, start, end), \
                "the state database (reasons masked, first 300 characters)"
        with _progress(length) as bar:
            report = coverage(ruleset, _ticking(records, bar), top=top)
    except sa.exc.SQLAlchemyError as exc:
        _fail(f"cannot read: {str(exc).splitlines()[0][:300]}", EXIT_RUNTIME)
    finally:
        if state is not None:
            state.dispose()
    if fmt == "jsonl":
        for line in render_jsonl(report):
            click.echo(line)
        return
    zone = cfg.source.zone
    click.echo(f"rules version {report.version}: {report.total:,} cancellations from {what}, "
               f"{start.astimezone(zone):%Y-%m-%d %H:%M} .. {end.astimezone(zone):%Y-%m-%d %H:%M}"
               f" ({cfg.source.timezone})")
    click.echo()
    for line in render_table(report):
        click.echo(line)


def load_config_or_exit(path: Path) -> Config:
    from .config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{path}: configuration is invalid:", err=True)
        for p in exc.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_USAGE)


def _state_engine(cfg: Config) -> sa.Engine | None:
    """The state database, or None when it does not exist (never created here)."""
    url = sa.engine.make_url(cfg.state.url)
    if url.get_backend_name() == "sqlite":
        db = url.database
        if not db or db == ":memory:" or not Path(db).exists():
            return None
    return sa.create_engine(url)


def _count_events(engine: sa.Engine, start: datetime, end: datetime) -> int:
    from .state_schema import events_table as ev

    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(ev)
                                .where(ev.c.event_time >= start, ev.c.event_time < end))
                   .scalar() or 0)


def _from_state(engine: sa.Engine, start: datetime, end: datetime) -> Iterator[Record]:
    from .store import StateStore

    for e in StateStore(engine).events(start, end):
        yield Record(e.reason, {**e.dimensions, "status": e.status}, e.category)


def _from_source(cfg: Config, state: sa.Engine | None, start: datetime,
                 end: datetime) -> Iterator[Record]:
    from .source import OrderSource

    with OrderSource.from_config(cfg.source) as source:
        after = Cursor(start, None)
        while True:
            rows = [c for c in source.fetch_cancellations(after, PAGE) if c.changed_at < end]
            recorded = _recorded(state, [(c.order_id, c.status) for c in rows])
            for c in rows:
                yield Record(c.reason, {**c.dimensions, "status": c.status},
                             recorded.get((c.order_id, c.status)))
            if len(rows) < PAGE:
                return
            after = rows[-1].cursor


def _recorded(state: sa.Engine | None,
              keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The category the daemon recorded for these (order id, status), where it has one."""
    if state is None or not keys:
        return {}
    from .state_schema import events_table as ev

    out: dict[tuple[str, str], str] = {}
    wanted = set(keys)
    ids = sorted({k[0] for k in keys})
    try:
        with state.connect() as conn:
            for i in range(0, len(ids), LOOKUP_CHUNK):
                q = sa.select(ev.c.order_id, ev.c.status, ev.c.category).where(
                    ev.c.order_id.in_(ids[i:i + LOOKUP_CHUNK]))
                for order_id, status, category in conn.execute(q):
                    if (order_id, status) in wanted:
                        out[(order_id, status)] = category
    except sa.exc.OperationalError:  # an empty or foreign state database: nothing recorded
        return {}
    return out


def _progress(length: int | None) -> AbstractContextManager[Any]:
    """A progress bar on stderr, only when a person is watching it."""
    if not sys.stderr.isatty():
        return nullcontext(None)
    return click.progressbar(length=length or 0, label="re-classifying", file=sys.stderr,
                             show_pos=True, show_percent=bool(length))


def _ticking(records: Iterable[Record], bar: Any) -> Iterator[Record]:
    if bar is None:
        yield from records
        return
    pending = 0
    for rec in records:
        yield rec
        pending += 1
        if pending == 1000:  # a bar redraw per record would cost more than classifying
            bar.update(pending)
            pending = 0
    bar.update(pending)
