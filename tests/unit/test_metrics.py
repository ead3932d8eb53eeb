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


def exposition(r: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(r).decode()


def test_alone_dimensions_have_their_own_families():
    from watchdog.metrics import CANCELLATIONS_BY_DIMENSION, ORDERS_BY_DIMENSION

    r = CollectorRegistry()
    m = Metrics(r, ["carrier"], ["compliance"], count_orders=True,
                alone_dimensions=["product"])
    m.ledger.activate({})
    m.add({(CANCELLATIONS_BY_DIMENSION, (("category", "compliance"), ("dimension", "product"),
                                         ("value", "大王卡"))): 3,
           (ORDERS_BY_DIMENSION, (("dimension", "product"), ("value", "other"))): 5})
    text = exposition(r)
    assert "# TYPE watchdog_cancellations_by_dimension_total counter" in text
    assert 'watchdog_cancellations_by_dimension_total{category="compliance",' \
        'dimension="product",value="大王卡"} 3.0' in text
    assert 'watchdog_orders_by_dimension_total{dimension="product",value="other"} 5.0' in text
    # product is no label of the main family: it multiplies nothing there
    assert 'watchdog_cancellations_total{carrier="",category="compliance"} 0.0' in text
    assert "product=" not in text


def test_without_alone_dimensions_or_count_orders_their_families_are_absent():
    r = CollectorRegistry()
    Metrics(r, ["carrier"], ["compliance"]).ledger.activate({})
    assert "by_dimension" not in exposition(r)
    r = CollectorRegistry()
    Metrics(r, [], ["compliance"], alone_dimensions=["product"]).ledger.activate({})
    text = exposition(r)
    assert "watchdog_cancellations_by_dimension_total" in text
    assert "watchdog_orders_by_dimension" not in text
