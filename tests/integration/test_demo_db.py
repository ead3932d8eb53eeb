"""The demo order database: schema on every dialect, bulk writes, the paced feeder."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from watchdog.demo_db import DemoFeeder, create_order_db, orders_table, write_all
from watchdog.simulate import CarrierOutage, OrderWrite, generate

START = datetime(2026, 11, 24, 10, 0)


def _final_rows(writes: list[OrderWrite]) -> dict[int, tuple]:
    """What each row must look like after the writes: the last write of each id wins."""
    final: dict[int, tuple] = {}
    for w in writes:
        final[w.id] = (w.status, w.remark, w.stage, w.updated_at)
    return final


def _table_rows(engine: sa.Engine, table: str = "orders") -> dict[int, tuple]:
    t = orders_table(sa.MetaData(), table)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.id, t.c.status, t.c.remark, t.c.stage, t.c.updated_at))
        return {r.id: (r.status, r.remark, r.stage, r.updated_at) for r in rows}


def test_write_all_leaves_each_row_as_its_last_write(db_url, unique_name) -> None:
    engine = create_order_db(db_url, table=unique_name)
    try:
        writes = list(generate(START, START + timedelta(hours=1), seed=1))
        assert write_all(engine, writes, table=unique_name, batch_size=700) == len(writes)
        assert _table_rows(engine, unique_name) == _final_rows(writes)
        t = orders_table(sa.MetaData(), unique_name)
        with engine.connect() as conn:
            one = conn.execute(sa.select(t).where(t.c.id == writes[0].id)).mappings().one()
        assert dict(one) | {"status": None, "remark": None, "stage": None, "updated_at": None} == (
            writes[0].values() | {"status": None, "remark": None, "stage": None,
                                  "updated_at": None})
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes(unique_name)}
        assert {f"ix_{unique_name}_updated_at_id", f"ix_{unique_name}_created_at"} <= indexes
    finally:
        orders_table(sa.MetaData(), unique_name).drop(engine, checkfirst=True)
        engine.dispose()


def test_a_lead_in_writes_the_rows_of_orders_created_before_it_whole(db_url, unique_name
                                                                     ) -> None:
    """A stream generated with a lead-in starts with updates of orders created before
    it (their cancellations, the nightly timeout sweeps): with `adopt_before` each such order's
    first write inserts its whole row, and nothing written is lost."""
    engine = create_order_db(db_url, table=unique_name)
    try:
        lo = START - timedelta(hours=1)
        writes = list(generate(lo, START, seed=6, lead_in=timedelta(hours=12)))
        inserted = {w.id for w in writes if w.insert}
        adopted = {w.id for w in writes if w.id not in inserted}
        assert adopted, "the lead-in's orders are still being written"
        assert write_all(engine, writes, table=unique_name, batch_size=700,
                         adopt_before=lo) == len(writes)
        assert _table_rows(engine, unique_name) == _final_rows(writes)
        t = orders_table(sa.MetaData(), unique_name)
        with engine.connect() as conn:
            created = conn.execute(sa.select(sa.func.min(t.c.created_at))
                                   .where(t.c.id.in_(adopted))).scalar()
        assert created < lo
    finally:
        orders_table(sa.MetaData(), unique_name).drop(engine, checkfirst=True)
        engine.dispose()


def test_create_order_db_is_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    create_order_db(url).dispose()
    engine = create_order_db(url)
    assert "orders" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_feeder_backfills_history_then_pumps_what_is_due(tmp_path) -> None:
    engine = create_order_db(f"sqlite:///{tmp_path / 'demo.db'}")
    clock = FakeClock()
    feeder = DemoFeeder(engine, speed=60, seed=2, start=START, history=timedelta(hours=1),
                        clock=clock)
    expected = list(generate(START - timedelta(hours=1), START + timedelta(minutes=30), seed=2))
    history = [w for w in expected if w.commit_at < START]

    assert feeder.backfill() == len(history)
    assert _table_rows(engine) == _final_rows(history)
    assert feeder.sim_now() == START

    written = feeder.pump()  # wall0 is taken now: nothing new is due yet beyond START
    for _ in range(30):  # thirty wall seconds = thirty simulated minutes
        clock.now += 1
        written += feeder.pump()
    assert feeder.sim_now() == START + timedelta(minutes=30)
    due = [w for w in expected if w.commit_at <= START + timedelta(minutes=30)]
    assert len(history) + written == len(due)
    assert _table_rows(engine) == _final_rows(due)

    stats = feeder.stats
    assert stats.inserts == sum(w.insert for w in due)
    assert stats.inserts + stats.updates == len(due)
    assert stats.cancellations == sum(w.cancelled for w in due)
    assert sum(stats.truth.values()) == sum(w.cancelled and not w.repeat for w in due)
    with engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM orders").scalar()
    assert count == stats.inserts


def test_feeder_injects_incidents(tmp_path) -> None:
    engine = create_order_db(f"sqlite:///{tmp_path / 'demo.db'}")
    outage = CarrierOutage("中国联通", START - timedelta(minutes=20), timedelta(minutes=20))
    feeder = DemoFeeder(engine, seed=3, start=START, history=timedelta(minutes=30),
                        incidents=[outage])
    feeder.backfill()
    assert feeder.stats.truth["system_fault"] > 200


def test_feeder_runs_in_a_thread_until_stopped(tmp_path) -> None:
    engine = create_order_db(f"sqlite:///{tmp_path / 'demo.db'}")
    # one simulated hour per wall second: a few hundred writes per wall second
    feeder = DemoFeeder(engine, speed=3600, seed=4, start=START)
    stop = threading.Event()
    thread = threading.Thread(target=feeder.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for _ in range(600):  # bounded wait for progress, not a timing assumption
            if feeder.stats.inserts >= 200:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    stats = feeder.stats
    assert stats.inserts >= 200
    rows = _table_rows(engine)
    assert len(rows) == stats.inserts
    expected = list(itertools.islice(generate(START, START + timedelta(days=1), seed=4),
                                     stats.inserts + stats.updates))
    assert rows == _final_rows(expected)
    statuses = {r[0] for r in rows.values()}
    assert statuses <= {"已提交", "待审核", "已提运营商", "开卡中", "已发货", "已激活",
                        "已撤单", "审核不通过", "开卡失败"}


def test_feeder_rejects_a_non_positive_speed(tmp_path) -> None:
    engine = create_order_db(f"sqlite:///{tmp_path / 'demo.db'}")
    with pytest.raises(ValueError, match="speed"):
        DemoFeeder(engine, speed=0)
