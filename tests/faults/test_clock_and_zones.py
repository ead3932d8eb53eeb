"""Clocks and time zones: naive local DATETIMEs on a UTC server, timestamptz, rows from the
future, and more rows on one timestamp than a page holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.faults.inprocess import committed, parts_for, poll_until_caught_up
from tests.orderstream import Platform, local_now
from watchdog.model import Cursor
from watchdog.state_schema import events_table

SHANGHAI = ZoneInfo("Asia/Shanghai")


def stored_events(parts) -> dict[str, datetime]:
    with parts.store.engine.connect() as conn:
        rows = conn.execute(sa.select(events_table.c.order_id, events_table.c.event_time))
        return {r.order_id: r.event_time.replace(tzinfo=UTC) for r in rows}


def test_naive_shanghai_datetime_on_a_utc_mariadb(tmp_path, mysql_url, unique_name):
    platform = Platform(mysql_url, unique_name)
    try:
        with platform.engine.connect() as conn:
            # The server runs in UTC (or whatever it likes): the column has no zone.
            server_zone = conn.execute(sa.text("SELECT @@session.time_zone")).scalar()
        stamp = local_now().replace(microsecond=0) - timedelta(minutes=5)
        platform.insert([platform.row(1, "已撤单", "客户主动取消", stamp),
                         platform.row(2, "审核不通过", "一证五号超限", stamp)])
        parts = parts_for(tmp_path, mysql_url, unique_name)
        try:
            poll_until_caught_up(parts)
            expected = stamp.replace(tzinfo=SHANGHAI).astimezone(UTC)
            assert stored_events(parts) == {"1": expected, "2": expected}, server_zone
            assert parts.store.load_cursor() == Cursor(expected, 2)
        finally:
            parts.close()
    finally:
        platform.drop()


def test_timestamptz_on_postgres_is_an_instant(tmp_path, postgres_url, unique_name):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {unique_name} (id bigint PRIMARY KEY, status text, remark text, "
            f"carrier text, distributor_id text, updated_at timestamptz NOT NULL)"))
        conn.execute(sa.text(f"CREATE INDEX ON {unique_name} (updated_at, id)"))
        # Written by a client in New York: the instant is what counts.
        conn.execute(sa.text("SET LOCAL TimeZone = 'America/New_York'"))
        conn.execute(sa.text(
            f"INSERT INTO {unique_name} VALUES (1, '已撤单', '客户拒收', 'c', 'd', "
            "now() - interval '3 minutes')"))
        written = conn.execute(sa.text(f"SELECT updated_at FROM {unique_name}")).scalar()
    try:
        parts = parts_for(tmp_path, postgres_url, unique_name)
        try:
            poll_until_caught_up(parts)
            assert stored_events(parts) == {"1": written.astimezone(UTC)}
        finally:
            parts.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {unique_name}"))
        engine.dispose()


def test_rows_stamped_in_the_future_do_not_hide_later_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    platform = Platform(url, "orders")
    parts = parts_for(tmp_path, url, "orders")
    try:
        now = local_now()
        # An upstream with its clock a day ahead, then ordinary rows.
        platform.insert([platform.row(99_999, "已撤单", "客户主动取消", now + timedelta(days=1))])
        poll_until_caught_up(parts)
        for _ in range(3):
            platform.round(10)
            poll_until_caught_up(parts)
        assert committed(parts) == platform.expected()
        assert set(stored_events(parts)) == {k[0] for k in platform.truth}
        assert parts.registry.get_sample_value("watchdog_cursor_lag_seconds") == 0.0
    finally:
        parts.close()
        platform.drop()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_more_rows_on_one_timestamp_than_a_page_holds(tmp_path, request, dialect,
                                                      unique_name):
    url = (f"sqlite:///{tmp_path / 'orders.db'}" if dialect == "sqlite"
           else request.getfixturevalue(f"{dialect}_url"))
    platform = Platform(url, unique_name)
    try:
        stamp = local_now().replace(microsecond=0) - timedelta(minutes=1)
        ids = list(range(1000, 1043))  # 43 rows, pages of 5, 2 pages per poll
        platform.insert([platform.row(i, "已撤单", "重复下单", stamp) for i in ids])
        platform.insert([platform.row(2000, "已撤单", "客户拒收", stamp + timedelta(seconds=1))])
        parts = parts_for(tmp_path, url, unique_name, batch_size=5, max_batches=2)
        try:
            polls = poll_until_caught_up(parts)
            assert polls >= 5  # the tie really spans polls, not just pages
            assert set(stored_events(parts)) == {str(i) for i in [*ids, 2000]}
            assert committed(parts) == platform.expected()
        finally:
            parts.close()
    finally:
        platform.drop()


def test_a_late_commit_after_a_quiet_spell_is_counted(tmp_path):
    """The newest cancellation is older than the overlap when a row stamped just before
    it turns visible, 9 min 50 s late (overlap 10 min, polls every 30 s)."""
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    platform = Platform(url, "orders")
    parts = parts_for(tmp_path, url, "orders")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def local(t: datetime) -> datetime:
        return t.astimezone(SHANGHAI).replace(tzinfo=None)

    try:
        platform.insert([platform.row(1, "已撤单", "客户主动取消", local(t0))])
        parts.pipeline.poll(t0 + timedelta(seconds=1))
        platform.insert([platform.row(2, "已撤单", "客户拒收", local(t0 - timedelta(seconds=1)))])
        parts.pipeline.poll(t0 + timedelta(minutes=10, seconds=5))
        assert set(stored_events(parts)) == {"1", "2"}
        assert committed(parts) == platform.expected()
    finally:
        parts.close()
        platform.drop()
