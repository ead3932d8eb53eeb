"""`cancel-watchdog rules test | lint`: try reason texts against the rules, check rule files.

Reason texts carry phone and ID numbers, so everything echoed from a reason (the text,
its normalised form, regex evidence) goes through `mask_text` first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import click

from .rules import RuleError, RuleSet, load_rules, reason_template

EXIT_USAGE = 2


def _masker() -> Callable[[str], str]:
    try:
        from .privacy import mask_text
    except ImportError:  # pragma: no cover - privacy.py ships with the package
        import re

        digits = re.compile(r"\d{7,}")

        def mask_text(text: str) -> str:
            return digits.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 7)
                              + m.group(0)[-4:], text)
    return mask_text


def _fail_rules(exc: RuleError) -> NoReturn:
    click.echo(f"rules are invalid ({len(exc.problems)} problem(s)):", err=True)
    for p in exc.problems:
        click.echo(f"  {p}", err=True)
    sys.exit(EXIT_USAGE)


def _load(config_path: Path | None, extra: tuple[Path, ...], no_defaults: bool) -> RuleSet:
    paths, use_defaults = _sources(config_path, extra, no_defaults)
    try:
        return load_rules(paths, use_defaults=use_defaults)
    except RuleError as exc:
        _fail_rules(exc)


def _sources(config_path: Path | None, extra: tuple[Path, ...],
             no_defaults: bool) -> tuple[list[str | Path], bool]:
    """The rule files to load and whether to load the defaults (exits 2 on a bad config)."""
    paths: list[str | Path] = []
    use_defaults = not no_defaults
    if config_path is not None:
        from .config import ConfigError, load_config

        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            click.echo(f"{config_path}: configuration is invalid:", err=True)
            for p in exc.problems:
                click.echo(f"  {p}", err=True)
            sys.exit(EXIT_USAGE)
        paths += [cfg.resolve(p) for p in cfg.rules.paths]
        use_defaults = cfg.rules.use_defaults and not no_defaults
    paths += list(extra)
    return paths, use_defaults


def _rule_options(f: Callable[..., object]) -> Callable[..., object]:
    f = click.option("--no-defaults", is_flag=True,
                     help="Do not load the shipped default rules.")(f)
    f = click.option("--rules", "extra", multiple=True, metavar="PATH",
                     type=click.Path(path_type=Path),
                     help="Extra rule file or directory of *.yaml (repeatable).")(f)
    f = click.option("-c", "--config", "config_path", default=None,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Use the rules of this configuration (rules.paths, "
                          "rules.use_defaults).")(f)
    return f


@click.group("rules", help="Try reason texts against the rules and check rule files.")
def rules() -> None:
    pass


@rules.command("test")
@click.argument("text", required=False)
@click.option("--field", "field_args", multiple=True, metavar="KEY=VALUE",
              help="A field for `fields:` conditions and code maps, e.g. carrier=中国联通 "
                   "(repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
              show_default=True, help="jsonl: one JSON object per reason, for scripts.")
@_rule_options
def test_command(text: str | None, field_args: tuple[str, ...], fmt: str,
                 config_path: Path | None, extra: tuple[Path, ...], no_defaults: bool) -> None:
    """Classify TEXT (or one reason per line on stdin with `-` or no TEXT) and say why.

    \b
    cancel-watchdog rules test "審核不通過：年齡不符"
    cancel-watchdog rules test --field upstream=91haoka -- -120
    cut -f1 reasons.tsv | cancel-watchdog rules test --format jsonl -
    """
    fields: dict[str, str] = {}
    for arg in field_args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{arg!r} is not KEY=VALUE", param_hint="--field")
        fields[key] = value
    ruleset = _load(config_path, extra, no_defaults)
    mask = _masker()
    texts: Iterable[str] = (
        [text] if text not in (None, "-") else (line.rstrip("\r\n") for line in sys.stdin)
    )
    for i, reason in enumerate(texts):
        if fmt == "jsonl":
            _print_json(ruleset, reason, fields, mask)
        else:
            if i:
                click.echo()
            _print_human(ruleset, reason, fields, mask)


def _print_json(rs: RuleSet, reason: str, fields: dict[str, str],
                mask: Callable[[str], str]) -> None:
    e = rs.explain(reason, fields or None)
    click.echo(json.dumps({
        "text": mask(reason),
        "normalised": mask(e.normalised),
        "template": reason_template(reason),
        "category": e.category,
        "rule": e.winner,
        "matched": [m.id for m in e.matches],
    }, ensure_ascii=False))


def _print_human(rs: RuleSet, reason: str, fields: dict[str, str],
                 mask: Callable[[str], str]) -> None:
    e = rs.explain(reason, fields or None)
    click.echo(f"text:       {mask(reason)}")
    click.echo(f"normalised: {mask(e.normalised)}")
    click.echo(f"template:   {reason_template(reason)}")
    if not e.matches:
        click.echo("matched:    (no rule)")
    else:
        click.echo("matched:    (winner first)")
        width = max(len(m.id) for m in e.matches)
        for i, m in enumerate(e.matches):
            mark = "*" if i == 0 else " "
            click.echo(f"  {mark} {m.id.ljust(width)}  {m.category}  priority {m.priority}  "
                       f"{m.where}")
            for ev in m.evidence:
                click.echo(f"      {mask(ev)}")
    click.echo(f"winner:     {e.winner}" + ("" if e.matches else " (no rule matched)"))
    click.echo(f"category:   {e.category}")


@rules.command("lint")
@_rule_options
def lint_command(config_path: Path | None, extra: tuple[Path, ...], no_defaults: bool) -> None:
    """Check rules: load errors and duplicate ids, rules that can never win, patterns that
    match the empty string (errors, exit 2); keywords shared by categories or contained
    in another category's keyword, and regexes that run on every reason (warnings, exit 0).

    Load errors do not stop the checks: the rules that did load are checked too."""
    from .rules.lint import ERROR, lint
    from .rules.loader import load_rules_partially

    paths, use_defaults = _sources(config_path, extra, no_defaults)
    ruleset, problems = load_rules_partially(paths, use_defaults=use_defaults)
    for p in problems:
        click.echo(str(p))
    findings = lint(ruleset)
    for f in findings:
        click.echo(str(f))
    errors = len(problems) + sum(f.level == ERROR for f in findings)
    warnings = len(findings) - (errors - len(problems))
    loaded = f"{len(ruleset.rules)} rules" + (
        f" loaded ({len(problems)} load problem(s) left some out)" if problems else "")
    click.echo(f"{loaded}, version {ruleset.version}: {errors} error(s), {warnings} warning(s)")
    sys.exit(EXIT_USAGE if errors else 0)


def _register() -> None:
    from .cli_coverage import coverage_command

    rules.add_command(coverage_command)


_register()
