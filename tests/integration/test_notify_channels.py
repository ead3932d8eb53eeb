"""Channels against real local servers: what arrives, and what counts as delivered."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from itertools import pairwise

import apprise
import pytest

from tests.integration.notify_servers import (
    Alertmanager,
    HttpReceiver,
    SmtpServer,
    wait_until,
)
from tests.integration.notify_setup import (
    ID_NUMBER,
    PHONE,
    make_alerting,
    make_config,
    signal,
)
from watchdog.notifiers.apprise_channel import BODY_CHECKS, body_check
from watchdog.notifiers.channel import TestMessage
from watchdog.privacy import mask_url

DINGTALK_SECRET = "SECa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
DINGTALK_TOKEN = "8f3e2a1b9c0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def dingtalk(receiver: HttpReceiver, **extra):
    return {"urls": [f"dingtalk://{DINGTALK_SECRET}@{DINGTALK_TOKEN}/"],
            "options": {"endpoint": f"{receiver.url}/robot/send?access_token={{token}}",
                        "timeout": "2s", **extra}}


@pytest.fixture
def receiver():
    r = HttpReceiver().start()
    yield r
    r.stop()


def test_apprise_dingtalk_plugin_alone_reports_errcode_refusal_as_success(receiver):
    """Why http_tap exists: apprise's DingTalk plugin does not read the body."""
    receiver.respond = lambda _: (200, {"errcode": 310000, "errmsg": "sign not match"})
    plugin = apprise.Apprise.instantiate(f"dingtalk://{DINGTALK_SECRET}@{DINGTALK_TOKEN}/")
    plugin.notify_url = f"{receiver.url}/robot/send?access_token={{token}}"
    assert plugin.notify(body="x", title="t") is True
    assert receiver.count() == 1


def test_dingtalk_signed_message_arrives_masked(tmp_path, receiver):
    al, _, _ = make_alerting(tmp_path, {"oncall": dingtalk(receiver)})
    al.evaluate([signal()], deliver=False)
    (attempt,) = al.deliver_pending()
    assert attempt.result == "delivered"
    (req,) = receiver.received
    assert req.path == "/robot/send" and req.query["access_token"] == [DINGTALK_TOKEN]
    assert req.query["timestamp"] and req.query["sign"]  # signed with the secret
    doc = req.json()
    assert doc["msgtype"] == "markdown"
    text = doc["markdown"]["text"]
    assert "系统故障" in text and "中国联通" in text and "上游A" in text
    assert PHONE not in text and ID_NUMBER not in text and "138****5678" in text
    assert al.outbox.pending_count() == 0
    al.close()


def test_dingtalk_errcode_with_http_200_is_a_permanent_failure(tmp_path, receiver):
    receiver.respond = lambda _: (200, {"errcode": 310000, "errmsg": "sign not match"})
    al, _, reg = make_alerting(tmp_path, {"oncall": dingtalk(receiver)})
    al.evaluate([signal()], deliver=False)
    (attempt,) = al.deliver_pending()
    assert attempt.result == "failed"
    assert "310000" in attempt.urls[0].detail and attempt.urls[0].permanent
    assert al.deliver_pending() == []  # not retried
    assert receiver.count() == 1
    assert reg.get_sample_value("watchdog_notifications_total",
                                {"channel": "oncall", "result": "failed"}) == 1
    (row,) = al.outbox.rows()
    assert row.status == "failed" and "sign not match" in row.last_error
    assert DINGTALK_SECRET not in row.last_error and DINGTALK_TOKEN not in row.last_error
    al.close()


