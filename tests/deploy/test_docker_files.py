"""The Dockerfile and the compose stack, cross-checked without a container engine.

Every file a service mounts exists, ports agree between the watchdog config, the image,
compose, Prometheus, Alertmanager and Grafana, the watchdog config validates, and the
image's healthcheck command really probes /healthz.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML

from tests.deploy.tools import DEPLOY, REPO, require, run
from watchdog.config import load_config
from watchdog.web import Health, HttpServer, make_app

DOCKER = DEPLOY / "docker"
COMPOSE: dict[str, Any] = YAML(typ="safe").load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
_ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def yaml_file(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def mounts(service: str) -> dict[str, Path]:
    """Container path -> repository path of the service's bind mounts."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (DOCKER / source).resolve()
    return out


def repo_path(service: str, container_path: str) -> Path:
    """The repository file a container path of `service` comes from."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{service}: nothing mounted at {container_path}")


def published(service: str) -> dict[int, str]:
    """Container port -> host address:port."""
    out = {}
    for mapping in SERVICES[service].get("ports", []):
        host, _, container = mapping.rpartition(":")
        out[int(container)] = host
    return out


def compose_env(service: str) -> dict[str, str]:
    """The service's environment with compose's ${VAR:-default} taken at its default."""
    env = SERVICES[service].get("environment", {})
    return {k: _ENV_REF.sub(lambda m: m[2] or "", str(v)) for k, v in env.items()}


def watchdog_config() -> Any:
    config_target = dockerfile_cmd()[-1]
    path = repo_path("watchdog", config_target)
    return load_config(path, env=compose_env("watchdog"))


def dockerfile_cmd() -> list[str]:
    return json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M)[1])


def healthcheck_cmd() -> list[str]:
    return json.loads(re.search(r"^\s*CMD (\[.*\])$", DOCKERFILE.split("HEALTHCHECK", 1)[1],
                                re.M)[1])


def test_the_stack_has_every_part() -> None:
    assert set(SERVICES) == {"postgres", "feeder", "watchdog", "prometheus", "alertmanager",
                             "grafana"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_file_exists(service: str) -> None:
    for target, source in mounts(service).items():
        assert source.exists(), f"{service}: {source} (mounted at {target}) is missing"


def test_every_port_is_published_on_loopback_only() -> None:
    for service in SERVICES:
        for port, host in published(service).items():
            assert host.startswith("127.0.0.1:"), f"{service}: port {port} on {host}"


def test_image_builds_from_files_that_exist() -> None:
    for service in ("watchdog", "feeder"):
        build = SERVICES[service]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.M):
        *sources, _ = shlex.split(line)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "watchdog/"):
        assert f"!{needed}" in ignore


def test_image_is_multi_stage_and_runs_unprivileged() -> None:
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) >= 2
    assert "COPY --from=build" in DOCKERFILE
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert DOCKERFILE.index("USER") < DOCKERFILE.index("ENTRYPOINT")


def test_ports_agree_between_config_image_and_compose() -> None:
    cfg = watchdog_config()
    assert cfg.metrics.host == "0.0.0.0", "other containers must reach /metrics"
    port = cfg.metrics.port
    assert re.search(rf"^EXPOSE {port}$", DOCKERFILE, re.M)
    assert f"127.0.0.1:{port}/healthz" in " ".join(healthcheck_cmd())
    assert port in published("watchdog")


def test_healthcheck_command_probes_healthz(tmp_path: Path) -> None:
    server = HttpServer("127.0.0.1", 0, make_app(CollectorRegistry(), Health())).start()
    cmd = healthcheck_cmd()
    assert cmd[0] == "python"
    try:
        code = [a.replace("127.0.0.1:9464", f"127.0.0.1:{server.port}") for a in cmd[1:]]
        assert subprocess.run([sys.executable, *code], timeout=30).returncode == 0
        wrong = [a.replace("/healthz", "/nope") for a in code]
        assert subprocess.run([sys.executable, *wrong], capture_output=True,
                              timeout=30).returncode != 0
    finally:
        server.stop()


def test_watchdog_config_is_valid_and_every_variable_is_provided() -> None:
    config = (DOCKER / "watchdog.yaml").read_text()
    needed = {m[0] for m in _ENV_REF.findall(config)}
    assert needed <= set(compose_env("watchdog")), needed - set(compose_env("watchdog"))
    cfg = watchdog_config()
    assert cfg.source.url.startswith("postgresql+psycopg://orders_reader:")
    assert cfg.state.url.startswith("postgresql+psycopg://watchdog:")


def test_databases_and_users_are_created_by_the_init_script() -> None:
    cfg = watchdog_config()
    init = (DOCKER / "postgres-init" / "10-databases.sh").read_text()
    feeder_url = compose_env("feeder")["ORDERS_DB_URL"]
    for url in (cfg.source.url, cfg.state.url, feeder_url):
        m = re.match(r"postgresql\+psycopg://(\w+):[^@]*@(\w+):5432/(\w+)$", url)
        assert m, url
        user, host, db = m.groups()
        assert host == "postgres" and "postgres" in SERVICES
        assert f"CREATE ROLE {user} LOGIN" in init
        assert f"CREATE DATABASE {db} " in init
    for var in re.findall(r"\$\{(\w+)\}", init):
        assert var in compose_env("postgres"), f"init script needs {var}"


def test_prometheus_scrapes_the_watchdog_and_alerts_alertmanager() -> None:
    command = SERVICES["prometheus"]["command"]
    config_path = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    prom = yaml_file(repo_path("prometheus", config_path))
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "cancel-watchdog")
    [target] = job["static_configs"][0]["targets"]
    assert target == f"watchdog:{watchdog_config().metrics.port}"
    [am] = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == "alertmanager:9093" and 9093 in published("alertmanager")
    for pattern in prom["rule_files"]:
        base = repo_path("prometheus", config_path).parent
        assert list(base.glob(pattern)), f"rule_files {pattern} matches nothing"


def test_the_watchdog_sends_its_alerts_to_the_stacks_alertmanager() -> None:
    cfg = watchdog_config()
    channel = cfg.channels["alertmanager"]
    assert channel.type == "alertmanager" and channel.urls == ["http://alertmanager:9093"]


def test_alertmanager_config_is_mounted_where_its_command_reads_it() -> None:
    command = SERVICES["alertmanager"]["command"]
    config_path = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    path = repo_path("alertmanager", config_path)
    assert yaml_file(path)["route"]["receiver"]
    amtool = require("amtool", "prometheus-alertmanager", ci_required=False)
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_our_datasource_and_dashboard() -> None:
    grafana = SERVICES["grafana"]
    ds = yaml_file(repo_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml"))
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml_file(repo_path(
        "grafana", "/etc/grafana/provisioning/dashboards/cancel-watchdog.yml"))["providers"][0]
    dashboards = repo_path("grafana", provider["options"]["path"])
    assert (dashboards / "cancel-watchdog.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert repo_path("grafana", home).is_file()


def test_feed_demo_fills_an_order_database_once(tmp_path: Path) -> None:
    command = SERVICES["feeder"]["entrypoint"]
    script = repo_path("feeder", command[1])
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    args = [sys.executable, str(script), "--url", url, "--history", "0.2", "--duration", "1"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(tmp_path / "orders.db") as db:
        rows = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert rows > 0 and "backfilled" in first.stdout
    again = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert again.returncode == 0 and "already has rows" in again.stdout
