"""The command line as a user meets it: exit codes, messages, no tracebacks, no secrets."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from watchdog.cli import main
from watchdog.demo_db import DemoFeeder, create_order_db

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example config, run from a folder holding a small demo order database."""
    (tmp_path / "demo-data").mkdir()
    engine = create_order_db(f"sqlite:///{tmp_path / 'demo-data' / 'orders.db'}")
    DemoFeeder(engine, history=timedelta(hours=1), seed=5).backfill()
    engine.dispose()
    (tmp_path / "config.yaml").write_text(
        (REPO / "config.example.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORDERS_DB_URL", raising=False)
    monkeypatch.delenv("WATCHDOG_STATE_URL", raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_check_accepts_the_example_config(demo_dir):
    result = invoke("check", "-c", "config.yaml")
    assert result.exit_code == 0, result.output
    assert "config OK" in result.output


def test_check_names_file_line_and_key_of_a_wrong_table(demo_dir):
    cfg = demo_dir / "config.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("table: orders", "table: ordres"),
                   encoding="utf-8")
    result = invoke("check", "-c", "config.yaml")
    assert result.exit_code == 2
    assert "config.yaml:23: source.table: table 'ordres' not found" in result.output
    assert "Traceback" not in result.output


def test_invalid_config_exits_2_with_every_problem(demo_dir):
    (demo_dir / "bad.yaml").write_text("source:\n  url: sqlite://\n  tabel: x\npoll:\n"
                                       "  intervall: 5s\n", encoding="utf-8")
    for command in (["check"], ["run", "--once"]):
        result = invoke(*command, "-c", "bad.yaml")
        assert result.exit_code == 2
        assert "bad.yaml:3: source.tabel: unknown key; did you mean `table`?" in result.output
        assert "bad.yaml:5: poll.intervall: unknown key; did you mean `interval`?" in result.output


def test_check_prints_unset_variables_validation_and_rule_problems_together(demo_dir):
    (demo_dir / "site-rules.yaml").write_text(
        "rules:\n  - id: site.bad\n    category: complience\n    keywords: [x]\n",
        encoding="utf-8")
    (demo_dir / "bad.yaml").write_text(
        "source:\n  url: ${NO_SUCH_VAR_FOR_CHECK}\n  tabel: x\n"
        "rules:\n  paths: [site-rules.yaml]\n", encoding="utf-8")
    result = invoke("check", "-c", "bad.yaml")
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[1:] == [
        "bad.yaml:2: source.url: environment variable NO_SUCH_VAR_FOR_CHECK is not set (set "
        "it, or write ${NO_SUCH_VAR_FOR_CHECK:-default})",
        "bad.yaml:3: source.tabel: unknown key; did you mean `table`?",
        "site-rules.yaml:3: rules[0].category: unknown category `complience`; did you mean "
        "`compliance`? New categories go in a `categories:` list.",
    ], result.output
    assert lines[0] == "3 problem(s):"


def test_run_once_counts_then_continues_where_it_stopped(demo_dir):
    first = invoke("run", "-c", "config.yaml", "--once")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output.strip().splitlines()[-1])
    assert report["new"] > 0 and report["caught_up"] is True
    assert sum(report["categories"].values()) + report["excluded"] == report["new"]
    again = json.loads(invoke("run", "-c", "config.yaml", "--once").output.splitlines()[-1])
    assert again["new"] == 0


def test_unreachable_database_exits_1_without_the_password(demo_dir):
    env = {"ORDERS_DB_URL": "postgresql+psycopg://watchdog:s3cret-pw@127.0.0.1:1/shop"}
    result = invoke("run", "-c", "config.yaml", "--once", env=env)
    assert result.exit_code == 1
    assert "poll failed at source" in result.output
    assert "s3cret-pw" not in result.output


def test_config_schema_is_json_schema():
    result = invoke("config", "schema")
    schema = json.loads(result.output)
    assert schema["title"] == "cancel-watchdog configuration"
    assert "source" in schema["required"]
