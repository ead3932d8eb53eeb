"""Shared by the e2e and fault tests: a platform writing orders, a daemon process, its metrics.

The platform remembers the ground truth (every distinct (order id, status) it cancelled
and the reason), so a test can compare what the watchdog counted with what happened.
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

import sqlalchemy as sa

from tests.e2e.helpers import metric_samples
from watchdog.demo_db import create_order_db, orders_table
from watchdog.rules import load_rules

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUSES = ["已撤单", "审核不通过"]
REASONS = [
    "一证五号超限", "客户主动取消", "号码资源不足，请更换号码", "BSS系统异常，请稍后重试",
    "身份证号码与姓名不匹配", "重复下单", "超时未激活", "推送测试", None, "",
    "收货地址不详，无法配送", "签名验证失败", "客户拒收",
]
ID_NUMBER = "110101199003071234"
PHONE = "13812345678"


def local_now() -> datetime:
    return datetime.now(SHANGHAI).replace(tzinfo=None)


class Platform:
    """Writes order rows into `table` and remembers the ground truth."""

    def __init__(self, url: str, table: str, seed: int = 7) -> None:
        self.engine = create_order_db(url, table=table)
        self.table = orders_table(sa.MetaData(), table)
        self.rng = random.Random(seed)
        self.truth: dict[tuple[str, str], str | None] = {}
        self.cancelled_ids: list[int] = []
        self.next_id = 1
        self.lock = threading.Lock()

    def round(self, size: int = 20) -> None:
        """One transaction: new orders (60% cancelled), a few late, callbacks repeated."""
        with self.lock:
            now = local_now()
            rows, truth = [], {}
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
                stamp = now - timedelta(minutes=3) if self.rng.random() < 0.1 else now
                rows.append(self.row(oid, status, remark, stamp))
                if cancelled:
                    truth[(str(oid), status)] = reason
            repeats = self.rng.sample(self.cancelled_ids, min(5, len(self.cancelled_ids)))
            with self.engine.begin() as conn:
                conn.execute(self.table.insert(), rows)
                for oid in repeats:  # upstream callbacks repeat with a fresh timestamp
                    conn.execute(self.table.update().where(self.table.c.id == oid)
                                 .values(updated_at=local_now()))
            # Only what committed is truth: a failed transaction raised above.
            self.truth.update(truth)
            self.cancelled_ids.extend(int(k[0]) for k in truth)

    def burst(self, n: int, carrier: str, reason: str) -> None:
        """`n` cancellations of one carrier with one reason, committed now (an incident)."""
        now = local_now()
        with self.lock:
            first, self.next_id = self.next_id, self.next_id + n
        self.insert([self.row(oid, "已撤单", reason, now, carrier=carrier)
                     for oid in range(first, first + n)])

    def row(self, oid: int, status: str, remark: str | bytes | None, stamp: datetime,
            **extra: object) -> dict[str, object]:
        values: dict[str, object] = {
            "id": oid, "order_no": f"NO{oid:08d}", "status": status, "remark": remark,
            "carrier": self.rng.choice(["中国联通", "中国电信", "中国移动"]),
            "upstream": "up1", "product": "p1", "distributor_id": "d1",
            "province": "广东", "city": "深圳", "stage": "审核", "channel": "h5",
            "customer_name": "张三", "id_number": ID_NUMBER, "phone": PHONE,
            "address": "广东省深圳市南山区科技园1号",
            "created_at": stamp - timedelta(hours=1), "updated_at": stamp,
        }
        values.update(extra)
        return values

    def insert(self, rows: list[dict[str, object]], truth: bool = True) -> None:
        with self.lock, self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        if truth:
            for r in rows:
                if r["status"] in STATUSES:
                    self.truth[(str(r["id"]), str(r["status"]))] = _text(r["remark"])

    def expected(self) -> Counter[str]:
        rules = load_rules()
        return Counter(rules.classify(r).category for r in self.truth.values())

    def drop(self) -> None:
        self.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()


def _text(value: object) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value  # type: ignore[return-value]


class Writer:
    """A thread calling `platform.round()` until stopped.

    `with writer.paused():` waits for the round in progress to commit and holds the next
    one, so the ground truth is exact while a test breaks the database.
    """

    def __init__(self, platform: Platform, every: float = 0.05) -> None:
        self.platform = platform
        self.every = every
        self.stop = threading.Event()
        self.gate = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.gate:
                self.platform.round()
            self.stop.wait(self.every)

    def paused(self) -> threading.Lock:
        return self.gate

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def write_config(path: Path, orders_url: str, state_url: str, port: int, *,
                 table: str = "orders", extra_source: str = "", interval: str = "0.2s",
                 batch_size: int = 7, max_batches_per_poll: int = 3,
                 level: str = "info") -> Path:
    source_table = f"  table: {table}\n" if "query:" not in extra_source else ""
    path.write_text(f"""
source:
  url: {orders_url}
{source_table}  cancelled_statuses: [已撤单, 审核不通过]
  dimensions:
    carrier: {{column: carrier}}
  batch_size: {batch_size}
  max_batches_per_poll: {max_batches_per_poll}
  overlap: 10m
{extra_source}
state:
  url: {state_url}
poll:
  interval: {interval}
metrics:
  listen: 127.0.0.1:{port}
logging:
  level: {level}
  format: json
""", encoding="utf-8")
    return path


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "watchdog", "run", "-c", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_daemon(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]


def counted(port: int) -> Counter[str]:
    totals: Counter[str] = Counter()
    for name, labels, value in metric_samples(port):
        if name == "watchdog_cancellations_total":
            totals[labels["category"]] += int(value)
        elif name == "watchdog_excluded_cancellations_total":
            totals["exclude"] += int(value)
    return +totals


def metric(port: int, name: str, **labels: str) -> float | None:
    for n, lab, value in metric_samples(port):
        if n == name and all(lab.get(k) == v for k, v in labels.items()):
            return value
    return None
