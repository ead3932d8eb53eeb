"""Top-K labels do what README and config.example.yaml say: the first `top_k` distinct
values seen get a label for good; every other value, however busy, is `other`."""

from __future__ import annotations

from watchdog.config import DimensionConfig
from watchdog.labels import OTHER, LabelPolicy


def carrier_of(policy: LabelPolicy, value: str) -> str:
    pairs, _ = policy.labels_for({"carrier": value})
    return dict(pairs)["carrier"]


def test_first_values_seen_are_kept_not_the_busiest():
    policy = LabelPolicy({"carrier": DimensionConfig(column="carrier", top_k=2)})
    assert [carrier_of(policy, v) for v in ("小众", "中国联通")] == ["小众", "中国联通"]
    # a value that arrives later stays `other` however many rows it has
    assert {carrier_of(policy, "中国移动") for _ in range(1000)} == {OTHER}
    assert carrier_of(policy, "小众") == "小众"


def test_admitted_values_come_back_from_the_state_database():
    dims = {"carrier": DimensionConfig(column="carrier", top_k=2)}
    first = LabelPolicy(dims)
    _, new = first.labels_for({"carrier": "小众"})
    assert new == [("carrier", "小众")]  # what the pipeline persists with the counts
    again = LabelPolicy(dims, {"carrier": {"小众"}})  # after a restart
    assert carrier_of(again, "中国移动") == "中国移动"
    assert carrier_of(again, "中国电信") == OTHER
    assert carrier_of(again, "小众") == "小众"
