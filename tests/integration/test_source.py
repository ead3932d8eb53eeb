"""OrderSource against real SQLite, PostgreSQL and MariaDB order tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from watchdog.config import ColumnsConfig, DimensionConfig, SourceConfig
from watchdog.model import Cancellation, Cursor
from watchdog.source import OrderSource, SourceError
from watchdog.timeline import MAX_REASON_CHARS

CANCELLED = "已撤单"
T0 = datetime(2024, 5, 1, 10, 0, 0)  # naive Asia/Shanghai, as the platforms store it
T0_UTC = datetime(2024, 5, 1, 2, 0, 0, tzinfo=UTC)

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")  # 1 MB reasons


def orders_table(name: str, *, aware: bool = False, indexed: bool = True) -> sa.Table:
    """The demo's order table (MySQL gets DATETIME(6) and MEDIUMTEXT for the edge cases)."""
    ts = sa.DateTime(timezone=True) if aware else _DATETIME
    table = sa.Table(
        name, sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("order_no", sa.String(32)),
        sa.Column("status", sa.String(32)),  # nullable here, to test broken rows
        sa.Column("remark", _LONG_TEXT),
        *(sa.Column(c, sa.String(32)) for c in (
            "carrier", "upstream", "product", "distributor_id", "province", "city",
            "stage", "channel", "customer_name", "id_number", "phone", "address",
        )),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        mysql_charset="utf8mb4",
    )
    if indexed:
        sa.Index(f"ix_{name}_updated_at_id", table.c.updated_at, table.c.id)
        sa.Index(f"ix_{name}_created_at", table.c.created_at)
    return table


def row(oid: int, updated_at: datetime, status: str = CANCELLED, **kw: Any) -> dict[str, Any]:
    values = {c: None for c in ("order_no", "remark", "carrier", "province", "channel")}
    values.update(id=oid, status=status, updated_at=updated_at, created_at=updated_at)
    values.update(kw)
    return values


