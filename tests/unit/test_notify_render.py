"""Message rendering: languages, IM size limits, masking of personal data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.alerts.config import LinksConfig
from watchdog.alerts.values import FIRING, RESOLVED, Alert, Notification, fingerprint
from watchdog.model import Contributor
from watchdog.notifiers.digest import summarize
from watchdog.notifiers.render import Renderer, cut_to_bytes, utf8_len
from watchdog.privacy import mask_text
from watchdog.store import StoredEvent

T0 = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
PHONE, ID = "13812345678", "110101199003071234"


def alert(i: int = 0, status: str = FIRING, sample: str = f"客户{PHONE} 身份证{ID} 接口超时"):
    labels = {"alertname": "cancel_spike", "category": "system_fault", "carrier": "中国联通",
              "product": f"大王卡{i}", "severity": "critical"}
    return Alert(fingerprint(labels), labels, status, T0, T0 + timedelta(minutes=20)
                 if status == RESOLVED else None, T0, "spike", 18 + i, 0.2, 300, 9.0,
                 f"联通 BSS 故障，联系人电话 {PHONE}",
                 (Contributor("upstream", "上游A", 15, 0.1, 0.83),
                  Contributor("province", "广东", 3, 0.1, 0.17)), (sample, sample + "（重试）"))


def note(alerts, status=FIRING):
    return Notification("root:x", 1, "ops", "root", status,
                        {"category": "system_fault", "carrier": "中国联通"}, tuple(alerts), T0)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_alert_message_has_numbers_contributors_samples_links_and_no_personal_data(lang):
    r = Renderer(LinksConfig(grafana="http://grafana.local/d/cancel",
                             runbook="http://wiki.local/runbook/{category}"))
    m = r.alert_message(note([alert()]), lang)
    text = m.title + m.body
    assert PHONE not in text and ID not in text
    assert "138****5678" in text and "110***********1234" in text
    assert "18" in m.body and "0.2" in m.body and "上游A" in m.body
    assert "http://wiki.local/runbook/system_fault" in m.body
    assert "http://grafana.local/d/cancel" in m.body
    if lang == "zh":
        assert m.title.startswith("【告警 1】") and "系统故障" in m.title
    else:
        assert m.title.startswith("[FIRING:1]") and "system fault" in m.title


def test_resolved_message_says_so():
    m = Renderer().alert_message(note([alert(status=RESOLVED)], RESOLVED), "zh")
    assert m.title.startswith("【已恢复】") and "已恢复" in m.body


@pytest.mark.parametrize("limit", [2048, 600])
def test_many_alerts_fit_the_im_limit(limit):
    big = [alert(i, sample="超长原因" * 300) for i in range(60)]
    for lang in ("zh", "en"):
        m = Renderer().alert_message(note(big), lang, max_bytes=limit)
        assert utf8_len(m.title) + 2 + utf8_len(m.body) <= limit
        assert "大王卡" in m.body  # shortened, not emptied


def test_cut_to_bytes_never_splits_a_character():
    text = "撤单" * 1000
    cut = cut_to_bytes(text, 101)
    assert utf8_len(cut) <= 101 and cut.endswith("…")
    cut.encode("utf-8")  # valid


def test_digest_compares_with_the_day_before():
    def ev(cat, carrier, reason):
        return StoredEvent("1", "已撤单", cat, "r", T0, {"carrier": carrier}, reason)

    day = [ev("compliance", "中国联通", "一证五号超限")] * 3
    day.append(ev("system_fault", "中国移动", "BSS异常"))
    before = [ev("compliance", "中国联通", "一证五号超限")] * 2 + [ev("exclude", "x", "测试")]
    ctx = summarize(T0.date(), day, before, top=5)
    assert ctx["total"] == 4 and ctx["prev_total"] == 2 and ctx["total_delta"] == "+100%"
    assert ctx["categories"][0] == {"key": "compliance", "count": 3, "prev": 2, "delta": "+50%"}
    m = Renderer().digest_message(ctx, "zh")
    assert "合规风控：3（前一日 2，+50%）" in m.body and "中国联通" in m.body
    assert "一证五号超限" in m.body
    assert "Top reasons" in Renderer().digest_message(ctx, "en").body


def test_digest_ranks_reasons_by_template_not_by_masked_numbers():
    """Ten cancellations of one wording naming ten customers are one reason, not ten."""
    def ev(reason):
        return StoredEvent("1", "已撤单", "compliance", "r", T0, {"carrier": "中国联通"},
                           mask_text(reason))

    one_id_five = [ev(f"客户1381234{i:04d} 证件11010119900307{i:04d} 一证五号超限")
                   for i in range(10)]
    timeouts = [ev("BSS接口超时")] * 4
    before = [ev(f"客户1399876{i:04d} 证件32010219851212{i:03d}X 一证五号超限")
              for i in range(6)]
    ctx = summarize(T0.date(), one_id_five + timeouts, before, top=5)
    first, second = ctx["reasons"][:2]
    assert (first["count"], first["prev"]) == (10, 6)  # the day before grouped alike
    assert "一证五号超限" in first["key"] and "<phone>" in first["key"]
    assert (second["key"], second["count"]) == ("bss接口超时", 4)
    assert len(ctx["reasons"]) == 2
    body = Renderer().digest_message(ctx, "zh").body
    assert "1381234" not in body and "138****" not in body
