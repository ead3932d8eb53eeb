"""Condition types, precedence, unless, exclude, code maps and custom categories."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

from watchdog.model import EXCLUDE, UNKNOWN
from watchdog.rules import RuleError, RuleSet, load_rules
from watchdog.rules.engine import ENGINE_ERROR_RULE, NO_MATCH_RULE


@pytest.fixture(scope="module")
def defaults() -> RuleSet:
    return load_rules()


def rules_from(tmp_path: Path, text: str, name: str = "r.yaml", defaults: bool = False) -> RuleSet:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([path], use_defaults=defaults)


def test_keywords_are_matched_after_normalisation(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: kyc
            category: compliance
            keywords: [審核不通過, ＢＳＳ]
    """)
    assert rs.classify("审核不通过").rule == "kyc"
    assert rs.classify("bss 拒绝").rule == "kyc"
    assert rs.classify("审核通过").category == UNKNOWN


def test_regex_is_re2_and_case_insensitive(tmp_path):
    rs = rules_from(tmp_path, r"""
        rules:
          - id: http5xx
            category: system_fault
            regex: 'HTTP\s*5\d\d'
    """)
    assert rs.classify("Carrier returned HTTP 503").category == "system_fault"
    assert rs.classify("HTTP 404").category == UNKNOWN


def test_codes_match_whole_tokens_only(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: ess
            category: compliance
            codes: [ESS-3006, -460]
          - id: e5
            category: system_fault
            code_prefixes: [E5]
    """)
    assert rs.classify("运营商返回：[ESS-3006]校验不通过").rule == "ess"
    assert rs.classify("-460").rule == "ess"
    assert rs.classify("code=-460,msg=x").rule == "ess"
    assert rs.classify("ESS-30061").category == UNKNOWN
    assert rs.classify("abc-460").category == UNKNOWN
    assert rs.classify("E5003 上游超时").rule == "e5"
    assert rs.classify("XE5003").category == UNKNOWN


def test_field_conditions(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: unicom_timeout
            category: system_fault
            keywords: [超时]
            fields:
              carrier: 中国联通
              stage: {in: [开卡中, 已提运营商]}
              amount: {ge: 10, lt: 100}
    """)
    ok = {"carrier": "中国联通", "stage": "开卡中", "amount": "50"}
    assert rs.classify("超时", ok).rule == "unicom_timeout"
    assert rs.classify("超时").category == UNKNOWN
    assert rs.classify("超时", {**ok, "carrier": "中国移动"}).category == UNKNOWN
    assert rs.classify("超时", {**ok, "stage": "已发货"}).category == UNKNOWN
    assert rs.classify("超时", {**ok, "amount": "100"}).category == UNKNOWN
    assert rs.classify("超时", {**ok, "amount": "n/a"}).category == UNKNOWN
    assert rs.classify("超时", {**ok, "amount": "10"}).category == "system_fault"


def test_field_not_equal_and_not_in(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: r
            category: supply_shortage
            keywords: [缺货]
            fields: {upstream: {ne: up1}, product: {not_in: [a, b]}}
    """)
    assert rs.classify("缺货", {"upstream": "up2", "product": "c"}).category == "supply_shortage"
    assert rs.classify("缺货", {"upstream": "up1", "product": "c"}).category == UNKNOWN
    assert rs.classify("缺货", {"upstream": "up2", "product": "A"}).category == UNKNOWN


def test_all_any_and_unless(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: cust
            category: customer_initiated
            all:
              - keywords: [客户]
              - any:
                  - keywords: [取消]
                  - regex: ['不要了?$']
            unless: [非客户原因]
    """)
    assert rs.classify("客户要求取消").rule == "cust"
    assert rs.classify("客户说不要了").rule == "cust"
    assert rs.classify("客户").category == UNKNOWN
    assert rs.classify("非客户原因，取消").category == UNKNOWN


def test_unless_defaults_traps():
    rs = load_rules()
    assert rs.classify("非系统原因，客户主动取消").category == "customer_initiated"
    assert rs.classify("库存充足，证件审核不通过").category == "compliance"
    assert rs.classify("系统自动撤单：超时未激活").category == "customer_initiated"
    assert rs.classify("系统检测到重复下单").category == "duplicate"
    assert rs.classify("号码预占失败").category == "supply_shortage"
    assert rs.classify("号码预占失败：接口超时").category == "system_fault"
    errored = "校验【全网一证多号】出现异常，请联系系统管理员！"
    assert rs.classify(errored).category == "system_fault"
    assert rs.classify("【全网一证多号】校验：数量已达到最大值【5个】").category == "compliance"