@pytest.fixture
def writer(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def orders(writer: sa.Engine, unique_name: str) -> Iterator[sa.Table]:
    table = orders_table(unique_name)
    table.metadata.create_all(writer)
    yield table
    table.metadata.drop_all(writer)


def insert(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def config(url: str, table: str | None, **kw: Any) -> SourceConfig:
    kw.setdefault("dimensions", {
        "carrier": DimensionConfig(column="carrier"),
        "province": DimensionConfig(column="province", label=False),
    })
    return SourceConfig(url=url, table=table, **kw)


def read_all(source: OrderSource, limit: int, after: Cursor | None = None) -> list[Cancellation]:
    """Poll page by page, as the pipeline does, until a page comes back empty."""
    out: list[Cancellation] = []
    for _ in range(1000):
        page = source.fetch_cancellations(after, limit)
        assert len(page) <= limit
        if not page:
            return out
        out += page
        after = page[-1].cursor
    raise AssertionError("polling never caught up")


# -- polling ---------------------------------------------------------------------------


def test_incremental_polling_returns_each_cancellation_once(writer, orders, db_url):
    rows = []
    for i in range(1, 61):
        # Groups of up to 3 orders share a timestamp; ids are not in time order.
        when = T0 + timedelta(seconds=(i * 7) % 20, microseconds=(i % 3) * 250_000)
        status = CANCELLED if i % 3 else "已激活"
        rows.append(row(1000 - i, when, status, carrier="联通" if i % 2 else None))
    insert(writer, orders, rows)
    source = OrderSource(config(db_url, orders.name), writer)

    got = read_all(source, limit=7)

    expected = sorted(
        (r["updated_at"], r["id"]) for r in rows if r["status"] == CANCELLED
    )
    assert [(c.changed_at, c.raw_id) for c in got] == [
        (when.replace(tzinfo=source.cfg.zone).astimezone(UTC), oid) for when, oid in expected
    ]
    assert all(c.order_id == str(c.raw_id) and c.status == CANCELLED for c in got)
    assert {c.dimensions["carrier"] for c in got} == {"联通", ""}
    assert all(set(c.dimensions) == {"carrier", "province"} for c in got)


def test_many_ties_on_one_timestamp_are_paged_by_id(writer, orders, db_url):
    when = T0.replace(microsecond=123456)
    insert(writer, orders, [row(i, when) for i in range(1, 41)])
    source = OrderSource(config(db_url, orders.name), writer)
    got = read_all(source, limit=3)
    assert [c.raw_id for c in got] == list(range(1, 41))


def test_naive_local_times_are_read_as_utc_and_round_trip(writer, orders, db_url):
    when = T0.replace(microsecond=654321)
    insert(writer, orders, [row(1, when), row(2, when), row(3, when + timedelta(microseconds=1))])
    source = OrderSource(config(db_url, orders.name), writer)

    first = source.fetch_cancellations(None, 1)
    assert first[0].changed_at == T0_UTC.replace(microsecond=654321)
    assert first[0].changed_at.tzinfo is UTC
    assert first[0].event_time == first[0].changed_at
    # The cursor from a row excludes exactly that row: microseconds survived the trip.
    assert [c.raw_id for c in source.fetch_cancellations(first[0].cursor, 10)] == [2, 3]


def test_look_back_reread_includes_the_boundary(writer, orders, db_url):
    insert(writer, orders, [row(i, T0 + timedelta(seconds=i)) for i in range(1, 6)])
    source = OrderSource(config(db_url, orders.name), writer)
    overlap = Cursor(T0_UTC + timedelta(seconds=3), None)
    assert [c.raw_id for c in source.fetch_cancellations(overlap, 10)] == [3, 4, 5]
    strictly = Cursor(T0_UTC + timedelta(seconds=3), 3)
    assert [c.raw_id for c in source.fetch_cancellations(strictly, 10)] == [4, 5]


def test_cursor_in_another_zone_means_the_same_instant(writer, orders, db_url):
    insert(writer, orders, [row(1, T0), row(2, T0 + timedelta(hours=1))])
    source = OrderSource(config(db_url, orders.name), writer)
    # 10:30 Shanghai is 02:30 UTC: only the 11:00 local row is later.
    after = Cursor(datetime(2024, 5, 1, 2, 30, tzinfo=UTC), None)
    assert [c.raw_id for c in source.fetch_cancellations(after, 10)] == [2]


def test_statuses_come_from_config(writer, orders, db_url):
    insert(writer, orders, [
        row(1, T0, CANCELLED), row(2, T0, "审核不通过"), row(3, T0, "已发货"), row(4, T0, None),
    ])
    cfg = config(db_url, orders.name, cancelled_statuses=[CANCELLED, "审核不通过"])
    got = OrderSource(cfg, writer).fetch_cancellations(None, 10)
    assert [(c.raw_id, c.status) for c in got] == [(1, CANCELLED), (2, "审核不通过")]


# -- reasons ---------------------------------------------------------------------------


def test_json_timeline_remark_gives_reason_and_event_time(writer, orders, db_url):
    timeline = [
        {"time": "2024-05-01 09:00:00", "content": "已提交", "operator": "api"},
        {"time": "2024-05-01 09:45:30", "content": "证件审核不通过"},
        {"time": "2024-05-01 09:30:00", "msg": "待审核"},
    ]
    insert(writer, orders, [
        row(1, T0, remark=json.dumps(timeline, ensure_ascii=False)),
        row(2, T0, remark='{"code":500,"msg":"签名验证失败"}'),
        row(3, T0, remark="[broken json"),
    ])
    got = OrderSource(config(db_url, orders.name), writer).fetch_cancellations(None, 10)
    assert got[0].reason == "证件审核不通过"
    assert got[0].event_time == datetime(2024, 5, 1, 1, 45, 30, tzinfo=UTC)
    assert got[0].changed_at == T0_UTC
    assert (got[1].reason, got[1].event_time) == ('{"code":500,"msg":"签名验证失败"}', T0_UTC)
    assert got[2].reason == "[broken json"


def test_null_empty_fallback_and_huge_reasons(writer, orders, db_url):
    huge = "接口超时" * 262_144  # 1 Mi characters, 3 MB of UTF-8
    insert(writer, orders, [
        row(1, T0, remark=None),
        row(2, T0, remark=""),
        row(3, T0, remark="   ", channel="客户取消"),
        row(4, T0, remark=huge),
        row(5, T0, remark="号码预占失败", channel="ignored"),
    ])
    cfg = config(db_url, orders.name, columns=ColumnsConfig(reason=["remark", "channel"]))
    got = OrderSource(cfg, writer).fetch_cancellations(None, 10)
    assert [c.reason for c in got] == [
        None, "", "客户取消", huge[:MAX_REASON_CHARS], "号码预占失败",
    ]


def test_undecodable_and_garbage_rows_do_not_abort_the_batch(tmp_path, unique_name):
    # SQLite stores whatever it is given, so it can hold what other databases reject.
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(url)
    table = orders_table(unique_name)
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [row(1, T0, remark="正常")])
        conn.exec_driver_sql(
            f"INSERT INTO {unique_name} (id, status, remark, created_at, updated_at) VALUES "
            f"(2, ?, ?, '2024-05-01 10:00:01', '2024-05-01 10:00:01'),"
            f"(3, ?, ?, 'garbage', 'not a time'),"
            f"(4, ?, ?, '2024-05-01 10:00:02', '2024-05-01 10:00:02')",
            (CANCELLED, b"\xff\xfe\x00bad\x80", CANCELLED, "x", CANCELLED,
             "审核不通过".encode("gbk")),
        )
    source = OrderSource(config(url, unique_name), engine)
    got = source.fetch_cancellations(None, 10)
    assert [c.raw_id for c in got] == [1, 2, 4]
    assert source.skipped_rows == 1  # 3: no readable change time (the pipeline counts it)
    assert isinstance(got[1].reason, str) and "bad" in got[1].reason
    assert got[2].reason == "审核不通过"
    engine.dispose()


def test_sqlite_text_timestamps_without_microseconds(tmp_path, unique_name):
    """Python's sqlite3 writes `10:00:00`, SQLAlchemy `10:00:00.000000`: both must page."""
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {unique_name} (id INTEGER PRIMARY KEY, status TEXT, remark TEXT, "
            "carrier TEXT, province TEXT, updated_at DATETIME NOT NULL)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO {unique_name} (id, status, updated_at) VALUES (?, ?, ?)",
            [(i, CANCELLED, f"2024-05-01 10:00:0{i // 10}") for i in range(1, 31)]
            + [(31, CANCELLED, "2024-05-01 10:00:02.5")],
        )
    source = OrderSource(config(url, unique_name), engine)
    got = read_all(source, limit=4)
    assert [c.raw_id for c in got] == [*range(1, 30), 31, 30]  # 30 is at 10:00:03
    assert got[-2].changed_at == T0_UTC + timedelta(seconds=2, microseconds=500_000)
    engine.dispose()


# -- new orders ------------------------------------------------------------------------


def test_count_new_orders_groups_by_label_dimensions(writer, orders, db_url):
    insert(writer, orders, [
        row(1, T0, "已激活", carrier="联通", province="广东"),
        row(2, T0 + timedelta(seconds=1), CANCELLED, carrier="联通", province="四川"),
        row(3, T0 + timedelta(seconds=2), "已发货", carrier="电信"),
        row(4, T0 + timedelta(seconds=3), "已发货", carrier=None),
        row(5, T0 + timedelta(seconds=4), "已发货", carrier=""),
        row(6, T0 + timedelta(seconds=10), "已发货", carrier="电信"),  # at `until`: excluded
        row(7, T0 - timedelta(microseconds=1), "已发货", carrier="电信"),  # before `since`
    ])
    cfg = config(db_url, orders.name, columns=ColumnsConfig(created_at="created_at"),
                 count_orders=True)
    counts = OrderSource(cfg, writer).count_new_orders(T0_UTC, T0_UTC + timedelta(seconds=10))
    assert sorted((c.dimensions["carrier"], c.count) for c in counts) == [
        ("", 2), ("电信", 1), ("联通", 2),
    ]
    assert all(set(c.dimensions) == {"carrier"} for c in counts)  # province: label false
    assert {c.minute for c in counts} == {T0_UTC}  # the UTC minute of creation
    off = config(db_url, orders.name)
    assert OrderSource(off, writer).count_new_orders(T0_UTC, T0_UTC + timedelta(1)) == []


def test_count_new_orders_per_minute_of_creation(writer, orders, db_url):
    """Each (minute, labels) group is its own count, in UTC minutes; seconds and
    microseconds within a minute do not split it."""
    minute = timedelta(minutes=1)
    insert(writer, orders, [
        row(1, T0 + timedelta(seconds=59, microseconds=999_999), "已发货", carrier="联通"),
        row(2, T0 + minute, "已发货", carrier="联通"),
        row(3, T0 + minute + timedelta(seconds=30), "已发货", carrier="联通"),
        row(4, T0 + 2 * minute + timedelta(seconds=1), "已发货", carrier="电信"),
    ])
    cfg = config(db_url, orders.name, columns=ColumnsConfig(created_at="created_at"),
                 count_orders=True)
    counts = OrderSource(cfg, writer).count_new_orders(T0_UTC, T0_UTC + 3 * minute)
    assert sorted((c.minute, c.dimensions["carrier"], c.count) for c in counts) == [
        (T0_UTC, "联通", 1), (T0_UTC + minute, "联通", 2), (T0_UTC + 2 * minute, "电信", 1),
    ]


def test_count_new_orders_also_by_count_orders_by(writer, orders, db_url):
    """`count_orders_by` counts the same orders again per minute and value of a dimension
    kept off the labels (province here, distributor in practice), marked `count_by`; the
    label grouping is unchanged."""
    minute = timedelta(minutes=1)
    insert(writer, orders, [
        row(1, T0, "已激活", carrier="联通", province="广东"),
        row(2, T0 + timedelta(seconds=20), CANCELLED, carrier="电信", province="广东"),
        row(3, T0 + timedelta(seconds=40), "已发货", carrier="联通", province=None),
        row(4, T0 + minute, "已发货", carrier="联通", province="四川"),
    ])
    cfg = config(db_url, orders.name, columns=ColumnsConfig(created_at="created_at"),
                 count_orders=True, count_orders_by=["province"])
    counts = OrderSource(cfg, writer).count_new_orders(T0_UTC, T0_UTC + 2 * minute)
    labelled = sorted((c.minute, c.dimensions["carrier"], c.count)
                      for c in counts if not c.count_by)
    assert labelled == [(T0_UTC, "电信", 1), (T0_UTC, "联通", 2), (T0_UTC + minute, "联通", 1)]
    assert all(set(c.dimensions) == {"carrier"} for c in counts if not c.count_by)
    by = sorted((c.minute, c.dimensions["province"], c.count) for c in counts if c.count_by)
    assert by == [(T0_UTC, "", 1), (T0_UTC, "广东", 2), (T0_UTC + minute, "四川", 1)]
    assert all(set(c.dimensions) == {"province"} for c in counts if c.count_by)


def test_count_orders_by_must_name_a_dimension_and_needs_count_orders(db_url):
    with pytest.raises(ValueError, match="count_orders_by: distributor is not a configured"):
        config(db_url, "orders", columns=ColumnsConfig(created_at="created_at"),
               count_orders=True, count_orders_by=["distributor"])
    with pytest.raises(ValueError, match="count_orders_by needs count_orders"):
        config(db_url, "orders", count_orders_by=["province"])


# -- custom query ----------------------------------------------------------------------


def custom_query(table: str, *, with_params: bool = True) -> str:
    where = "WHERE o.updated_at >= :since_ts AND o.status IN :statuses" if with_params else ""
    return (
        "SELECT o.id, o.status, o.updated_at AS changed_at, "
        "COALESCE(o.remark, o.channel) AS reason, o.carrier, o.province "
        f"FROM {table} o {where};\n"  # the trailing `;` of a query pasted from a SQL prompt
    )


@pytest.mark.parametrize("with_params", [True, False])
def test_custom_query_pages_like_table_mode(writer, orders, db_url, with_params):
    when = T0.replace(microsecond=5)
    rows = [row(i, when + timedelta(seconds=i // 4), remark=f"r{i}", carrier="移动")
            for i in range(1, 23)]
    rows += [row(100, when, "已激活"), row(101, when, CANCELLED, channel="来自渠道")]
    insert(writer, orders, rows)
    cfg = config(db_url, None, query=custom_query(orders.name, with_params=with_params))
    source = OrderSource(cfg, writer)

    got = read_all(source, limit=5)

    assert [c.raw_id for c in got] == [1, 2, 3, 101, *range(4, 23)]
    assert got[0].reason == "r1" and got[0].dimensions == {"carrier": "移动", "province": ""}
    assert got[3].reason == "来自渠道"
    overlap = source.fetch_cancellations(Cursor(got[-1].changed_at, None), 10)
    assert [c.raw_id for c in overlap] == [20, 21, 22]
    warnings = source.check()
    assert any(":since_ts" in w for w in warnings) is (not with_params)


def test_custom_query_missing_column_is_reported(writer, orders, db_url):
    query = f"SELECT id, status, updated_at AS changed_at, carrier, province FROM {orders.name}"
    source = OrderSource(config(db_url, None, query=query), writer)
    with pytest.raises(SourceError, match=r'source\.query: .*"reason".* it returns: id, status'):
        source.check()
    with pytest.raises(SourceError, match="cancel-watchdog check"):
        source.fetch_cancellations(None, 10)


# -- check -----------------------------------------------------------------------------


def test_check_passes_on_the_demo_table(writer, orders, db_url):
    cfg = config(db_url, orders.name, columns=ColumnsConfig(created_at="created_at"),
                 count_orders=True)
    assert OrderSource(cfg, writer).check() == []


def test_check_names_the_missing_column_and_config_key(writer, orders, db_url):
    cfg = config(db_url, orders.name, columns=ColumnsConfig(changed_at="updatedat"))
    with pytest.raises(SourceError) as err:
        OrderSource(cfg, writer).check()
    message = str(err.value)
    assert message.startswith(
        f'source.columns.changed_at: column "updatedat" not found in table {orders.name}'
    )
    assert "did you mean 'updated_at'" in message and "columns are: id, order_no" in message

    cfg = config(db_url, orders.name, dimensions={"isp": DimensionConfig(column="isp")})
    with pytest.raises(SourceError, match=r'source\.dimensions\.isp\.column: column "isp"'):
        OrderSource(cfg, writer).check()


def test_check_reports_a_missing_table(writer, orders, db_url):
    source = OrderSource(config(db_url, orders.name + "_nope"), writer)
    with pytest.raises(SourceError, match=rf"source\.table: table '{orders.name}_nope' not found"):
        source.check()


def test_check_warns_about_a_missing_index(writer, db_url, unique_name):
    table = orders_table(unique_name, indexed=False)
    table.metadata.create_all(writer)
    try:
        cfg = config(db_url, unique_name, columns=ColumnsConfig(created_at="created_at"),
                     count_orders=True)
        warnings = OrderSource(cfg, writer).check()
    finally:
        table.metadata.drop_all(writer)
    assert len(warnings) == 2
    assert "starts with updated_at" in warnings[0]
    assert f"ON {unique_name} (updated_at, id)" in warnings[0]
    assert "CREATE INDEX" in warnings[0] and "(created_at)" in warnings[1]


def test_check_accepts_an_index_on_changed_at_alone(writer, db_url, unique_name):
    """The id of the keyset is inside an OR: only changed_at bounds the scan (see
    source_check.check_table), so (updated_at) serves the poll like (updated_at, id)."""
    table = orders_table(unique_name, indexed=False)
    sa.Index(f"ix_{unique_name}_updated_at", table.c.updated_at)
    table.metadata.create_all(writer)
    try:
        assert OrderSource(config(db_url, unique_name), writer).check() == []
    finally:
        table.metadata.drop_all(writer)


# -- read-only, timeouts and failures ---------------------------------------------------


def test_from_config_sessions_are_read_only(writer, orders, db_url):
    insert(writer, orders, [row(1, T0)])
    with OrderSource.from_config(config(db_url, orders.name)) as source:
        assert [c.raw_id for c in source.fetch_cancellations(None, 10)] == [1]
        # Even a user allowed to write (root, postgres, the file's owner) cannot here.
        with (
            pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"),
            source.engine.begin() as conn,
        ):
            conn.execute(orders.insert(), [row(2, T0)])
        with source.engine.connect() as conn:
            dialect = conn.dialect.name
            if dialect == "postgresql":
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "10s"
                assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
            elif dialect in ("mysql", "mariadb"):
                assert conn.exec_driver_sql("SELECT @@max_statement_time").scalar() == 10
                assert conn.exec_driver_sql("SELECT @@session.tx_read_only").scalar() == 1
                zone = conn.exec_driver_sql("SELECT @@session.time_zone").scalar()
                assert zone in ("Asia/Shanghai", "+08:00")
    with writer.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar() == 1


@pytest.mark.postgres
def test_a_select_only_role_can_poll_postgres(postgres_url, unique_name):
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    table = orders_table(unique_name)
    role = f"ro_{unique_name}"
    table.metadata.create_all(admin)
    try:
        insert(admin, table, [row(i, T0 + timedelta(seconds=i % 4)) for i in range(1, 26)])
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            # Column grants: the watchdog never needs names, ID numbers or phones.
            columns = "id, status, remark, carrier, province, created_at, updated_at"
            conn.exec_driver_sql(f"GRANT SELECT ({columns}) ON {unique_name} TO {role}")
        url = sa.make_url(postgres_url).set(username=role, password=None)
        cfg = config(url.render_as_string(hide_password=False), unique_name,
                     columns=ColumnsConfig(created_at="created_at"), count_orders=True)
        with OrderSource.from_config(cfg) as source:
            assert source.check() == []
            got = read_all(source, limit=4)
            assert sorted(c.raw_id for c in got) == list(range(1, 26))
            counts = source.count_new_orders(T0_UTC, T0_UTC + timedelta(days=1))
            assert sum(c.count for c in counts) == 25
            # TEMP is granted to PUBLIC, so only the read-only session stops this one.
            with (
                pytest.raises(sa.exc.DBAPIError, match="read-only transaction"),
                source.engine.begin() as conn,
            ):
                conn.exec_driver_sql("CREATE TEMP TABLE wd_probe (x int)")
            with (
                pytest.raises(sa.exc.DBAPIError, match=r"read-only transaction|permission"),
                source.engine.begin() as conn,
            ):
                conn.execute(table.delete())
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {unique_name}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


@pytest.mark.mysql
def test_a_column_granted_user_can_poll_mariadb(mysql_url, unique_name):
    admin = sa.create_engine(mysql_url)
    table = orders_table(unique_name)
    user = f"ro_{unique_name}"
    table.metadata.create_all(admin)
    try:
        insert(admin, table, [row(i, T0 + timedelta(seconds=i % 4)) for i in range(1, 26)])
        database = sa.make_url(mysql_url).database
        columns = "id, status, remark, carrier, province, created_at, updated_at"
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE USER '{user}'@'%'"))
            conn.execute(
                sa.text(f"GRANT SELECT ({columns}) ON {database}.{unique_name} TO '{user}'@'%'")
            )
        url = sa.make_url(mysql_url).set(username=user, password=None)
        cfg = config(url.render_as_string(hide_password=False), unique_name,
                     columns=ColumnsConfig(created_at="created_at"), count_orders=True)
        with OrderSource.from_config(cfg) as source:
            assert source.check() == []
            assert sorted(c.raw_id for c in read_all(source, limit=4)) == list(range(1, 26))
            with (
                pytest.raises(sa.exc.DBAPIError, match="READ ONLY transaction"),
                source.engine.begin() as conn,
            ):
                conn.exec_driver_sql("CREATE TEMPORARY TABLE wd_probe (x int)")
        phone = config(url.render_as_string(hide_password=False), unique_name,
                       columns=ColumnsConfig(reason=["phone"]))
        with OrderSource.from_config(phone) as source, pytest.raises(
            SourceError, match=r'source\.columns\.reason\[0\]: column "phone" not found'
        ):
            source.check()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {unique_name}")
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


def test_statement_timeout_stops_a_slow_query(writer, orders, db_url):
    slow = {"postgresql": "CROSS JOIN pg_sleep(5)", "mysql": "WHERE SLEEP(5) = 0"}
    if writer.dialect.name not in slow:
        pytest.skip("SQLite has no statement timeout")
    insert(writer, orders, [row(1, T0)])
    query = (
        "SELECT id, status, updated_at AS changed_at, remark AS reason, carrier, province "
        f"FROM {orders.name} {slow[writer.dialect.name]}"
    )
    cfg = config(db_url, None, query=query, statement_timeout="300ms")
    with OrderSource.from_config(cfg) as source, pytest.raises(SourceError) as err:
        source.fetch_cancellations(None, 10)
    assert "ran longer than source.statement_timeout (0.3s)" in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://watchdog:s3cret@127.0.0.1:1/orders",
        "mysql+pymysql://watchdog:s3cret@127.0.0.1:1/orders",
    ],
)
def test_unreachable_database_raises_source_error_without_password(url):
    source = OrderSource.from_config(config(url, "orders"))
    for call in (lambda: source.fetch_cancellations(None, 10), source.check):
        with pytest.raises(SourceError) as err:
            call()
        message = str(err.value)
        assert "s3cret" not in message
        assert "watchdog:***@127.0.0.1:1/orders" in message
        assert "check source.url" in message
    source.close()


def test_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "nope.db"
    source = OrderSource.from_config(config(f"sqlite:///{path}", "orders"))
    with pytest.raises(SourceError, match="unable to open database file"):
        source.fetch_cancellations(None, 10)
    assert not path.exists()
    source.close()


def test_bad_url_does_not_echo_the_password():
    with pytest.raises(SourceError, match="not a valid SQLAlchemy URL") as err:
        OrderSource.from_config(config("postgresql+psycopg://u:s3cret@host:port/db", "orders"))
    assert "s3cret" not in str(err.value)


@pytest.mark.postgres
def test_timestamptz_columns_on_postgres(postgres_url, unique_name):
    engine = sa.create_engine(postgres_url, connect_args={"options": "-c TimeZone=UTC"})
    table = orders_table(unique_name, aware=True)
    table.metadata.create_all(engine)
    try:
        when = T0_UTC.replace(microsecond=777)
        insert(engine, table, [row(i, when + timedelta(hours=i // 3)) for i in range(1, 10)])
        source = OrderSource(config(postgres_url, unique_name), engine)
        got = read_all(source, limit=2)
        assert [c.raw_id for c in got] == list(range(1, 10))
        assert got[0].changed_at == when and got[0].changed_at.tzinfo is UTC
        again = source.fetch_cancellations(Cursor(when + timedelta(hours=2), None), 10)
        assert [c.raw_id for c in again] == [6, 7, 8, 9]
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()


# -- the plan ---------------------------------------------------------------------------


def explain(engine: sa.Engine, stmt: sa.Select[Any]) -> list[sa.Row[Any]]:
    compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    prefix = "EXPLAIN "
    if engine.dialect.name == "sqlite":
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
        prefix = "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(prefix + str(compiled), params).all())


def test_a_poll_is_an_index_range_scan(writer, orders, db_url):
    """With 20k orders and the cursor near the end, the plan starts at the cursor."""
    insert(writer, orders, [
        row(i, T0 - timedelta(minutes=2 * (20_000 - i)), CANCELLED if i % 4 == 0 else "已激活")
        for i in range(1, 20_001)
    ])
    with writer.begin() as conn:
        if writer.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {orders.name}")
        elif writer.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql(f"ANALYZE TABLE {orders.name}").all()
        else:
            conn.exec_driver_sql("ANALYZE")
    source = OrderSource(config(db_url, orders.name), writer)
    after = source.fetch_cancellations(Cursor(T0_UTC - timedelta(hours=3), None), 1)[0].cursor
    plan = explain(writer, source.fetch_statement(after, 100))
    index = f"ix_{orders.name}_updated_at_id"
    text = "\n".join(" ".join(str(v) for v in r) for r in plan)
    if writer.dialect.name == "postgresql":
        assert f"Index Scan using {index}" in text
        assert "Index Cond: (updated_at >=" in text
    elif writer.dialect.name in ("mysql", "mariadb"):
        (only,) = plan
        assert (only.key, only.type) == (index, "range")
    else:
        assert f"USING INDEX {index} (updated_at>?)" in text
