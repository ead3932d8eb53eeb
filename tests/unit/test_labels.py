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


def test_alone_dimensions_are_no_labels_but_capped_and_admitted_the_same_way():
    dims = {"carrier": DimensionConfig(column="carrier"),
            "product": DimensionConfig(column="product", top_k=2, alone=True),
            "distributor": DimensionConfig(column="distributor_id", label=False)}
    policy = LabelPolicy(dims)
    assert (policy.names, policy.alone) == (("carrier",), ("product",))
    row = {"carrier": "中国联通", "product": "大王卡", "distributor": "d1"}
    pairs, new = policy.labels_for(row)
    assert (pairs, new) == ((("carrier", "中国联通"),), [("carrier", "中国联通")])
    seen = []
    for product in ("大王卡", "大王卡", "冰激凌", "宝藏卡", "", "冰激凌"):
        pairs, new = policy.labels_for({**row, "product": product}, policy.alone)
        seen.append((dict(pairs)["product"], new))
    assert seen == [("大王卡", [("product", "大王卡")]), ("大王卡", []),
                    ("冰激凌", [("product", "冰激凌")]), (OTHER, []), ("", []),
                    ("冰激凌", [])]
    # after a restart, the admitted products come back from the state database
    again = LabelPolicy(dims, {"product": {"大王卡", "冰激凌"}})
    assert again.labels_for({"product": "宝藏卡"}, again.alone)[0] == (("product", OTHER),)
    policy.forget([("product", "冰激凌")])  # its transaction rolled back
    assert policy.labels_for({"product": "宝藏卡"}, policy.alone)[1] == [("product", "宝藏卡")]
