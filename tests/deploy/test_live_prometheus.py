"""A real Prometheus scraping a real watchdog that processes the demo stream.

One stack for the module: `cancel-watchdog demo` (plain HTTP), a second daemon reading
the same demo order database behind TLS and basic auth, with a channel posting JSON to a
local webhook receiver and a daily digest that is due at once (so a notification is
really delivered), and Prometheus (1 s scrapes, our rule files loaded). Both watchdogs are
scraped as job "cancel-watchdog" (the TLS one through its own scrape config, relabelled),
plus the TLS endpoint with a wrong password as a job of its own. Then every query of the
dashboard and the rules runs against it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import DEPLOY, require, run
from tests.e2e.helpers import WebhookReceiver, free_port, wait_for
from tests.webcerts import bcrypt_hash, get, self_signed_cert
from watchdog.cli_demo import demo_config

pytestmark = pytest.mark.slow

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "cancel-watchdog.json"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
JOB = "cancel-watchdog"
PASSWORD = "scrape-me"

# Metrics that can genuinely have no series on a healthy watchdog. While one is absent,
# queries using it are only checked to parse; once exported they must return data like
# the rest. Everything else, notifications included, must return data.
MAY_BE_ABSENT = frozenset({
    # Labelled by exclusion rule and not pre-created (the rule ids are the rule files'):
    # absent until the first test order or bulk operation is excluded, which the demo
    # stream may not produce within the test's minutes.
    "watchdog_excluded_cancellations_total",
})
GRAFANA_VARS = {"job": JOB, "instance": ".*", "category": ".*", "carrier": ".*",
                "__rate_interval": "10s", "__range": "5m", "__interval": "1s"}
METRIC = re.compile(r"\b(watchdog_\w+|up)\b(\{[^}]*\})?")


@dataclass
class Stack:
    prometheus: str
    demo_port: int
    tls_port: int
    cert: Path
    logs: Path
    receiver: WebhookReceiver

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer; a parse error is an HTTP 400 with status "error"."""
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return json.loads(get(url)[2])

    def result(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}\n{answer}"
        return answer["data"]["result"]

    def exported(self, metric: str) -> bool:
        return bool(self.result(f'count({{__name__="{metric}", job="{JOB}"}})'))

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.logs.glob("*.log")))


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require("prometheus", "prometheus")
    d = tmp_path_factory.mktemp("stack")
    logs = d / "logs"
    logs.mkdir()
    demo_port, tls_port, prom_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    receiver = WebhookReceiver()
    try:
        # --duration bounds the demo's life should this test process die uncleanly.
        procs.append(_start([sys.executable, "-m", "watchdog", "demo", "--duration", "600",
                             "--port", str(demo_port), "--dir", str(d / "demo"),
                             "--speed", "60", "--every", "3600"], logs / "demo.log"))
        wait_for(lambda: _status(f"http://127.0.0.1:{demo_port}/healthz") == 200, 60,
                 "the demo's /healthz", logs / "demo.log")

        cert, _ = self_signed_cert(d)
        (d / "web.yml").write_text(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"basic_auth_users:\n  prometheus: '{bcrypt_hash(PASSWORD)}'\n")
        cfg = demo_config(d / "demo", tls_port, 1.0)
        cfg["state"]["url"] = f"sqlite:///{d / 'tls-state.db'}"
        cfg["metrics"]["web_config_file"] = "web.yml"
        # A channel, and a digest due every minute: the daemon delivers a real
        # notification, so the notification metrics have data (not just parse). (apprise's
        # json:// posts the digest; the `webhook` type carries alerts only.)
        cfg["channels"] = {"hook": {"type": "apprise",
                                    "urls": [f"json://127.0.0.1:{receiver.port}/hook"]}}
        cfg["alerting"] = {"default_channels": ["hook"],
                           "delivery": {"check_interval": "1s"},
                           "digest": {"enabled": True, "cron": "* * * * *",
                                      "channels": ["hook"]}}
        (d / "tls.yaml").write_text(json.dumps(cfg))  # JSON is YAML
        procs.append(_start([sys.executable, "-m", "watchdog", "run", "-c",
                             str(d / "tls.yaml")], logs / "tls-daemon.log"))

        (d / "password").write_text(PASSWORD)
        (d / "wrong-password").write_text("not-" + PASSWORD)
        tls = {"scheme": "https", "tls_config": {"ca_file": str(cert)}}
        (d / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULES],
            "scrape_configs": [
                {"job_name": JOB,
                 "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}]},
                {"job_name": f"{JOB}-tls", **tls,
                 "basic_auth": {"username": "prometheus",
                                "password_file": str(d / "password")},
                 "static_configs": [{"targets": [f"127.0.0.1:{tls_port}"]}],
                 # Same job as the demo: the dashboard's and the rules' queries see it.
                 "relabel_configs": [{"target_label": "job", "replacement": JOB}]},
                {"job_name": f"{JOB}-wrong-password", **tls,
                 "basic_auth": {"username": "prometheus",
                                "password_file": str(d / "wrong-password")},
                 "static_configs": [{"targets": [f"127.0.0.1:{tls_port}"]}]},
            ],
        }))
        procs.append(_start([prometheus, f"--config.file={d / 'prometheus.yml'}",
                             f"--storage.tsdb.path={d / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--log.level=warn"], logs / "prometheus.log"))
        stack = Stack(f"http://127.0.0.1:{prom_port}", demo_port, tls_port, cert, logs,
                      receiver)
        wait_for(lambda: _status(f"{stack.prometheus}/-/ready") == 200, 60,
                 "Prometheus to be ready", logs / "prometheus.log")
        # Enough 1 s samples for rates over the dashboard's 10 s $__rate_interval.
        wait_for(lambda: bool(stack.result(
            f'count_over_time(watchdog_source_up{{job="{JOB}"}}[10s]) >= 5')),
            90, "ten seconds of scrapes of the demo", logs / "prometheus.log")
        # The digest job runs a minute after the start; then the delivery is scraped.
        wait_for(lambda: bool(stack.result(
            f'watchdog_notifications_total{{job="{JOB}", result="delivered"}} > 0')),
            150, "a delivered notification on /metrics", logs / "tls-daemon.log")
        yield stack
    finally:
        receiver.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _status(url: str) -> int:
    """HTTP status, or 0 while nothing listens yet."""
    try:
        return get(url)[0]
    except OSError:
        return 0


