"""One poll end to end: real order database -> real rules -> real state database.

Order tables on SQLite, PostgreSQL and MariaDB; state on SQLite (the state store has its
own tests on every dialect).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from tests.integration.orderdb import insert, orders_table, row
from watchdog.config import Config
from watchdog.pipeline import PollFailed
from watchdog.rules import load_rules
from watchdog.wiring import Parts, assemble

T0 = datetime(2026, 11, 25, 10, 0, 0)  # naive Asia/Shanghai
NOW = datetime(2026, 11, 25, 2, 30, 0, tzinfo=UTC)  # 10:30 in Shanghai


@pytest.fixture
def orders(db_url: str, unique_name: str) -> Iterator[tuple[sa.Engine, sa.Table]]:
    engine = sa.create_engine(db_url)
    table = orders_table(unique_name)
    table.metadata.create_all(engine)
    yield engine, table
    table.metadata.drop_all(engine)
    engine.dispose()


def make_config(db_url: str, table: str, tmp_path, **source: Any) -> Config:
    return Config.model_validate({
        "source": {
            "url": db_url, "table": table, "cancelled_statuses": ["已撤单", "审核不通过"],
            "dimensions": {"carrier": {"column": "carrier", "top_k": 2},
                           "province": {"column": "province", "label": False}},
            "batch_size": 10, "max_batches_per_poll": 3, **source,
        },
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    })


def build(cfg: Config) -> Parts:
    parts = assemble(cfg, CollectorRegistry(), RULES)
    parts.take_lead(NOW)
    return parts


RULES = load_rules()


def totals(parts: Parts) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in parts.registry.collect():
        for s in family.samples:
            if s.name == "watchdog_cancellations_total":
                out[s.labels["category"]] = out.get(s.labels["category"], 0) + s.value
    return {k: v for k, v in out.items() if v}


def poll_until_caught_up(parts: Parts, now: datetime = NOW) -> int:
    new = 0
    for _ in range(50):
        report = parts.pipeline.poll(now)
        new += report.new
        if report.caught_up:
            return new
    raise AssertionError("never caught up")


REASONS = ["一证五号超限", "客户主动取消", "BSS系统异常", "重复下单", "号码资源不足"]


def test_backlog_is_counted_exactly_once_across_polls_and_pages(orders, db_url, tmp_path):
    engine, table = orders
    rows = [row(i, T0 + timedelta(seconds=i // 3), remark=REASONS[i % 5],
                carrier=["中国联通", "中国电信", "中国移动"][i % 3],
                status="已撤单" if i % 4 else "已激活") for i in range(1, 101)]
    insert(engine, table, rows)
    parts = build(make_config(db_url, table.name, tmp_path))
    try:
        first = parts.pipeline.poll(NOW)
        assert (first.rows_read, first.caught_up, first.pages) == (30, False, 3)
        assert poll_until_caught_up(parts) == 75 - 30
        assert parts.store.count_events() == 75
        assert sum(totals(parts).values()) == 75
        assert totals(parts)["compliance"] == 15
        # Top-K: two carriers get a label, the third is "other".
        carriers = {s.labels["carrier"] for f in parts.registry.collect() for s in f.samples
                    if s.name == "watchdog_cancellations_total" and s.value}
        assert carriers == {"中国电信", "中国移动", "other"}
    finally:
        parts.close()


def test_callbacks_overlap_and_late_commits(orders, db_url, tmp_path):
    engine, table = orders
    recent = T0 + timedelta(minutes=25)  # five minutes before NOW, inside the 10 min overlap
    insert(engine, table, [row(i, recent, remark="一证五号超限") for i in range(1, 6)])
    parts = build(make_config(db_url, table.name, tmp_path))
    try:
        assert poll_until_caught_up(parts) == 5
        # The upstream repeats three callbacks; a row is committed late: its timestamp is
        # before the cursor, but inside the overlap.
        with engine.begin() as conn:
            conn.execute(table.update().where(table.c.id <= 3)
                         .values(updated_at=recent + timedelta(minutes=2)))
        insert(engine, table, [row(6, recent - timedelta(minutes=3), remark="客户主动取消")])
        report = parts.pipeline.poll(NOW)
        assert (report.new, report.by_category) == (1, {"customer_initiated": 1})
        assert report.duplicates >= 3
        # A different negative status of the same order is a new cancellation.
        with engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == 1)
                         .values(status="审核不通过", updated_at=recent + timedelta(minutes=3)))
        assert parts.pipeline.poll(NOW).new == 1
        assert parts.store.count_events() == 7
    finally:
        parts.close()


def test_restart_continues_and_metrics_start_from_committed_totals(orders, db_url, tmp_path):
    engine, table = orders
    insert(engine, table, [row(i, T0, remark="BSS系统异常") for i in range(1, 26)])
    cfg = make_config(db_url, table.name, tmp_path)
    parts = build(cfg)
    parts.pipeline.poll(NOW)  # 30-row budget, 25 rows: caught up
    parts.close()
    insert(engine, table, [row(i, T0 + timedelta(seconds=1), remark="BSS系统异常")
                           for i in range(26, 31)])
    again = build(cfg)
    try:
        assert totals(again) == {"system_fault": 25}
        assert poll_until_caught_up(again) == 5
        assert totals(again) == {"system_fault": 30}
    finally:
        again.close()


def test_json_timeline_event_time_and_broken_reasons(orders, db_url, tmp_path):
    engine, table = orders
    timeline = json.dumps([{"time": "2026-11-25 09:00:00", "content": "已提交"},
                           {"time": "2026-11-25 09:30:00", "content": "号码资源不足"}],
                          ensure_ascii=False)
    insert(engine, table, [row(1, T0, remark=timeline), row(2, T0, remark=None),
                           row(3, T0, remark="   "), row(4, T0, remark="x" * 200_000)])
    parts = build(make_config(db_url, table.name, tmp_path))
    try:
        report = parts.pipeline.poll(NOW)
        assert report.by_category == {"supply_shortage": 1, "unknown": 3}
        hits = {s.labels["rule"]: s.value for f in parts.registry.collect()
                for s in f.samples if s.name == "watchdog_rule_hits_total"}
        assert hits["unknown.no_match"] == 3 and "" not in hits
        (event,) = [e for e in parts.store.events(NOW - timedelta(days=1), NOW)
                    if e.order_id == "1"]
        assert event.event_time == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    finally:
        parts.close()


def test_unreachable_source_fails_the_poll_and_recovers(orders, db_url, tmp_path):
    engine, table = orders
    insert(engine, table, [row(1, T0, remark="重复下单")])
    bad = make_config(db_url, "no_such_table_here", tmp_path)
    parts = build(bad)
    try:
        with pytest.raises(PollFailed) as info:
            parts.pipeline.poll(NOW)
        assert info.value.stage == "source"
        assert parts.registry.get_sample_value("watchdog_source_up") == 0
        assert parts.registry.get_sample_value("watchdog_poll_errors_total",
                                               {"stage": "source"}) == 1
    finally:
        parts.close()
    good = build(make_config(db_url, table.name, tmp_path))
    try:
        assert good.pipeline.poll(NOW).by_category == {"duplicate": 1}
        assert good.registry.get_sample_value("watchdog_source_up") == 1
    finally:
        good.close()


def test_a_stop_request_ends_the_poll_after_the_page_in_progress(orders, db_url, tmp_path):
    engine, table = orders
    # 45 cancellations: 5 pages of 10, more than one poll's budget of 3 pages.
    insert(engine, table, [row(i, T0 + timedelta(seconds=i), remark="BSS系统异常")
                           for i in range(1, 46)])
    cfg = make_config(db_url, table.name, tmp_path, count_orders=True,
                      columns={"created_at": "created_at"})
    parts = build(cfg)
    asked: list[int] = []

    def stop_after_first_page() -> bool:
        asked.append(parts.store.count_events())
        return True

    try:
        report = parts.pipeline.poll(NOW, should_stop=stop_after_first_page)
        # One page read and committed with its cursor, then nothing else: no second
        # page, no re-read, no order count.
        assert (report.rows_read, report.pages, report.new, report.caught_up) == (
            10, 1, 10, False)
        assert report.orders_since is None
        assert asked and set(asked) == {10}
        assert parts.store.count_events() == 10
        assert parts.store.load_cursor() == report.cursor
    finally:
        parts.close()
    # The next start continues from the committed cursor: nothing lost, nothing twice.
    again = build(cfg)
    try:
        assert poll_until_caught_up(again) == 35
        assert again.store.count_events() == 45
        assert totals(again) == {"system_fault": 45}
    finally:
        again.close()


def test_without_a_stop_request_the_poll_uses_its_whole_budget(orders, db_url, tmp_path):
    engine, table = orders
    insert(engine, table, [row(i, T0 + timedelta(seconds=i), remark="BSS系统异常")
                           for i in range(1, 46)])
    parts = build(make_config(db_url, table.name, tmp_path))
    try:
        report = parts.pipeline.poll(NOW, should_stop=lambda: False)
        assert (report.rows_read, report.pages, report.caught_up) == (30, 3, False)
    finally:
        parts.close()


def by_dimension(parts: Parts, family: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for k, v in sorted(s.labels.items())): s.value
            for f in parts.registry.collect() for s in f.samples if s.name == family}


def test_alone_dimensions_count_on_their_own_family_exactly_across_a_restart(
        orders, db_url, tmp_path):
    engine, table = orders
    products = ["冰激凌", "大王卡", "宝藏卡", None]
    start = T0 + timedelta(minutes=20)  # inside the order count's first window (overlap)
    rows = [row(i, start + timedelta(seconds=i), remark="BSS系统异常", carrier="中国联通",
                product=products[i % 4], status="已撤单" if i % 5 else "已激活")
            for i in range(1, 41)]
    insert(engine, table, rows)
    cfg = make_config(db_url, table.name, tmp_path, count_orders=True,
                      columns={"created_at": "created_at"},
                      dimensions={"carrier": {"column": "carrier"},
                                  "product": {"column": "product", "top_k": 2,
                                              "alone": True}})
    # The ground truth: the first two products counted keep their name, the third is
    # "other", no product is "" (so the values add up to the total).
    admitted: list[str] = []
    expected: dict[tuple[str, ...], float] = {}
    for r in rows:
        if r["status"] != "已撤单":
            continue
        value = r["product"] or ""
        if value and value not in admitted:
            if len(admitted) < 2:
                admitted.append(value)
            else:
                value = "other"
        key = ("system_fault", "product", value)
        expected[key] = expected.get(key, 0) + 1
    expected_orders: dict[tuple[str, ...], float] = {}
    for r in rows:  # counted after the cancellations, with the same admitted products
        value = r["product"] if r["product"] in admitted else ("other" if r["product"] else "")
        expected_orders[("product", value)] = expected_orders.get(("product", value), 0) + 1

    parts = build(cfg)
    try:
        assert poll_until_caught_up(parts) == 32
        assert by_dimension(parts, "watchdog_cancellations_by_dimension_total") == expected
        assert sum(expected.values()) == sum(totals(parts).values()) == 32
        assert by_dimension(parts, "watchdog_orders_by_dimension_total") == expected_orders
        # product is not a label of the main family, which keeps one series per carrier
        main = [s.labels for f in parts.registry.collect() for s in f.samples
                if s.name == "watchdog_cancellations_total" and s.value]
        assert main == [{"category": "system_fault", "carrier": "中国联通"}]
    finally:
        parts.close()

    # After a restart: the same totals from the state database, the same admitted
    # products (a fourth product is "other", an admitted one keeps its name).
    more = [row(i, start + timedelta(minutes=1, seconds=i), remark="BSS系统异常",
                carrier="中国联通", product=p)
            for i, p in zip(range(41, 47), ["新品卡", admitted[0], "新品卡", admitted[1],
                                            admitted[0], None], strict=True)]
    insert(engine, table, more)
    again = build(cfg)
    try:
        assert by_dimension(again, "watchdog_cancellations_by_dimension_total") == expected
        assert by_dimension(again, "watchdog_orders_by_dimension_total") == expected_orders
        assert poll_until_caught_up(again) == 6
        for value, n in (("other", 2), (admitted[0], 2), (admitted[1], 1), ("", 1)):
            key = ("system_fault", "product", value)
            expected[key] = expected.get(key, 0) + n
        assert by_dimension(again, "watchdog_cancellations_by_dimension_total") == expected
        assert again.store.admitted_labels()["product"] == set(admitted)
    finally:
        again.close()


def orders_counted(parts: Parts) -> float:
    return parts.registry.get_sample_value("watchdog_orders_total",
                                           {"carrier": "中国联通"}) or 0


def test_orders_committed_late_are_counted_once_across_polls_a_quiet_spell_and_a_restart(
        orders, db_url, tmp_path):
    """New orders are counted per minute of creation over the overlap on every poll,
    crediting only the growth: an order that turns visible after its minute was counted
    is still counted, and once (ratios need every order, not only the punctual ones)."""
    engine, table = orders
    oid = iter(range(1, 1000))

    def add(n: int, created: datetime) -> None:
        insert(engine, table, [row(next(oid), created, "已激活", carrier="中国联通")
                               for _ in range(n)])

    cfg = make_config(db_url, table.name, tmp_path, count_orders=True,
                      columns={"created_at": "created_at"})
    second = timedelta(seconds=1)
    parts = build(cfg)
    try:
        add(5, T0 + timedelta(minutes=25))  # 10:25 Shanghai; NOW is 10:30
        report = parts.pipeline.poll(NOW)
        assert orders_counted(parts) == 5
        assert {(oc.minute, oc.count) for oc in report.orders} == {
            (NOW - timedelta(minutes=5), 5)}
        # Late: three more in the minute already counted, two in a new one.
        add(3, T0 + timedelta(minutes=25, seconds=30))
        add(2, T0 + timedelta(minutes=29))
        report = parts.pipeline.poll(NOW + 30 * second)
        assert orders_counted(parts) == 10
        assert sorted((oc.minute, oc.count) for oc in report.orders) == [
            (NOW - timedelta(minutes=5), 3), (NOW - timedelta(minutes=1), 2)]
        assert parts.pipeline.poll(NOW + 60 * second).orders == ()
        assert orders_counted(parts) == 10
    finally:
        parts.close()

    again = build(cfg)  # a restart: what was credited per minute is in the state DB
    try:
        assert orders_counted(again) == 10
        add(1, T0 + timedelta(minutes=26))
        again.pipeline.poll(NOW + 90 * second)
        assert orders_counted(again) == 11
        # A quiet spell longer than the overlap leaves no minute behind; an order
        # committed late after it still counts once.
        quiet = NOW + timedelta(minutes=20)
        assert again.pipeline.poll(quiet).orders == ()
        add(1, T0 + timedelta(minutes=49))  # 10:49, a minute before `quiet`
        again.pipeline.poll(quiet + 30 * second)
        again.pipeline.poll(quiet + 60 * second)
        assert orders_counted(again) == 12
    finally:
        again.close()


def test_orders_counted_by_distributor_are_credited_once_apart_from_the_labels(
        orders, db_url, tmp_path):
    """`count_orders_by` counts the same orders again per distributor: credited once
    across late commits and a restart like the label counts, kept apart from them (the
    same minute and orders, another grouping), and never added to the order metrics."""
    engine, table = orders
    oid = iter(range(1, 1000))

    def add(n: int, created: datetime, distributor: str) -> None:
        insert(engine, table, [row(next(oid), created, "已激活", carrier="中国联通",
                                   distributor_id=distributor) for _ in range(n)])

    def by(report) -> list[tuple[datetime, str, int]]:
        return sorted((oc.minute, oc.dimensions["distributor"], oc.count)
                      for oc in report.orders if oc.count_by)

    cfg = make_config(db_url, table.name, tmp_path, count_orders=True,
                      columns={"created_at": "created_at"},
                      dimensions={"carrier": {"column": "carrier", "top_k": 2},
                                  "distributor": {"column": "distributor_id",
                                                  "label": False}},
                      count_orders_by=["distributor"])
    m25 = NOW - timedelta(minutes=5)
    parts = build(cfg)
    try:
        add(4, T0 + timedelta(minutes=25), "D1")
        add(1, T0 + timedelta(minutes=25, seconds=5), "D2")
        report = parts.pipeline.poll(NOW)
        assert by(report) == [(m25, "D1", 4), (m25, "D2", 1)]
        assert [(oc.minute, oc.count) for oc in report.orders if not oc.count_by] == [
            (m25, 5)]
        assert orders_counted(parts) == 5  # not 10
        add(2, T0 + timedelta(minutes=25, seconds=30), "D1")  # late, in a counted minute
        report = parts.pipeline.poll(NOW + timedelta(seconds=30))
        assert by(report) == [(m25, "D1", 2)]
        assert orders_counted(parts) == 7
    finally:
        parts.close()
    again = build(cfg)  # a restart: nothing is credited twice
    try:
        add(1, T0 + timedelta(minutes=26), "D2")
        report = again.pipeline.poll(NOW + timedelta(seconds=60))
        assert by(report) == [(m25 + timedelta(minutes=1), "D2", 1)]
        assert orders_counted(again) == 8
    finally:
        again.close()


def test_rows_without_a_readable_change_time_are_skipped_counted_and_survived(tmp_path):
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(url)
    table = orders_table("orders")
    table.metadata.create_all(engine)
    insert(engine, table, [row(1, T0, remark="BSS系统异常")])
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO orders (id, status, remark, created_at, updated_at) VALUES "
            "(2, '已撤单', 'BSS系统异常', '2026-11-25 10:00:01', 'not a time')")
    insert(engine, table, [row(3, T0 + timedelta(seconds=2), remark="BSS系统异常")])
    parts = build(make_config(url, "orders", tmp_path))
    try:
        report = parts.pipeline.poll(NOW)
        assert report.new == 2 and totals(parts) == {"system_fault": 2}
        assert parts.registry.get_sample_value("watchdog_source_rows_skipped_total") >= 1
    finally:
        parts.close()
        engine.dispose()
