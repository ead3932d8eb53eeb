"""`replay` runs the daemon's tick (detection + alert lifecycle): silences mute what they
match, and `send` delivers through the configured channels; by default nothing is sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import sqlalchemy as sa
from click.testing import CliRunner

from tests.e2e.helpers import WebhookReceiver
from watchdog.alerts.state import add_silence
from watchdog.alerts.values import Matcher, Silence
from watchdog.cli import main
from watchdog.cli_replay import muted_reason
from watchdog.config import Config
from watchdog.demo_db import create_order_db, orders_table
from watchdog.replay import replay
from watchdog.store import StateStore
from watchdog.tick import Tick

ZONE_OFFSET = timedelta(hours=8)
T0 = datetime(2024, 5, 6, 2, 0, tzinfo=UTC)  # 10:00 Beijing
WARM = timedelta(hours=8)
BURST = T0 + timedelta(minutes=12, seconds=20)
REASONS = {"compliance": "全网一证多号校验不通过，证件号码数量已达到最大值",
           "operator_error": "身份证号码填写错误，请核实后重新提交",
           "customer_initiated": "客户主动取消订单"}
BSS = "BSS系统异常，接口调用超时，请稍后重试"


def _orders(url: str) -> None:
    engine = create_order_db(url)
    t = orders_table(sa.MetaData())
    rng = Random(1)
    rows = []
    at = T0 - WARM - timedelta(hours=1)
    i = 0
    while at < T0 + timedelta(minutes=30):
        at += timedelta(seconds=rng.expovariate(6 / 60))
        cat = rng.choice(list(REASONS))
        reason = BSS if rng.random() < 0.02 else REASONS[cat]
        rows.append(_row(i, at, reason, rng.choice(["中国联通", "中国电信", "中国移动"])))
        i += 1
    rows += [_row(10**6 + j, BURST + timedelta(seconds=j), BSS, "中国联通") for j in range(30)]
    with engine.begin() as conn:
        conn.execute(t.insert(), rows)
    engine.dispose()


def _row(i: int, at: datetime, remark: str, carrier: str) -> dict[str, object]:
    local = (at + ZONE_OFFSET).replace(tzinfo=None)
    return {"id": i, "order_no": f"N{i}", "status": "已撤单", "remark": remark,
            "carrier": carrier, "upstream": "u1", "product": "p1", "distributor_id": "D1",
            "province": "河南", "city": "郑州", "stage": "review", "channel": "h5",
            "created_at": local - timedelta(minutes=5), "updated_at": local}


def _config(tmp: Path, hook: str | None = None) -> Config:
    raw: dict[str, object] = {
        "source": {"url": f"sqlite:///{tmp / 'orders.db'}", "table": "orders",
                   "columns": {"id": "id", "status": "status", "changed_at": "updated_at",
                               "reason": ["remark"]},
                   "cancelled_statuses": ["已撤单"],
                   "dimensions": {"carrier": {"column": "carrier"}}},
        "state": {"url": f"sqlite:///{tmp / 'prod-state.db'}"},
        "poll": {"interval": "60s"},
        "detect": {"templates": {"enabled": False}, "step": {"enabled": False}},
    }
    if hook:
        raw["channels"] = {"hook": {"type": "webhook", "urls": [hook]}}
        raw["routes"] = [{"channels": ["hook"]}]
    return Config.model_validate(raw)


def _replay(cfg: Config, state: Path, **kw: object) -> list[Tick]:
    ticks: list[Tick] = []
    replay(cfg, T0, T0 + timedelta(minutes=25), state_url=f"sqlite:///{state}",
           warmup=WARM, on_tick=ticks.append, **kw)
    return ticks


def _bss(ticks: list[Tick]):
    return [t for k in ticks for t in k.transitions
            if t.status == "firing" and t.signal.category == "system_fault"]


def test_replay_honours_a_silence_matching_the_incident(tmp_path: Path) -> None:
    _orders(f"sqlite:///{tmp_path / 'orders.db'}")
    state = tmp_path / "replay-state.db"
    store = StateStore.open(f"sqlite:///{state}")
    with store.engine.begin() as conn:
        add_silence(conn, Silence("s1", (Matcher("category", "=", "system_fault"),),
                                  T0 - timedelta(hours=1), T0 + timedelta(hours=2), "BSS upgrade"))
    store.close()
    ticks = _replay(_config(tmp_path, "http://127.0.0.1:9/never"), state)
    fired = _bss(ticks)
    assert fired, "the BSS burst must be detected"
    assert BURST < fired[0].signal.at <= BURST + timedelta(minutes=2)
    by_tick = next(k for k in ticks if fired[0] in k.transitions)
    assert muted_reason(fired[0], by_tick) == "silence:s1"
    notified = [a for k in ticks for n in k.notifications for a in n.alerts
                if a.labels.get("category") == "system_fault"]
    assert notified == [], "a silenced alert is not notified"


def test_replay_sends_only_when_asked(tmp_path: Path) -> None:
    _orders(f"sqlite:///{tmp_path / 'orders.db'}")
    receiver = WebhookReceiver()
    try:
        cfg = _config(tmp_path, f"http://127.0.0.1:{receiver.port}/hook")
        ticks = _replay(cfg, tmp_path / "a.db")
        queued = [n for k in ticks for n in k.notifications]
        assert any(a.labels.get("category") == "system_fault" for n in queued for a in n.alerts)
        assert receiver.payloads == [], "replay without send delivers nothing"
        _replay(cfg, tmp_path / "b.db", send=True)
        alerts = [a for p in receiver.payloads for a in p.get("alerts", [])]
        assert any(a["labels"].get("category") == "system_fault" and a["status"] == "firing"
                   for a in alerts), json.dumps(receiver.payloads, ensure_ascii=False)[:500]
    finally:
        receiver.close()


def test_cli_replay_jsonl_has_the_fields_and_the_muting(tmp_path: Path) -> None:
    _orders(f"sqlite:///{tmp_path / 'orders.db'}")
    state = tmp_path / "cli-state.db"
    store = StateStore.open(f"sqlite:///{state}")
    with store.engine.begin() as conn:
        add_silence(conn, Silence("s2", (Matcher("alertname", "=", "cancel_spike"),),
                                  T0 - timedelta(hours=1), T0 + timedelta(hours=2)))
    store.close()
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(json.dumps(_config(tmp_path).model_dump(mode="json",
                                                                 exclude_defaults=True)),
                        encoding="utf-8")
    res = CliRunner().invoke(main, [
        "replay", "-c", str(cfg_path), "--since", "2024-05-06T10:00", "--until",
        "2024-05-06T10:25", "--warmup", "8h", "--state", f"sqlite:///{state}",
        "--format", "jsonl", "--quiet"])
    assert res.exit_code == 0, res.output
    objs = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    firing = [o for o in objs if o.get("type") == "transition" and o["status"] == "firing"
              and o["category"] == "system_fault"]
    assert firing, objs
    o = firing[0]
    for k in ("status", "at", "category", "dimensions", "observed", "expected",
              "contributors"):
        assert k in o
    assert o["muted"] == "silence:s2"