@pytest.mark.parametrize(("text", "category"), [
    # a regional pause of new business is policy; a pause of delivery is supply
    ("该地区暂停开户", "compliance"),
    ("河北省即日起暂停新装号卡", "compliance"),
    ("该地区暂停派送", "supply_shortage"),
    # two weak pairings: the category order decides, not a stray priority
    ("上游服务出错，客户已取消", "system_fault"),
    ("不是系统问题，用户自己点了取消", "customer_initiated"),
    # reserving a number: a shortage, unless it timed out or an interface failed
    ("所选靓号预占失败，请重新选号", "supply_shortage"),
    ("号码预占失败（接口返回超时）", "system_fault"),
    # an `unknown` rule loses to any cause, also a weak one
    ("该套餐暂无可用资源，订单已取消", "supply_shortage"),
    ("客户已取消", "customer_initiated"),
    ("订单已取消", "unknown"),
    # `unauthorized` is an API error, unless it is about selling
    ("401 Unauthorized", "system_fault"),
    ("Unauthorized promotion by the distributor", "compliance"),
    # a lost parcel is supply; a lost ID card is not a parcel
    ("包裹在运输途中遗失", "supply_shortage"),
    ("快递员说证件遗失了", "unknown"),
    # submitted twice is a duplicate; applied (and rejected) several times is not
    ("同一客户30分钟内下单3次", "duplicate"),
    ("申请了3次都没通过，客户放弃", "customer_initiated"),
])
def test_default_precedence_and_vocabulary(defaults, text, category):
    assert defaults.classify(text).category == category


PRECEDENCE = """
    rules:
      - id: cust
        category: customer_initiated
        keywords: [a]
      - id: op
        category: operator_error
        keywords: [a]
      - id: comp
        category: compliance
        keywords: [a]
      - id: sys
        category: system_fault
        keywords: [a]
      - id: boosted
        category: customer_initiated
        priority: 5
        keywords: [b]
      - id: test
        category: exclude
        priority: -100
        keywords: [b]
"""


def test_precedence_by_category_order_and_every_match_reported(tmp_path):
    v = rules_from(tmp_path, PRECEDENCE).classify("a")
    assert v.category == "compliance"
    assert v.matched == ("comp", "sys", "op", "cust")


def test_priority_beats_category_and_exclude_beats_priority(tmp_path):
    rs = rules_from(tmp_path, PRECEDENCE)
    v = rs.classify("a b")
    assert v.category == EXCLUDE
    assert v.matched == ("test", "boosted", "comp", "sys", "op", "cust")


def test_category_order_is_configurable(tmp_path):
    order = "category_order: [operator_error, compliance]\n"
    rs = rules_from(tmp_path, order + textwrap.dedent(PRECEDENCE))
    assert rs.classify("a").matched == ("op", "comp", "sys", "cust")


def test_custom_category(tmp_path):
    rs = rules_from(tmp_path, """
        categories: [logistics]
        rules:
          - id: lost
            category: logistics
            keywords: [丢件]
          - id: cust
            category: customer_initiated
            keywords: [丢件]
    """)
    assert "logistics" in rs.categories
    assert EXCLUDE not in rs.categories
    assert rs.categories[-1] == UNKNOWN
    # Added categories rank after the built-in ones unless category_order says otherwise.
    assert rs.classify("物流丢件").matched == ("cust", "lost")


def test_exclude_in_defaults():
    rs = load_rules()
    for text in ("推送测试", "TestOrder172", "测试单", "批量撤单", "运营批量撤单（下架清理）"):
        assert rs.classify(text).category == EXCLUDE, text


def test_code_map_per_upstream(tmp_path):
    rs = rules_from(tmp_path, """
        code_maps:
          - upstream: 91haoka
            codes: {"-120": operator_error, E1003: compliance}
          - upstream: [up-b, up-c]
            field: supplier
            codes: {E1003: system_fault}
    """)
    assert rs.classify("-120", {"upstream": "91haoka"}).rule == "91haoka:-120"
    assert rs.classify("E1003", {"upstream": "91haoka"}).category == "compliance"
    assert rs.classify("E1003", {"supplier": "up-c"}).category == "system_fault"
    assert rs.classify("E1003", {"upstream": "other"}).category == UNKNOWN
    assert rs.classify("E1003").category == UNKNOWN


