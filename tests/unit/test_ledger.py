"""The counters that equal the ground truth: exported by the leader only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from watchdog.ledger import Ledger

CANCEL = "watchdog_cancellations"


def registry_with(ledger: Ledger) -> CollectorRegistry:
    r = CollectorRegistry()
    r.register(ledger)
    return r


def key(category: str, carrier: str = "") -> tuple:
    return (CANCEL, (("carrier", carrier), ("category", category)))


def test_standby_exports_nothing_and_leader_starts_from_committed_totals():
    ledger = Ledger({CANCEL: ["category", "carrier"]}, [key("unknown")])
    r = registry_with(ledger)
    ledger.add({key("compliance", "联通"): 3})  # ignored while standing by
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "unknown", "carrier": ""}) is None
    ledger.activate({key("compliance", "联通"): 40, ("other_metric", ()): 1})
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "compliance", "carrier": "联通"}) == 40
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "unknown", "carrier": ""}) == 0
    ledger.add({key("compliance", "联通"): 2, key("duplicate", "电信"): 1})
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "compliance", "carrier": "联通"}) == 42
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "duplicate", "carrier": "电信"}) == 1


def test_stepping_down_removes_the_series():
    ledger = Ledger({CANCEL: ["category", "carrier"]})
    r = registry_with(ledger)
    ledger.activate({key("compliance"): 5})
    ledger.deactivate()
    assert r.get_sample_value("watchdog_cancellations_total",
                              {"category": "compliance", "carrier": ""}) is None


def test_totals_committed_under_other_labels_are_summed_into_todays_series():
    # product was a label, then went alone: its per-product totals of the main family
    # add up, instead of being exported as identical series with different values.
    ledger = Ledger({CANCEL: ["category", "carrier"]}, [key("unknown")])
    r = registry_with(ledger)
    old = [(CANCEL, (("carrier", "联通"), ("category", "compliance"), ("product", p)))
           for p in ("大王卡", "冰激凌")]
    ledger.activate({old[0]: 3, old[1]: 4, key("compliance", "联通"): 2,
                     (CANCEL, (("category", "unknown"),)): 5})  # before carrier was a label
    ledger.add({key("compliance", "联通"): 1})
    samples = [s for f in r.collect() for s in f.samples]
    assert sorted((s.labels["category"], s.labels["carrier"], s.value) for s in samples) == [
        ("compliance", "联通", 10.0), ("unknown", "", 5.0)]
