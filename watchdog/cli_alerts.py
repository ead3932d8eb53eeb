"""`silence` and `notify` commands: silences in the state database, channel tests.

Output never shows a secret: channel URLs are printed through `mask_url`.
"""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

_config_option = click.option(
    "-c", "--config", "config_path", required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration file (see config.example.yaml).")


def _cli() -> Any:
    # Imported late: cli.py imports this module while it is being built.
    from . import cli

    return cli


def _open_state(config_path: Path) -> Any:
    from .store import StateError, StateStore

    cli = _cli()
    cfg = cli.load_or_exit(config_path)
    try:
        return cfg, StateStore.open(cfg.state.url)
    except StateError as exc:
        cli.fail(str(exc), cli.EXIT_RUNTIME)


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@click.group("silence")
def silence() -> None:
    """Mute alerts matching labels for a while (kept in the state database)."""


@silence.command("add")
@_config_option
@click.option("--match", "matchers", multiple=True, required=True, metavar="LABEL=VALUE",
              help="Label matcher (also !=, =~ regex, !~); repeat for AND, e.g. "
              "--match category=system_fault --match carrier=联通")
@click.option("--for", "duration", default="2h", show_default=True,
              help="How long: 30m, 2h, 1d...")
@click.option("--comment", required=True, help="Why (shown in `silence list`).")
@click.option("--author", default=None, help="Who (default: the login name).")
def silence_add(config_path: Path, matchers: tuple[str, ...], duration: str, comment: str,
                author: str | None) -> None:
    """Add a silence; prints its id."""
    from .alerts.silences import parse_matcher
    from .alerts.state import add_silence, locked
    from .alerts.values import Silence
    from .configtypes import parse_duration

    cli = _cli()
    try:
        parsed = tuple(parse_matcher(m) for m in matchers)
        length = parse_duration(duration)
    except ValueError as exc:
        cli.fail(str(exc))
    if length.total_seconds() <= 0:
        cli.fail("--for must be positive")
    _, store = _open_state(config_path)
    now = datetime.now(UTC)
    s = Silence(uuid.uuid4().hex[:12], parsed, now, now + length, comment,
                author or _login(), now)
    try:
        with locked(store.engine) as conn:
            add_silence(conn, s)
    finally:
        store.close()
    click.echo(s.id)
    click.echo(f"silenced {' '.join(str(m) for m in parsed)} until {_when(s.ends_at)}",
               err=True)


@silence.command("list")
@_config_option
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def silence_list(config_path: Path, show_all: bool, fmt: str) -> None:
    """Active (or all) silences."""
    from .alerts.state import load_silences

    _, store = _open_state(config_path)
    now = datetime.now(UTC)
    try:
        with store.engine.connect() as conn:
            found = load_silences(conn, now, include_expired=show_all)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([
            {"id": s.id, "matchers": [str(m) for m in s.matchers],
             "starts_at": s.starts_at.isoformat(), "ends_at": s.ends_at.isoformat(),
             "active": s.active(now), "comment": s.comment, "created_by": s.created_by}
            for s in found], ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("no silences" if show_all else "no active silences")
        return
    for s in found:
        state = "active" if s.active(now) else ("pending" if s.starts_at > now else "expired")
        click.echo(f"{s.id}  {state:<7}  until {_when(s.ends_at)}  "
                   f"{' '.join(str(m) for m in s.matchers)}  # {s.comment} ({s.created_by})")


@silence.command("expire")
@_config_option
@click.argument("silence_id")
def silence_expire(config_path: Path, silence_id: str) -> None:
    """End a silence now (its id, or a unique prefix)."""
    from .alerts.state import expire_silence, locked

    cli = _cli()
    _, store = _open_state(config_path)
    try:
        with locked(store.engine) as conn:
            ok = expire_silence(conn, silence_id, datetime.now(UTC))
    finally:
        store.close()
    if not ok:
        cli.fail(f"no silence with id {silence_id!r} (or the prefix is ambiguous); "
                 "see `cancel-watchdog silence list --all`", cli.EXIT_RUNTIME)
    click.echo(f"expired {silence_id}")


@click.group("notify")
def notify() -> None:
    """Notification channels."""


@notify.command("test")
@_config_option
@click.argument("channel")
def notify_test(config_path: Path, channel: str) -> None:
    """Send a test message to CHANNEL; prints the result per URL (secrets masked).

    Exits 0 when every URL accepted it, 1 otherwise.
    """
    from .notifiers.apprise_channel import ChannelSetupError
    from .notifiers.channel import TestMessage
    from .notifiers.worker import build_channels

    cli = _cli()
    cfg = cli.load_or_exit(config_path)
    cli.setup_logging(cfg, "error")
    if channel not in cfg.channels:
        known = ", ".join(sorted(cfg.channels)) or "none configured"
        cli.fail(f"unknown channel {channel!r} (channels: {known})")
    try:
        channels = build_channels(cfg)
    except ChannelSetupError as exc:
        cli.fail(str(exc))
    results = channels[channel].deliver(TestMessage(channel, datetime.now(UTC)))
    for r in results:
        verdict = "ok    " if r.ok else ("REFUSED" if r.permanent else "FAILED ")
        click.echo(f"{verdict} {r.url}  {r.detail}")
    sys.exit(0 if all(r.ok for r in results) else _cli().EXIT_RUNTIME)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