def test_user_rule_replaces_and_disables_defaults(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: duplicate.repeat_order
            category: operator_error
            keywords: [重复]
          - id: exclude.ops_bulk_action
            enabled: false
    """, defaults=True)
    assert rs.classify("重复下单").category == "operator_error"
    assert rs.classify("批量撤单").category != EXCLUDE
    assert sum(r.id == "duplicate.repeat_order" for r in rs.rules) == 1


def test_keyword_sets_expand(tmp_path):
    rs = rules_from(tmp_path, """
        keyword_sets:
          outage: [宕机, 挂了]
        rules:
          - id: out
            category: system_fault
            keywords: ["@outage", 瘫痪]
    """)
    assert rs.classify("服务器挂了").rule == "out"
    assert rs.classify("瘫痪").rule == "out"


def test_unknown_and_empty_inputs():
    rs = load_rules()
    texts = (None, "", "   ", "None", "null", "见备注", "已撤单", "撤单原因：", "E1003", "-",
             "？？？")
    for text in texts:
        assert rs.classify(text).category == UNKNOWN, text


def test_no_match_has_a_named_rule_id():
    rs = load_rules()
    v = rs.classify("zzqx 9")
    assert (v.category, v.rule, v.matched) == (UNKNOWN, NO_MATCH_RULE, ())
    assert rs.explain("zzqx 9").winner == NO_MATCH_RULE
    # No verdict, whatever the text, leaves the rule label empty.
    for text in (None, "", "   ", "见备注", "客户拒收", "E1003"):
        assert rs.classify(text).rule, text


@pytest.mark.parametrize("reserved", [NO_MATCH_RULE, ENGINE_ERROR_RULE])
def test_engine_rule_ids_are_reserved(tmp_path, reserved):
    with pytest.raises(RuleError) as err:
        rules_from(tmp_path, f"""
            rules:
              - id: {reserved}
                category: unknown
                keywords: [x]
        """)
    assert "reserved" in str(err.value.problems[0])


@pytest.mark.parametrize(
    "text",
    [
        "x" * 1_000_000,
        "客户主动取消" * 200_000,
        "\x00" * 1000 + "客户要求取消",
        "a\ud800b\udfffc 客户拒收",
        "\ufffd\ufffd号码资源不足\ufffd",
        "😀" * 10_000,
        "\u202e\u200d\ufeff",
        b"\xe5\xae\xa2\xe6\x88\xb7\xe6\x8b\x92\xe6\x94\xb6".decode("utf-8", "replace"),
        "<html>" + "<div>" * 50_000,
    ],
)
def test_hostile_input_never_raises(text, defaults):
    rs = defaults
    v = rs.classify(text, {"carrier": "\ud800", "upstream": "\x00"})
    assert v.rule != ENGINE_ERROR_RULE
    assert v.category in (*rs.categories, EXCLUDE)
    assert rs.explain(text).category == v.category


def test_hostile_inputs_still_classify():
    rs = load_rules()
    assert rs.classify("\x00客户\ud800拒收😀").category == "customer_initiated"
    assert rs.classify("客户主动取消" * 200_000).category == "customer_initiated"


def test_explain_reports_rules_evidence_and_location():
    rs = load_rules()
    e = rs.explain("年龄不符；地址不详")
    assert e.normalised == "年龄不符;地址不详"
    assert e.winner == e.matches[0].id == "compliance.age"
    assert e.category == "compliance"
    ids = [m.id for m in e.matches]
    assert "operator_error.address" in ids
    age = e.matches[0]
    assert age.where.endswith("compliance.yaml:" + age.where.rsplit(":", 1)[1])
    assert any("年龄" in ev for ev in age.evidence)


def test_classify_agrees_with_explain_and_cache_is_transparent():
    cached, uncached = load_rules(), load_rules(cache_size=0)
    for text in ("客户拒收", "BSS接口超时", "重复下单", "一证五号超限", "见备注"):
        for _ in range(2):
            v = cached.classify(text)
            assert v == uncached.classify(text)
            assert v.rule == cached.explain(text).winner


def test_fields_are_part_of_the_cache_key(tmp_path):
    rs = rules_from(tmp_path, """
        rules:
          - id: r
            category: system_fault
            keywords: [x]
            fields: {carrier: a}
    """)
    assert rs.classify("x", {"carrier": "a"}).rule == "r"
    assert rs.classify("x", {"carrier": "b"}).rule == NO_MATCH_RULE


def test_classify_is_thread_safe():
    rs = load_rules()
    texts = ["客户拒收", "BSS接口超时", "重复下单", "一证五号超限", "见备注"] * 200
    expected = [rs.classify(t) for t in texts]
    results: list[list] = []

    def work():
        results.append([rs.classify(t) for t in texts])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def test_version_changes_with_rules(tmp_path):
    a = rules_from(tmp_path, "rules: [{id: a, category: compliance, keywords: [x]}]\n")
    b = rules_from(tmp_path, "rules: [{id: a, category: compliance, keywords: [y]}]\n")
    assert a.version != b.version
    assert len(a.version) == 12
    assert load_rules().version == load_rules().version