def test_wecom_rate_limit_errcode_is_retried_then_delivered(tmp_path, receiver):
    answers = iter([(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
                    (200, {"errcode": 0, "errmsg": "ok"})])
    receiver.respond = lambda _: next(answers)
    ch = {"urls": [f"wecombot://{WECOM_KEY}"],
          "options": {"endpoint": f"{receiver.url}/cgi-bin/webhook/send?key={{token}}"}}
    al, _, _ = make_alerting(tmp_path, {"supply": ch})
    al.evaluate([signal("supply_shortage", product="大王卡")], deliver=False)
    assert [a.result for a in al.deliver_pending()] == ["retry"]
    wait_until(lambda: [a.result for a in al.deliver_pending()] == ["delivered"], 10,
               "the retry to be delivered")
    assert receiver.count() == 2
    body = receiver.received[-1].json()
    assert body["msgtype"] == "text" or body["msgtype"] == "markdown"
    assert receiver.received[-1].query["key"] == [WECOM_KEY]
    al.close()


def test_wecom_unknown_key_is_permanent(tmp_path, receiver):
    receiver.respond = lambda _: (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    ch = {"urls": [f"wecombot://{WECOM_KEY}"],
          "options": {"endpoint": f"{receiver.url}/cgi-bin/webhook/send?key={{token}}"}}
    al, _, _ = make_alerting(tmp_path, {"supply": ch})
    al.evaluate([signal()], deliver=False)
    assert [a.result for a in al.deliver_pending()] == ["failed"]
    al.close()


def test_feishu_code_refusal_and_success(tmp_path, receiver):
    answers = iter([(200, {"code": 9499, "msg": "Bad Request", "data": {}}),
                    (200, {"code": 0, "msg": "success", "data": {}})])
    receiver.respond = lambda _: next(answers)
    ch = {"urls": ["feishu://abcdef0123456789abcdef0123456789"],
          "options": {"endpoint": f"{receiver.url}/open-apis/bot/v2/hook/{{token}}"}}
    al, _, _ = make_alerting(tmp_path, {"fs": ch})
    al.evaluate([signal()], deliver=False)
    assert [a.result for a in al.deliver_pending()] == ["failed"]
    al.evaluate([signal(carrier="中国电信")], deliver=False)
    assert [a.result for a in al.deliver_pending()] == ["delivered"]
    assert receiver.received[-1].path.endswith("/abcdef0123456789abcdef0123456789")
    al.close()


@pytest.mark.parametrize("body", [{"code": 200, "msg": "success"}, {"code": "SUCCESS"},
                                  {"errcode": 310000, "errmsg": "the receiver's own field"}])
def test_generic_json_receiver_body_is_not_read_as_a_bot_errcode(tmp_path, receiver, body):
    """Only DingTalk/WeCom/Feishu/Lark define errcode/code; a json:// 200 is delivered."""
    receiver.respond = lambda _: (200, body)
    al, _, reg = make_alerting(
        tmp_path, {"hook": {"urls": [f"json://127.0.0.1:{receiver.port}/hook"]}})
    al.evaluate([signal()], deliver=False)
    (attempt,) = al.deliver_pending()
    assert attempt.result == "delivered", attempt.urls
    assert receiver.count() == 1 and al.outbox.pending_count() == 0
    assert reg.get_sample_value("watchdog_notifications_total",
                                {"channel": "hook", "result": "failed"}) == 0
    al.close()


def lark(receiver: HttpReceiver) -> dict:
    return {"urls": ["lark://abcdef-0123456789"],
            "options": {"endpoint": f"{receiver.url}/open-apis/bot/v2/hook/{{token}}"}}


def feishu(receiver: HttpReceiver) -> dict:
    return {"urls": ["feishu://abcdef0123456789abcdef0123456789"],
            "options": {"endpoint": f"{receiver.url}/open-apis/bot/v2/hook/{{token}}"}}


@pytest.mark.parametrize("make,body,expect", [
    # Feishu's current answer carries both the new and the legacy fields.
    (feishu, {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {},
              "msg": "success"}, "delivered"),
    (feishu, {"StatusCode": 19021, "StatusMessage": "sign match fail"}, "failed"),
    (feishu, {"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]"},
     "retry"),
    (lark, {"code": 0, "msg": "success", "data": {}}, "delivered"),
    (lark, {"code": 19024, "msg": "Key Words Not Found"}, "failed"),
    (lambda r: dingtalk(r), {"errcode": 130101, "errmsg": "send too fast"}, "retry"),
])
def test_bot_body_codes_per_service(tmp_path, receiver, make, body, expect):
    receiver.respond = lambda _: (200, body)
    al, _, _ = make_alerting(tmp_path, {"bot": make(receiver)})
    al.evaluate([signal()], deliver=False)
    (attempt,) = al.deliver_pending()
    assert attempt.result == expect, attempt.urls
    assert receiver.count() == 1
    al.close()


def test_body_check_follows_the_plugin_not_the_scheme():
    wecom_native = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx"
    assert body_check(apprise.Apprise.instantiate(wecom_native)) is BODY_CHECKS["wecombot"]
    assert body_check(apprise.Apprise.instantiate(
        f"dingtalk://{DINGTALK_SECRET}@{DINGTALK_TOKEN}/")) is BODY_CHECKS["dingtalk"]
    for url in ("json://127.0.0.1:9/x", "jsons://127.0.0.1:9/x", "form://127.0.0.1:9/x",
                "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"):
        assert body_check(apprise.Apprise.instantiate(url)) is None, url


@pytest.mark.parametrize("status,expect", [(500, "retry"), (503, "retry"), (429, "retry"),
                                           (400, "failed"), (404, "failed")])
def test_http_status_classification_for_json_webhooks(tmp_path, receiver, status, expect):
    receiver.respond = lambda _: (status, {"error": "x"})
    port = receiver.port
    al, _, _ = make_alerting(tmp_path, {"hook": {"urls": [f"json://127.0.0.1:{port}/hook"]}})
    al.evaluate([signal()], deliver=False)
    assert [a.result for a in al.deliver_pending()] == [expect]
    al.close()


def test_timeout_and_refused_connection_are_retried(tmp_path):
    slow = HttpReceiver().start()
    slow.hold = threading.Event()  # never answers in time
    dead = HttpReceiver()  # never started: connection refused
    channels = {
        "slow": {"type": "webhook", "urls": [f"{slow.url}/hook"], "options": {"timeout": "0.3s"}},
        "dead": {"type": "webhook", "urls": [f"{dead.url}/hook"]},
    }
    al, _, _ = make_alerting(tmp_path, channels, default_channels=["slow", "dead"])
    al.evaluate([signal()], deliver=False)
    results = {a.channel: a for a in al.deliver_pending()}
    assert results["slow"].result == "retry" and "Timeout" in results["slow"].urls[0].detail
    assert results["dead"].result == "retry" and "Connect" in results["dead"].urls[0].detail
    slow.hold.set()
    slow.stop()
    al.close()


def test_a_hanging_channel_does_not_delay_another(tmp_path):
    hanging, fine = HttpReceiver().start(), HttpReceiver().start()
    hanging.hold = threading.Event()
    channels = {
        "hanging": {"type": "webhook", "urls": [f"{hanging.url}/h"], "options": {"timeout": "20s"}},
        "fine": {"type": "webhook", "urls": [f"{fine.url}/f"]},
    }
    al, _, _ = make_alerting(tmp_path, channels, default_channels=["hanging", "fine"])
    al.evaluate([signal()], deliver=True)  # delivery starts in the background
    wait_until(lambda: hanging.count() == 1, 10, "the hanging channel's request")
    # the other channel's message arrives while the first is still stuck in its request
    wait_until(lambda: fine.count() == 1, 10, "the fine channel's message")
    wait_until(lambda: al.outbox.pending_count() == 1, 10, "fine to be marked delivered")
    assert not hanging.hold.is_set()
    hanging.hold.set()
    wait_until(lambda: al.outbox.pending_count() == 0, 10, "the held channel to finish")
    al.close()
    hanging.stop()
    fine.stop()


def test_a_hanging_channel_does_not_delay_a_channel_added_by_reconfigure(tmp_path):
    """The pool had one worker (one channel); the channel added by SIGHUP gets its own."""
    hanging, added = HttpReceiver().start(), HttpReceiver().start()
    hanging.hold = threading.Event()
    hang = {"type": "webhook", "urls": [f"{hanging.url}/h"], "options": {"timeout": "20s"}}
    al, _, _ = make_alerting(tmp_path, {"hanging": hang}, default_channels=["hanging"])
    try:
        al.evaluate([signal()], deliver=True)
        wait_until(lambda: hanging.count() == 1, 10, "the hanging channel's request")
        cfg = make_config(al.cfg.state.url, {"hanging": hang, "added": {
            "type": "webhook", "urls": [f"{added.url}/a"]}},
            default_channels=["hanging", "added"])
        al.reconfigure(cfg)
        al.evaluate([signal(carrier="中国电信")], deliver=True)
        # arrives while the first channel's request is still held (up to 20 s)
        wait_until(lambda: added.count() == 1, 10, "the added channel's message")
        assert not hanging.hold.is_set() and hanging.count() == 1
        assert added.received[0].json()["commonLabels"]["carrier"] == "中国电信"
        hanging.hold.set()
        # the old pool's task finishes; the hanging channel's second row follows it

        def all_delivered() -> bool:
            al.deliver_pending()
            return al.outbox.pending_count() == 0

        wait_until(all_delivered, 20, "every row to be delivered")
        assert hanging.count() == 2 and added.count() == 1
    finally:
        hanging.hold.set()
        al.close()
        hanging.stop()
        added.stop()


def test_fallback_channel_gets_the_alert_when_every_route_channel_failed(tmp_path):
    refusing, backup = HttpReceiver().start(), HttpReceiver().start()
    refusing.respond = lambda _: (403, {"error": "forbidden"})
    channels = {"primary": {"type": "webhook", "urls": [f"{refusing.url}/p"]},
                "backup": {"type": "webhook", "urls": [f"{backup.url}/b"]}}
    routes = [{"match": {"category": "system_fault"}, "channels": ["primary"],
               "fallback": "backup"}]
    al, _, _ = make_alerting(tmp_path, channels, routes=routes, default_channels=[])
    al.evaluate([signal()], deliver=False)
    assert [a.result for a in al.deliver_pending()] == ["failed"]
    assert [a.result for a in al.deliver_pending()] == ["delivered"]
    assert backup.count() == 1 and backup.received[0].json()["status"] == "firing"
    # primary never saw the firing: it is told again at the next flush, not "resolved"
    al.close()
    refusing.stop()
    backup.stop()


def test_ten_alerts_to_one_bot_are_not_throttled(tmp_path, receiver, monkeypatch):
    import apprise.url as apprise_url

    sleeps: list[float] = []
    # apprise_url.time is the time module: every time.sleep (the pacer's too) is recorded
    monkeypatch.setattr(apprise_url.time, "sleep", lambda s: sleeps.append(s))
    al, _, _ = make_alerting(tmp_path, {"oncall": dingtalk(receiver)})
    al.evaluate([signal(carrier=f"运营商{i}") for i in range(10)], deliver=False)
    attempts = al.deliver_pending()
    assert [a.result for a in attempts] == ["delivered"] * 10
    assert receiver.count() == 10
    assert sleeps == []  # neither apprise's throttle nor the min_interval pacer waited
    al.close()


def spacings(receiver: HttpReceiver) -> list[float]:
    times = [r.at for r in receiver.received]
    return [b - a for a, b in pairwise(times)]


@pytest.mark.parametrize("kind", ["apprise", "webhook"])
def test_min_interval_spaces_requests_to_one_url_across_sends_and_reloads(
        tmp_path, receiver, kind):
    pace = 0.4
    url = (f"json://127.0.0.1:{receiver.port}/bot" if kind == "apprise"
           else f"{receiver.url}/bot")
    channels = {"bot": {"type": kind, "urls": [url], "options": {"min_interval": f"{pace}s"}}}
    al, _, _ = make_alerting(tmp_path, channels)
    try:
        al.evaluate([signal(carrier=f"运营商{i}") for i in range(3)], deliver=False)
        assert [a.result for a in al.deliver_pending()] == ["delivered"] * 3
        # a reload builds new channel objects; the pace of the URL carries over
        al.reconfigure(make_config(al.cfg.state.url, channels))
        al.evaluate([signal(carrier="运营商3")], deliver=False)
        assert [a.result for a in al.deliver_pending()] == ["delivered"]
        assert receiver.count() == 4
        gaps = spacings(receiver)
        assert len(gaps) == 3 and min(gaps) >= pace, gaps
    finally:
        al.close()


def test_min_interval_is_bounded():
    from pydantic import ValidationError

    from watchdog.alerts.config import ChannelOptions

    assert ChannelOptions.model_validate({"min_interval": "3s"}).min_interval.seconds == 3
    with pytest.raises(ValidationError, match="between 0s and 60s"):
        ChannelOptions.model_validate({"min_interval": "5m"})


def test_min_interval_waits_only_in_its_own_channel(tmp_path):
    paced, free = HttpReceiver(respond=lambda _: (200, b"")).start(), HttpReceiver().start()
    channels = {
        "paced": {"type": "webhook", "urls": [f"{paced.url}/p"],
                  "options": {"min_interval": "2s"}},
        "free": {"type": "webhook", "urls": [f"{free.url}/f"]},
    }
    al, _, _ = make_alerting(tmp_path, channels, default_channels=["paced", "free"])
    try:
        al.evaluate([signal(carrier=f"运营商{i}") for i in range(3)], deliver=False)
        attempts = al.deliver_pending()
        assert sorted(a.result for a in attempts) == ["delivered"] * 6
        assert min(spacings(paced)) >= 2.0
        # the free channel's three went out while the paced one waited for its second
        assert max(r.at for r in free.received) < paced.received[1].at
    finally:
        al.close()
        paced.stop()
        free.stop()


def test_alertmanager_v4_webhook_payload(tmp_path, receiver):
    receiver.respond = lambda _: (200, b"")
    ch = {"type": "webhook", "urls": [f"{receiver.url}/alertmanager"]}
    al, _, _ = make_alerting(tmp_path, {"bridge": ch},
                             links={"grafana": "http://grafana.local/d/x"})
    t0 = datetime.now(UTC)
    al.evaluate([signal(at=t0), signal(carrier="中国电信", at=t0)], t0, deliver=False)
    al.deliver_pending()
    docs = [r.json() for r in receiver.received]
    assert len(docs) == 2  # grouped by category and carrier by default
    d = docs[0]
    assert d["version"] == "4" and d["status"] == "firing" and d["receiver"] == "bridge"
    assert set(d["groupLabels"]) == {"category", "carrier"}
    assert d["commonLabels"]["alertname"] == "cancel_spike"
    (a,) = d["alerts"]
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["startsAt"].endswith("Z") and len(a["fingerprint"]) == 16
    assert a["generatorURL"] == "http://grafana.local/d/x"
    assert PHONE not in json.dumps(d, ensure_ascii=False)
    assert a["annotations"]["observed"] == "18"
    al.close()


@pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
def test_email(tmp_path, mode):
    smtp = SmtpServer(tls_dir=tmp_path, mode=mode).start()
    try:
        scheme = "mailtos" if mode != "plain" else "mailto"
        secure = {"plain": "", "starttls": "&mode=starttls", "ssl": "&mode=ssl"}[mode]
        auth = f"{smtp.user}:{smtp.password}@" if mode != "plain" else "ops@"
        url = (f"{scheme}://{auth}127.0.0.1:{smtp.port}?smtp=127.0.0.1"
               f"&from=watchdog@example.com&to=oncall@example.com&verify=no{secure}")
        al, _, _ = make_alerting(tmp_path, {"mail": {"urls": [url], "language": "en"}})
        al.evaluate([signal()], deliver=False)
        assert [a.result for a in al.deliver_pending()] == ["delivered"]
        (msg,) = smtp.messages
        assert "[FIRING:1]" in msg["Subject"]
        text = msg.get_body(("plain", "html")).get_content()
        assert "system fault" in text and PHONE not in text
        if mode != "plain":
            assert smtp.auths  # logged in, over TLS
        al.close()
    finally:
        smtp.stop()


def test_email_wrong_password_is_not_delivered(tmp_path):
    smtp = SmtpServer(tls_dir=tmp_path, mode="starttls").start()
    try:
        url = (f"mailtos://{smtp.user}:wrong@127.0.0.1:{smtp.port}?smtp=127.0.0.1"
               "&from=watchdog@example.com&to=oncall@example.com&verify=no&mode=starttls")
        al, _, _ = make_alerting(tmp_path, {"mail": {"urls": [url]}})
        al.evaluate([signal()], deliver=False)
        (attempt,) = al.deliver_pending()
        assert attempt.result != "delivered" and smtp.messages == []
        assert "wrong" not in attempt.urls[0].url
        al.close()
    finally:
        smtp.stop()


def test_real_alertmanager_receives_firing_then_resolved(tmp_path):
    am = Alertmanager(tmp_path).start()
    try:
        al, _, _ = make_alerting(tmp_path, {"am": {"type": "alertmanager", "urls": [am.url]}},
                                 group_interval="0s")
        t0 = datetime.now(UTC)
        al.evaluate([signal(at=t0)], t0, deliver=False)
        assert [a.result for a in al.deliver_pending()] == ["delivered"]
        alerts = wait_until(am.alerts, 10, "Alertmanager to hold our alert")
        (a,) = alerts
        assert a["labels"]["category"] == "system_fault"
        assert a["labels"]["carrier"] == "中国联通" and a["status"]["state"] == "active"
        assert PHONE not in json.dumps(a, ensure_ascii=False)
        al.evaluate([signal(firing=False)], deliver=False)
        assert [a.result for a in al.deliver_pending()] == ["delivered"]
        wait_until(lambda: am.alerts() == [], 10, "Alertmanager to see it resolved")
        al.close()
    finally:
        am.stop()


def test_test_message_reports_per_url_with_secrets_masked(tmp_path, receiver):
    al, _, _ = make_alerting(tmp_path, {"oncall": dingtalk(receiver)})
    (res,) = al.channels["oncall"].deliver(TestMessage("oncall", datetime.now(UTC)))
    assert res.ok and DINGTALK_TOKEN not in res.url and DINGTALK_SECRET not in res.url
    assert res.url == mask_url(f"dingtalk://{DINGTALK_SECRET}@{DINGTALK_TOKEN}/")
    assert "测试" in receiver.received[0].json()["markdown"]["text"]
    al.close()


