"""Command line: parses arguments, calls the rest, maps errors to exit codes.

Exit codes: 0 success, 1 runtime failure (a database down during --once...), 2 usage or
configuration error. Errors a user can cause print without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
import prometheus_client

from . import __version__
from .config import Config, ConfigError, config_json_schema, load_config

EXIT_RUNTIME = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{path}: configuration is invalid ({len(exc.problems)} problem(s)):",
                   err=True)
        for p in exc.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_USAGE)


def setup_logging(cfg: Config | None, level: str | None = None) -> None:
    from .logs import configure_logging

    lc = cfg.logging if cfg else None
    configure_logging(level or (lc.level if lc else "info"), lc.format if lc else "auto",
                      secrets=cfg.secrets() if cfg else ())


config_option = click.option(
    "-c", "--config", "config_path", required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration file (see config.example.yaml).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cancel-watchdog")
def main() -> None:
    """Watch the order database for cancelled orders (已撤单), classify why, and alert.

    \b
    Quick start:   cancel-watchdog demo
    Real database: cancel-watchdog check -c config.yaml && cancel-watchdog run -c config.yaml
    """
    # `_created` series would double /metrics for no dashboard's benefit.
    prometheus_client.disable_created_metrics()


@main.command()
@config_option
@click.option("--once", is_flag=True,
              help="Do one poll cycle and exit (for cron and tests); exit 1 if it failed.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Override logging.level from the config.")
def run(config_path: Path, once: bool, log_level: str | None) -> None:
    """Run the daemon: poll, classify, count, serve /metrics.

    With a PostgreSQL or MySQL state database several replicas may run: one leads (polls
    and sends), the others stand by and take over when it dies. With SQLite a second
    instance on the same state file is refused.
    """
    from .daemon import run_daemon, run_once, utcnow
    from .lease import AlreadyRunning, lease_for
    from .pipeline import PollFailed
    from .webconfig import web_config_problems

    cfg = load_or_exit(config_path)
    if not once and (web_problems := web_config_problems(cfg)):
        fail("metrics.web_config_file is invalid:\n  " + "\n  ".join(web_problems))
    setup_logging(cfg, log_level)
    parts = _assemble_or_exit(cfg)
    lease = lease_for(parts.store.engine)
    try:
        leader = lease.try_acquire()
    except AlreadyRunning as exc:
        parts.close()
        fail(str(exc), EXIT_RUNTIME)
    if not once:
        sys.exit(run_daemon(parts, lease))
    try:
        if not leader:
            fail("another replica holds the leader lease; not polling", EXIT_RUNTIME)
        try:
            report = run_once(parts)
        except PollFailed as exc:
            fail(f"poll failed at {exc.stage}: {exc.cause}", EXIT_RUNTIME)
        click.echo(json.dumps({
            "rows_read": report.rows_read, "new": report.new,
            "duplicates": report.duplicates, "excluded": report.excluded,
            "categories": report.by_category, "caught_up": report.caught_up,
        }, ensure_ascii=False))
    finally:
        try:
            parts.close(utcnow())  # saves the detector state while this process leads
        finally:
            lease.release()


def _assemble_or_exit(cfg: Config):
    from .notifiers.apprise_channel import ChannelSetupError
    from .rules import RuleError
    from .store import StateError
    from .wiring import assemble

    try:
        return assemble(cfg, monitor=True)
    except ChannelSetupError as exc:
        fail(f"{cfg.path}: channels: {exc}")
    except RuleError as exc:
        fail("rules are invalid:\n  " + "\n  ".join(str(p) for p in exc.problems))
    except StateError as exc:
        fail(str(exc), EXIT_RUNTIME)


@main.command()
@config_option
def check(config_path: Path) -> None:
    """Validate a config and its rules; check the order database mapping.

    Exits 0 when usable (warnings, e.g. a missing index, are printed), 2 with every
    problem (file, line, key) otherwise.
    """
    from .rules import RuleError
    from .source import OrderSource, SourceError
    from .webconfig import web_config_problems
    from .wiring import load_configured_rules

    problems: list[str] = []
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        problems.extend(str(p) for p in exc.problems)
        problems.extend(_rule_problems_of_invalid_config(config_path))
        _report_check(problems, [])
    try:
        rules = load_configured_rules(cfg)
    except RuleError as exc:
        problems.extend(str(p) for p in exc.problems)
        rules = None
    problems.extend(web_config_problems(cfg))
    warnings: list[str] = []
    try:
        with OrderSource.from_config(cfg.source) as source:
            warnings = source.check()
    except SourceError as exc:
        problems.append(_with_position(config_path, str(exc)))
    if rules is not None and not problems:
        click.echo(f"rules: {len(rules.rules)} loaded, version {rules.version}")
    _report_check(problems, warnings)


def _rule_problems_of_invalid_config(config_path: Path) -> list[str]:
    """The rule files' problems, when the config is invalid elsewhere but its `rules`
    section still says which files to load."""
    from .config import configured_rule_sources
    from .rules import RuleError, load_rules

    sources = configured_rule_sources(config_path)
    if sources is None:
        return []
    try:
        load_rules(sources[0], use_defaults=sources[1])
    except RuleError as exc:
        return [str(p) for p in exc.problems]
    return []


def _with_position(config_path: Path, message: str) -> str:
    """`file:line: key: message` when the message starts with a config key we can find."""
    from .yamlfile import load_yaml, locate

    key, sep, _ = message.partition(":")
    if not sep or " " in key or not key.startswith("source"):
        return f"{config_path}: {message}"
    line = locate(load_yaml(config_path), key.split("."))
    return f"{config_path}:{line}: {message}" if line else f"{config_path}: {message}"


def _report_check(problems: list[str], warnings: list[str]) -> NoReturn:
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for p in problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo("config OK")
    sys.exit(0)


@main.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editor completion and validation)."""
    click.echo(json.dumps(config_json_schema(), indent=2, ensure_ascii=False))


def _register_subcommands() -> None:
    from .cli_alerts import notify, silence
    from .cli_demo import demo
    from .cli_replay import learn, replay
    from .cli_rules import rules

    main.add_command(rules)
    main.add_command(replay)
    main.add_command(learn)
    main.add_command(demo)
    main.add_command(silence)
    main.add_command(notify)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["main"]
