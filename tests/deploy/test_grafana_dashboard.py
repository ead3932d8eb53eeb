"""Conventions of the Grafana dashboard and its provisioning, checked without Grafana."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.deploy.tools import DEPLOY
from watchdog.cli_demo import DEMO_DIMENSIONS
from watchdog.config import DimensionConfig, load_config

GRAFANA = DEPLOY / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "cancel-watchdog.json"
BOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS = [p for p in BOARD["panels"] if p["type"] != "row"]
VARIABLES = {v["name"]: v for v in BOARD["templating"]["list"]}
DATASOURCE_REF = "${datasource}"
SELECTOR = re.compile(r"\b(watchdog_\w+|up)\s*\{([^}]*)\}")
# Shares of all cancellations: their denominators ignore $category on purpose.
ALL_CATEGORIES = frozenset({"Unknown share", "Unknown share over time"})
BY = re.compile(r"\bby\s*\(([^)]*)\)")
ALONE = re.compile(r'watchdog_cancellations_by_dimension_total\{[^}]*\bdimension="([^"]+)"')
RANGE = re.compile(r"\b(rate|irate|increase)\s*\((?:[^()\[]|\([^()]*\))*\[([^\]]+)\]")


def targets() -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in PANELS:
        for t in panel["targets"]:
            yield f"{panel['title']} [{t['refId']}]", t


def exprs() -> list[tuple[str, str]]:
    return [(where, t["expr"]) for where, t in targets()]


def test_uid_is_fixed_and_id_is_not() -> None:
    # A fixed uid keeps links and provisioning stable; a numeric id is per instance.
    assert BOARD["uid"] == "cancel-watchdog"
    assert BOARD.get("id") is None


def test_datasource_variable_is_used_by_every_panel_and_target() -> None:
    ds = VARIABLES["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for panel in PANELS:
        assert panel["datasource"]["uid"] == DATASOURCE_REF, panel["title"]
    for where, t in targets():
        assert t["datasource"]["uid"] == DATASOURCE_REF, where
    for var in VARIABLES.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == DATASOURCE_REF, var["name"]


def test_filters_exist_and_are_multi_valued() -> None:
    for name in ("job", "instance", "category", "carrier"):
        var = VARIABLES[name]
        assert var["type"] == "query" and var["includeAll"] and var["allValue"] == ".*"


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_has_a_description_a_unit_and_queries(panel: dict[str, Any]) -> None:
    assert len(panel.get("description", "")) >= 20
    assert panel["fieldConfig"]["defaults"].get("unit")
    assert panel["targets"]


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in BOARD["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("where", "expr"), exprs(), ids=[w for w, _ in exprs()])
def test_query_conventions(where: str, expr: str) -> None:
    # rate() over a fixed window breaks at other scrape intervals or zoom levels.
    for fn, window in RANGE.findall(expr):
        allowed = {"$__rate_interval"} if fn in ("rate", "irate") else {
            "$__rate_interval", "$__range"}
        assert window in allowed, f"{where}: {fn}(...[{window}])"
    selectors = SELECTOR.findall(expr)
    assert selectors, f"{where}: no watchdog selector"
    for metric, matchers in selectors:
        assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, (
            f"{where}: {metric} ignores the job/instance filters")
        if metric == "watchdog_cancellations_by_dimension_total":
            # no carrier label here: an alone dimension multiplies no other
            assert 'category=~"$category"' in matchers, f"{where}: ignores $category"
        if metric == "watchdog_cancellations_total":
            assert 'carrier=~"$carrier"' in matchers, f"{where}: ignores $carrier"
            assert 'category=~"$category"' in matchers or where.rsplit(" [", 1)[0] in \
                ALL_CATEGORIES, f"{where}: ignores $category"


def test_distributors_are_not_queried():
    # Distributors (thousands) are not metric labels: a query on them would show
    # nothing, or invite someone to add them.
    queries = [e for _, e in exprs()] + [v.get("definition", "") for v in VARIABLES.values()]
    for q in queries:
        assert "distributor" not in q, q


def test_every_dimension_the_panels_group_by_is_a_bounded_label_of_the_shipped_configs():
    example = load_config(DEPLOY.parent / "config.example.yaml", env={}).source.dimensions
    demo = {name: DimensionConfig(**d) for name, d in DEMO_DIMENSIONS.items()}
    grouped = {label.strip() for _, e in exprs() if "watchdog_cancellations_total" in e
               for labels in BY.findall(e) for label in labels.split(",")} - {"category"}
    alone = {d for _, e in exprs() for d in ALONE.findall(e)}
    assert {"carrier", "upstream", "province"} <= grouped
    assert alone == {"product"}
    for name, dims in (("config.example.yaml", example), ("demo", demo)):
        for label in grouped:
            assert dims[label].label and not dims[label].alone, f"{name}: {label} is not a label"
        # A dimension queried on the by_dimension family must be alone there, or the
        # panel is empty; alone, it multiplies no label, and top_k still caps it.
        for dim in alone:
            assert dims[dim].alone, f"{name}: {dim} is not alone"
    # Products run to hundreds: alone, and capped.
    assert example["product"].top_k <= 100
    assert demo["product"].top_k == example["product"].top_k


def test_by_dimension_queries_group_by_value_of_one_dimension():
    for where, e in exprs():
        if "watchdog_cancellations_by_dimension_total" in e:
            # Without one dimension= matcher, values of several dimensions would mix.
            assert len(ALONE.findall(e)) == e.count("watchdog_cancellations_by_dimension_total")
            assert {g.strip() for g in BY.findall(e)} <= {"value"}, where


def test_top_products_ranks_products_over_the_time_range():
    [panel] = [p for p in PANELS if p["title"] == "Top products"]
    [target] = panel["targets"]
    assert target["expr"].startswith("topk(10, sum by (value) (increase("
                                      "watchdog_cancellations_by_dimension_total{")
    assert 'dimension="product"' in target["expr"]
    assert "[$__range]" in target["expr"] and target["legendFormat"] == "{{value}}"
    assert panel["fieldConfig"]["defaults"]["unit"] == "short"
    assert "top_k" in panel["description"] and "other" in panel["description"]


def test_provisioning_points_at_the_dashboard_and_the_datasource() -> None:
    yaml = YAML(typ="safe")
    ds = yaml.load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dash = yaml.load(
        (GRAFANA / "provisioning" / "dashboards" / "cancel-watchdog.yml").read_text())
    [provider] = dash["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/cancel-watchdog"