def test_prometheus_scrapes_the_tls_endpoint_with_basic_auth(stack: Stack) -> None:
    tls = f'job="{JOB}", instance="127.0.0.1:{stack.tls_port}"'
    wait_for(lambda: bool(stack.result(f"up{{{tls}}} == 1")), 60,
             "a successful TLS scrape", stack.logs / "tls-daemon.log")
    assert stack.result(f"watchdog_build_info{{{tls}}}")


def test_the_notification_metrics_come_from_a_real_delivery(stack: Stack) -> None:
    assert any(p.get("message") for p in stack.receiver.payloads), stack.receiver.payloads
    tls = f'job="{JOB}", instance="127.0.0.1:{stack.tls_port}"'
    assert stack.result(
        f'watchdog_notification_latency_seconds_count{{{tls}, channel="hook"}} >= 1')


def test_a_wrong_password_fails_the_scrape_with_401(stack: Stack) -> None:
    def error() -> str:
        answer = json.loads(get(f"{stack.prometheus}/api/v1/targets")[2])
        errors = [t["lastError"] for t in answer["data"]["activeTargets"]
                  if t["labels"]["job"] == f"{JOB}-wrong-password"]
        return errors[0] if errors else ""

    wait_for(lambda: "401" in error(), 60, "the wrong-password scrape to fail")
    assert stack.result(f'up{{job="{JOB}-wrong-password"}} == 0')


def test_promtool_check_metrics_passes_on_our_metrics(stack: Stack) -> None:
    promtool = require("promtool", "prometheus")
    for url, auth in ((f"http://127.0.0.1:{stack.demo_port}/metrics", {}),
                      (f"https://127.0.0.1:{stack.tls_port}/metrics",
                       {"user": "prometheus", "password": PASSWORD, "cafile": stack.cert})):
        status, _, body = get(url, **auth)
        assert status == 200 and "watchdog_cancellations_total" in body
        result = run([promtool, "check", "metrics"], stdin=body)
        assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            # label_values(metric, label) is Grafana's; its series selector is PromQL.
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["definition"])
            assert m, var["definition"]
            out.append((f"variable {var['name']}", f"count by ({m[2]}) ({m[1]})"))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    from ruamel.yaml import YAML

    out = []
    for path in RULES:
        for group in YAML(typ="safe").load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule["record"], rule["expr"]))
    return out


def grafana_to_promql(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARS[m[1]], expr)


def _absent_metrics(stack: Stack, expr: str) -> set[str]:
    used = {m[1] for m in METRIC.finditer(expr)}
    return {m for m in used & MAY_BE_ABSENT if not stack.exported(m)}


@pytest.mark.parametrize(("where", "expr"), dashboard_queries(),
                         ids=[w for w, _ in dashboard_queries()])
def test_dashboard_query_returns_data(stack: Stack, where: str, expr: str) -> None:
    promql = grafana_to_promql(expr)
    answer = stack.query(promql)
    assert answer["status"] == "success", f"{where}: {promql}\n{answer}"
    absent = _absent_metrics(stack, promql)
    if absent:
        warnings.warn(f"{where}: parse-only, not exported yet: {sorted(absent)}",
                      stacklevel=1)
        return
    wait_for(lambda: bool(stack.result(promql)), 30, f"data for {where}: {promql}")


@pytest.mark.parametrize(("alert", "expr"), rule_expressions(),
                         ids=[a for a, _ in rule_expressions()])
def test_rule_expression_parses_and_its_series_exist(stack: Stack, alert: str,
                                                     expr: str) -> None:
    # The alert itself should not fire on a healthy watchdog, so "returns data" is
    # asked of every series it reads, the thresholds aside.
    answer = stack.query(expr)
    assert answer["status"] == "success", f"{alert}: {expr}\n{answer}"
    for m in METRIC.finditer(expr):
        metric, selector = m[1], m[2] or f'{{job="{JOB}"}}'
        if metric in _absent_metrics(stack, metric):
            warnings.warn(f"{alert}: {metric} not exported yet, parse-only", stacklevel=1)
            continue
        assert stack.result(metric + selector), f"{alert}: no data for {metric}{selector}"


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    def rules() -> list[dict[str, Any]]:
        answer = json.loads(get(f"{stack.prometheus}/api/v1/rules")[2])
        return [r for g in answer["data"]["groups"] for r in g["rules"]]

    wait_for(lambda: all(r["lastEvaluation"] > "2000" for r in rules()), 30,
             "every rule to be evaluated")
    loaded = rules()
    assert len(loaded) == len(rule_expressions())
    bad = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not bad


def test_no_self_alert_on_a_healthy_watchdog(stack: Stack) -> None:
    wait_for(lambda: not stack.result(f'ALERTS{{job="{JOB}"}}'), 30,
             "no self-alert pending or firing")
