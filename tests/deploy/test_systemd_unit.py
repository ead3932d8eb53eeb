"""The systemd unit: hardening settings present, and systemd's own checks pass."""

from __future__ import annotations

import configparser
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, require, run

UNIT = DEPLOY / "systemd" / "cancel-watchdog.service"
INSTALLED_BINARY = "/opt/cancel-watchdog/bin/cancel-watchdog"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_is_hardened() -> None:
    service = unit()["Service"]
    assert service["User"] == "cancel-watchdog" and service["Group"] == "cancel-watchdog"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/cancel-watchdog/env"
    assert service["StateDirectory"] == "cancel-watchdog"
    assert service["ReadWritePaths"] == "/var/lib/cancel-watchdog"
    assert service["CapabilityBoundingSet"] == ""
    assert service["ExecStart"].startswith(f"{INSTALLED_BINARY} run -c /etc/cancel-watchdog/")
    assert "-HUP" in service["ExecReload"]


def test_the_sysusers_entry_creates_the_units_user() -> None:
    line = next(ln for ln in (DEPLOY / "systemd" / "cancel-watchdog.sysusers.conf")
                .read_text().splitlines() if ln.startswith("u "))
    assert line.split()[1] == unit()["Service"]["User"]


def test_the_environment_example_feeds_the_example_config() -> None:
    env = (DEPLOY / "systemd" / "cancel-watchdog.env.example").read_text()
    names = set(re.findall(r"^([A-Z_]+)=", env, re.M))
    example = (DEPLOY.parent / "config.example.yaml").read_text()
    assert names and names <= set(re.findall(r"\$\{([A-Z_]+)", example))


def _installable_copy(tmp_path: Path) -> Path:
    # systemd-analyze verify insists that ExecStart exists; point it at this checkout's.
    binary = shutil.which("cancel-watchdog") or str(Path(sys.executable).parent /
                                                    "cancel-watchdog")
    if not Path(binary).exists():
        pytest.skip("cancel-watchdog is not installed in this environment")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_BINARY, binary),
                    encoding="utf-8")
    return copy


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require("systemd-analyze", "systemd", ci_required=False)
    result = run([analyze, "verify", str(_installable_copy(tmp_path))], cwd=tmp_path)
    # Unknown or misspelt keys are only warnings (exit 0): any output is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)


def test_systemd_analyze_security_rates_it_ok(tmp_path: Path) -> None:
    analyze = require("systemd-analyze", "systemd", ci_required=False)
    result = run([analyze, "security", "--offline=yes", "--no-pager",
                  str(_installable_copy(tmp_path))], cwd=tmp_path)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    if result.returncode != 0 and m is None:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr}")
    assert m, result.stdout
    assert float(m[1]) <= 2.0, result.stdout
