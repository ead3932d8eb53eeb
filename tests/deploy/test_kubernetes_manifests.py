"""The Kubernetes manifests, parsed and cross-checked without a cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.deploy.tools import DEPLOY
from watchdog.config import Config, load_config

K8S = DEPLOY / "kubernetes"
DOCKERFILE = (DEPLOY / "docker" / "Dockerfile").read_text()
RULES = "".join(p.read_text() for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    [doc] = list(YAML(typ="safe").load_all((K8S / name).read_text(encoding="utf-8")))
    return doc


def by_kind() -> dict[str, dict[str, Any]]:
    kustomization = load("kustomization.yaml")
    docs = [load(name) for name in kustomization["resources"]]
    return {d["kind"]: d for d in docs} | {"Secret": load("secret.example.yaml")}


def container() -> dict[str, Any]:
    [c] = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def config(tmp_path: Path) -> Config:
    """The ConfigMap's config, with the Secret example's values as its environment."""
    path = tmp_path / "config.yaml"
    path.write_text(by_kind()["ConfigMap"]["data"]["config.yaml"], encoding="utf-8")
    return load_config(path, env=by_kind()["Secret"]["stringData"])


def test_kustomization_lists_existing_files_and_every_manifest() -> None:
    resources = load("kustomization.yaml")["resources"]
    for name in resources:
        assert (K8S / name).is_file()
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The Secret example is applied by hand once filled in, never from Git.
    assert set(resources) == manifests - {"secret.example.yaml"}


def test_kinds() -> None:
    assert set(by_kind()) == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
                              "ServiceMonitor", "Secret"}


def test_two_replicas_need_and_have_a_shared_state_database(tmp_path: Path) -> None:
    assert by_kind()["Deployment"]["spec"]["replicas"] == 2
    assert config(tmp_path).state.url.startswith("postgresql")


def test_the_config_is_valid_and_every_variable_is_in_the_secret(tmp_path: Path) -> None:
    text = by_kind()["ConfigMap"]["data"]["config.yaml"]
    needed = set(re.findall(r"\$\{(\w+)", text))
    assert needed == set(by_kind()["Secret"]["stringData"])
    config(tmp_path)


def test_container_port_probes_and_config_mount_agree(tmp_path: Path) -> None:
    c = container()
    cfg = config(tmp_path)
    [port] = c["ports"]
    assert cfg.metrics.host == "0.0.0.0" and port["containerPort"] == cfg.metrics.port
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    config_file = c["args"][c["args"].index("-c") + 1]
    [mount] = [m for m in c["volumeMounts"] if m["name"] == "config"]
    assert config_file == f"{mount['mountPath']}/config.yaml"
    volumes = {v["name"]: v for v in by_kind()["Deployment"]["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["config"]["configMap"]["name"] == by_kind()["ConfigMap"]["metadata"]["name"]
    assert "config.yaml" in by_kind()["ConfigMap"]["data"]


def test_secret_reference_matches_the_example() -> None:
    [ref] = container()["envFrom"]
    assert ref["secretRef"]["name"] == by_kind()["Secret"]["metadata"]["name"]


def test_pod_runs_as_the_images_unprivileged_user() -> None:
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    user = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M)[-1]
    assert (str(pod["securityContext"]["runAsUser"]),
            str(pod["securityContext"]["runAsGroup"])) == user
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_selectors_connect_deployment_service_monitor_and_budget() -> None:
    kinds = by_kind()
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() \
        <= pod_labels.items()
    service_labels = kinds["Service"]["metadata"]["labels"]
    assert kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() \
        <= service_labels.items()
    [port] = kinds["Service"]["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]
    [endpoint] = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"


def test_scrape_job_name_is_what_the_rules_expect() -> None:
    # The Prometheus Operator names the job after the Service.
    service = by_kind()["Service"]["metadata"]["name"]
    jobs = set(re.findall(r'job="([\w-]+)"', RULES))
    assert jobs == {service}
