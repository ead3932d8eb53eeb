"""The alert lifecycle as a pure function: grouping, repeat, resolve, mutes, routing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watchdog.alerts.config import AlertingConfig, InhibitRule, MaintenanceWindow, RouteConfig
from watchdog.alerts.lifecycle import Mutes, State, apply_signals, flush, forget_failed
from watchdog.alerts.silences import parse_matcher
from watchdog.alerts.values import Silence, fingerprint
from watchdog.model import Signal
from watchdog.notifiers.router import compile_routes

T0 = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
MIN = timedelta(minutes=1)


def sig(firing: bool = True, at: datetime = T0, severity: str = "critical", **labels: str
        ) -> Signal:
    labels = {"category": "system_fault", "carrier": "中国联通", **labels}
    return Signal("spike", labels, at, firing, 18 if firing else 0.3, 0.2, 300, severity)


def routing(**alerting):
    cfg = AlertingConfig(**{"default_channels": ["ops"], "group_wait": "0s",
                            "group_interval": "5m", "repeat_interval": "4h", **alerting})
    return compile_routes(cfg, alerting.get("routes", []))


def step(state, signals, now, r=None, mutes=None):
    r = r or routing()
    mutes = mutes or Mutes()
    alerts = apply_signals(state.alerts, signals, now, timedelta(minutes=5))
    return flush(replace(state, alerts=alerts), r, mutes, now)


def test_fingerprint_is_stable_and_order_independent():
    a = fingerprint({"category": "x", "carrier": "联通"})
    assert a == fingerprint({"carrier": "联通", "category": "x"})
    assert a != fingerprint({"category": "x", "carrier": "电信"})
    assert len(a) == 16


def test_first_firing_notifies_once_and_a_second_flush_sends_nothing():
    st, notes = step(State(), [sig()], T0)
    assert [(n.channel, n.status, len(n.alerts)) for n in notes] == [("ops", "firing", 1)]
    st, again = step(st, [sig()], T0)
    assert again == []
    st, later = step(st, [sig(at=T0 + 6 * MIN)], T0 + 6 * MIN)
    assert later == []  # nothing changed: wait for repeat_interval


def test_repeat_interval_resends_a_still_firing_group():
    st, _ = step(State(), [sig()], T0)
    t = T0
    sent = []
    while t < T0 + timedelta(hours=4, minutes=10):
        t += MIN
        st, notes = step(st, [sig(at=t)], t)
        sent.extend((t, n) for n in notes)
    assert len(sent) == 1
    assert sent[0][0] - T0 >= timedelta(hours=4)


def test_group_wait_batches_alerts_of_one_group():
    r = routing(group_wait="30s", group_by=["category"])
    st, notes = step(State(), [sig()], T0, r)
    assert notes == []
    st, notes = step(st, [sig(), sig(carrier="中国电信")], T0 + timedelta(seconds=20), r)
    assert notes == []
    st, notes = step(st, [sig(), sig(carrier="中国电信")], T0 + timedelta(seconds=30), r)
    assert len(notes) == 1 and len(notes[0].alerts) == 2


def test_resolved_goes_only_to_channels_that_saw_the_firing():
    r = routing(default_channels=["ops", "mail"])
    st, notes = step(State(), [sig()], T0, r)
    assert {n.channel for n in notes} == {"ops", "mail"}
    # mail never got the firing message (delivery failed for good)
    fps = [a.fingerprint for a in notes[0].firing]
    st = forget_failed(st, notes[0].group_key, "mail", fps)
    st, notes = step(st, [sig(firing=False, at=T0 + MIN)], T0 + MIN, r)
    assert notes == []  # group_interval not yet over
    st, notes = step(st, [], T0 + 5 * MIN, r)
    assert [(n.channel, n.status) for n in notes] == [("ops", "resolved")]
    assert notes[0].alerts[0].ends_at == T0 + MIN
    # the resolved alert is gone after it was announced; the group closes
    st, notes = step(st, [], T0 + 11 * MIN, r)
    assert notes == [] and st.alerts == {} and st.groups == {}


def test_firing_that_no_signal_confirms_resolves_after_resolve_timeout():
    st, _ = step(State(), [sig()], T0)
    alerts = apply_signals(st.alerts, [], T0 + 4 * MIN, timedelta(minutes=5))
    assert all(a.firing for a in alerts.values())
    alerts = apply_signals(st.alerts, [], T0 + 6 * MIN, timedelta(minutes=5))
    (a,) = alerts.values()
    assert not a.firing and a.ends_at == T0 + 5 * MIN


def test_escalation_replaces_the_warning_alert():
    st, _ = step(State(), [sig(severity="warning")], T0)
    alerts = apply_signals(st.alerts, [sig(severity="critical", at=T0 + MIN)], T0 + MIN,
                           timedelta(minutes=5))
    by_sev = {a.severity: a.status for a in alerts.values()}
    assert by_sev == {"warning": "resolved", "critical": "firing"}


def test_silence_mutes_and_its_end_notifies_at_next_flush():
    silence = Silence("s1", (parse_matcher("category=system_fault"),
                             parse_matcher("carrier=中国联通")), T0 - MIN, T0 + 30 * MIN)
    mutes = Mutes(silences=[silence])
    st, notes = step(State(), [sig()], T0, mutes=mutes)
    assert notes == []
    t = T0
    while t < T0 + 29 * MIN:
        t += MIN
        st, notes = step(st, [sig(at=t)], t, mutes=mutes)
        assert notes == [], t
    # the silence ends at T0+30m, when the group's flush is due (every 5 min)
    later = []
    for k in range(1, 12):
        st, notes = step(st, [sig(at=t + k * MIN)], t + k * MIN, mutes=mutes)
        later.extend((t + k * MIN, n.status) for n in notes)
    assert later == [(T0 + 30 * MIN, "firing")]


def test_silence_does_not_mute_another_carrier():
    silence = Silence("s1", (parse_matcher("carrier=中国联通"),), T0 - MIN, T0 + 30 * MIN)
    _, notes = step(State(), [sig(carrier="中国电信")], T0, mutes=Mutes(silences=[silence]))
    assert len(notes) == 1


def test_carrier_wide_alert_inhibits_product_alerts_of_that_carrier_only():
    rule = InhibitRule(source={"category": "system_fault"}, target={"category": "system_fault"},
                       equal=["carrier"], target_has=["product"])
    mutes = Mutes(inhibit=[rule])
    r = routing(group_by=["category", "carrier", "product"])
    signals = [sig(), sig(product="大王卡"), sig(carrier="中国电信", product="星卡")]
    _, notes = step(State(), signals, T0, r, mutes)
    told = sorted(tuple(sorted(n.group_labels.items())) for n in notes)
    assert told == [
        (("carrier", "中国电信"), ("category", "system_fault"), ("product", "星卡")),
        (("carrier", "中国联通"), ("category", "system_fault")),
    ]


def test_maintenance_window_suppresses_named_category_during_the_window():
    w = MaintenanceWindow(name="nightly", cron="0 1 * * *", duration="2h",
                          categories=["system_fault"])
    mutes = Mutes(maintenance=[w])
    at_2am = datetime(2024, 5, 1, 2, 0, tzinfo=UTC).replace(hour=18) - timedelta(days=1)
    # 02:00 Shanghai (18:00 UTC the day before) lies inside 01:00-03:00
    _, notes = step(State(), [sig(at=at_2am)], at_2am, mutes=mutes)
    assert notes == []
    _, notes = step(State(), [sig(category="compliance", at=at_2am)], at_2am, mutes=mutes)
    assert len(notes) == 1
    at_4am = at_2am + 2 * timedelta(hours=1)
    _, notes = step(State(), [sig(at=at_4am)], at_4am, mutes=mutes)
    assert len(notes) == 1


def test_routes_continue_and_default():
    routes = [
        RouteConfig(match={"category": "supply_shortage"}, channels=["supply"]),
        RouteConfig(match={"category": "system_fault"}, channels=["dingtalk"],
                    **{"continue": True}),
        RouteConfig(match_re={"severity": "critical"}, channels=["mail"]),
    ]
    r = compile_routes(AlertingConfig(default_channels=["ops"], fallback="sms"), routes)
    ch = lambda labels: sorted(c for x in r.match(labels) for c in x.channels)  # noqa: E731
    assert ch({"category": "supply_shortage", "severity": "critical"}) == ["supply"]
    assert ch({"category": "system_fault", "severity": "critical"}) == ["dingtalk", "mail"]
    assert ch({"category": "system_fault", "severity": "warning"}) == ["dingtalk"]
    assert ch({"category": "compliance", "severity": "warning"}) == ["ops"]
    assert all(x.fallback == "sms" for x in r.match({"category": "system_fault"}))


def test_nested_route_inherits_timings_and_channels():
    routes = [RouteConfig(match={"category": "system_fault"}, channels=["oncall"],
                          repeat_interval="1h",
                          routes=[RouteConfig(match={"carrier": "中国联通"}, group_wait="1m")])]
    r = compile_routes(AlertingConfig(), routes)
    (leaf,) = r.match({"category": "system_fault", "carrier": "中国联通"})
    assert leaf.id == "root.0.0" and leaf.channels == ("oncall",)
    assert leaf.repeat_interval == timedelta(hours=1) and leaf.group_wait == MIN


@pytest.mark.parametrize("text,ok", [
    ("category=system_fault", True), ("carrier!=联通", True), ('product=~"5G.*"', True),
    ("=x", False), ("carrier", False), ("x=~(", False),
])
def test_parse_matcher(text, ok):
    if ok:
        m = parse_matcher(text)
        assert str(m).startswith(m.name)
    else:
        with pytest.raises(ValueError):
            parse_matcher(text)


def test_a_group_that_closes_and_reopens_gets_new_outbox_keys():
    from watchdog.notifiers.outbox import flush_key

    st, first = step(State(), [sig()], T0)
    st, _ = step(st, [sig(firing=False, at=T0 + MIN)], T0 + MIN)
    st, resolved = step(st, [], T0 + 5 * MIN)
    st, _ = step(st, [], T0 + 10 * MIN)
    assert [n.status for n in resolved] == ["resolved"] and st.groups == {}
    st, again = step(st, [sig(at=T0 + 11 * MIN)], T0 + 11 * MIN)
    assert [n.status for n in again] == ["firing"]
    keys = {flush_key(n) for n in (*first, *resolved, *again)}
    assert len(keys) == 3
