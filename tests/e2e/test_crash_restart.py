"""The daemon as a process: SIGKILL it mid-stream, restart it, and the counts are exact.

A writer thread plays the platform: new orders, cancellations with JSON-timeline remarks,
upstream callbacks that repeat a cancellation later, rows committed late with an older
timestamp, test orders. The daemon is killed twice at arbitrary points. At the end, the
counts on /metrics and in the state database equal the ground truth.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import free_port, metric_samples, wait_for
from watchdog.demo_db import create_order_db
from watchdog.rules import load_rules
from watchdog.store import events_table, metadata

pytestmark = pytest.mark.slow

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUSES = ["已撤单", "审核不通过"]
REASONS = [
    "一证五号超限", "客户主动取消", "号码资源不足，请更换号码", "BSS系统异常，请稍后重试",
    "身份证号码与姓名不匹配", "重复下单", "超时未激活", "推送测试", None, "",
    "收货地址不详，无法配送", "签名验证失败", "客户拒收",
]


def local_now() -> datetime:
    return datetime.now(SHANGHAI).replace(tzinfo=None)


class Platform:
    """Writes order rows and remembers the ground truth: distinct (order id, status)."""

    def __init__(self, engine: sa.Engine, seed: int = 7) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.truth: dict[tuple[str, str], str | None] = {}
        self.cancelled_ids: list[int] = []
        self.next_id = 1
        self.table = sa.Table("orders", sa.MetaData(), autoload_with=engine)

    def round(self, size: int = 25) -> None:
        now = local_now()
        rows = []
        for _ in range(size):
            oid, self.next_id = self.next_id, self.next_id + 1
            cancelled = self.rng.random() < 0.6
            status = self.rng.choice(STATUSES) if cancelled else "已激活"
            reason = self.rng.choice(REASONS)
            remark: str | None = reason
            if cancelled and reason and self.rng.random() < 0.4:
                remark = json.dumps([
                    {"time": f"{now - timedelta(minutes=30):%Y-%m-%d %H:%M:%S}",
                     "content": "已提交运营商"},
                    {"time": f"{now:%Y-%m-%d %H:%M:%S}", "content": reason},
                ], ensure_ascii=False)
            # A few rows are committed late: their timestamp is minutes in the past.
            stamp = now - timedelta(minutes=3) if self.rng.random() < 0.1 else now
            rows.append({**self._blank(oid, now), "status": status, "remark": remark,
                         "carrier": self.rng.choice(["中国联通", "中国电信", "中国移动"]),
                         "updated_at": stamp})
            if cancelled:
                self.truth[(str(oid), status)] = reason
                self.cancelled_ids.append(oid)
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
            # Upstream callbacks repeat earlier cancellations with a fresh timestamp.
            for oid in self.rng.sample(self.cancelled_ids, min(5, len(self.cancelled_ids))):
                conn.execute(self.table.update().where(self.table.c.id == oid)
                             .values(updated_at=local_now()))


    def burst(self, n: int, carrier: str, reason: str) -> None:
        """`n` cancellations of one carrier with one reason, committed now."""
        now = local_now()
        rows = []
        for _ in range(n):
            oid, self.next_id = self.next_id, self.next_id + 1
            rows.append({**self._blank(oid, now), "status": "已撤单", "remark": reason,
                         "carrier": carrier})
            self.truth[(str(oid), "已撤单")] = reason
            self.cancelled_ids.append(oid)
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    @staticmethod
    def _blank(oid: int, now: datetime) -> dict[str, object]:
        return {
            "id": oid, "order_no": f"NO{oid:08d}", "upstream": "up1", "product": "p1",
            "distributor_id": "d1", "province": "广东", "city": "深圳", "stage": "审核",
            "channel": "h5", "customer_name": "张三", "id_number": "110101199003071234",
            "phone": "13812345678", "address": "广东省深圳市南山区科技园1号",
            "created_at": now - timedelta(hours=1), "updated_at": now,
        }


def write_config(tmp_path: Path, orders_url: str, state_url: str, port: int) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""
source:
  url: {orders_url}
  table: orders
  cancelled_statuses: [已撤单, 审核不通过]
  dimensions:
    carrier: {{column: carrier}}
  batch_size: 7
  max_batches_per_poll: 3
  overlap: 10m
state:
  url: {state_url}
poll:
  interval: 0.2s
metrics:
  listen: 127.0.0.1:{port}
logging:
  format: json
""", encoding="utf-8")
    return cfg


def start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def counted(port: int) -> Counter[str]:
    totals: Counter[str] = Counter()
    for name, labels, value in metric_samples(port):
        if name == "watchdog_cancellations_total":
            totals[labels["category"]] += int(value)
        elif name == "watchdog_excluded_cancellations_total":
            totals["exclude"] += int(value)
    return totals


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'state.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS orders"))
    metadata.drop_all(engine)
    yield url, url
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS orders"))
    metadata.drop_all(engine)
    engine.dispose()


def test_sigkill_mid_stream_then_restart_counts_exactly_once(tmp_path, databases):
    orders_url, state_url = databases
    engine = create_order_db(orders_url)
    platform = Platform(engine)
    port = free_port()
    cfg = write_config(tmp_path, orders_url, state_url, port)
    log = tmp_path / "daemon.log"
    rules = load_rules()

    proc = start(cfg, log)
    stop_writing = threading.Event()

    def write_stream() -> None:
        while not stop_writing.is_set():
            platform.round()
            stop_writing.wait(0.05)

    writer = threading.Thread(target=write_stream)
    writer.start()
    try:
        for _ in range(2):  # kill twice, each time once the daemon has counted something
            wait_for(lambda: sum(counted(port).values()) > 0, 60, "daemon counting", log)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start(cfg, log)
        stop_writing.set()
        writer.join(30)

        expected = Counter(rules.classify(r).category for r in platform.truth.values())
        wait_for(lambda: counted(port) == expected, 90, "counts to equal the ground truth", log)
    finally:
        stop_writing.set()
        writer.join(30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]

    state = sa.create_engine(state_url)
    with state.connect() as conn:
        rows = conn.execute(sa.select(events_table.c.order_id, events_table.c.status)).all()
    state.dispose()
    assert len(rows) == len(set(rows)) == len(platform.truth)
    assert {(r.order_id, r.status) for r in rows} == set(platform.truth)
    assert "110101199003071234" not in log.read_text(encoding="utf-8", errors="replace")
