"""promtool on the shipped Prometheus files: config, rules, rule unit tests, web config."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.deploy.tools import DEPLOY, REPO, require, run
from tests.webcerts import self_signed_cert
from watchdog.webconfig import load_web_config

RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))


def test_there_are_rules_and_rule_tests() -> None:
    assert RULES and RULE_TESTS


def test_promtool_check_rules() -> None:
    promtool = require("promtool", "prometheus")
    result = run([promtool, "check", "rules", *map(str, RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    promtool = require("promtool", "prometheus")
    result = run([promtool, "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)", "".join(p.read_text() for p in RULES), re.M))
    tested = set(re.findall(r"alertname: (\w+)", "".join(p.read_text() for p in RULE_TESTS)))
    assert alerts and alerts <= tested, f"alerts without a promtool test: {alerts - tested}"


def test_every_runbook_link_has_a_section_in_operations_md() -> None:
    ops = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", ops, re.M)}
    links = re.findall(r'runbook_url: "docs/operations\.md#([\w-]+)"',
                       "".join(p.read_text() for p in RULES))
    assert links and set(links) <= anchors, f"missing runbooks: {set(links) - anchors}"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_check_config_on_the_compose_prometheus_config() -> None:
    promtool = require("promtool", "prometheus")
    result = run([promtool, "check", "config",
                  str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_web_config_is_valid_for_promtool_and_for_us(tmp_path: Path) -> None:
    promtool = require("promtool", "prometheus")
    web = tmp_path / "web-config.yml"
    shutil.copy(DEPLOY / "web-config.example.yml", web)
    self_signed_cert(tmp_path, "watchdog")
    result = run([promtool, "check", "web-config", str(web)])
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = load_web_config(web)
    assert loaded.tls is not None and set(loaded.users) == {"prometheus"}
