"""Metric definitions: series that dashboards and alerts rely on exist from the start."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from watchdog.metrics import POLL_STAGES, Metrics


def test_series_exist_at_zero_on_the_leader():
    r = CollectorRegistry()
    m = Metrics(r, ["carrier"], ["compliance", "unknown"], exclude_rules=["exclude.test_order"])
    m.ledger.activate({})
    for stage in POLL_STAGES:
        assert r.get_sample_value("watchdog_poll_errors_total", {"stage": stage}) == 0
    for category in ("compliance", "unknown"):
        assert r.get_sample_value("watchdog_cancellations_total",
                                  {"category": category, "carrier": ""}) == 0
    assert r.get_sample_value("watchdog_excluded_cancellations_total",
                              {"rule": "exclude.test_order"}) == 0
    assert r.get_sample_value("watchdog_duplicate_rows_total") == 0
    build = [s for f in r.collect() for s in f.samples if s.name == "watchdog_build_info"]
    assert build and build[0].value == 1 and build[0].labels["version"]
