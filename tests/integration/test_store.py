"""The state database on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from watchdog.model import Cancellation, Classified, Cursor, Verdict
from watchdog.state_schema import StateError, meta_table, metadata
from watchdog.store import Batch, StateStore

T0 = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def store(db_url):
    engine = sa.create_engine(db_url)
    metadata.drop_all(engine)
    engine.dispose()
    s = StateStore.open(db_url)
    yield s
    metadata.drop_all(s.engine)
    s.close()


def item(order_id: str, status: str = "已撤单", category: str = "compliance",
         at: datetime = T0) -> Classified:
    c = Cancellation(order_id, status, "一证五号超限", at, at, {"carrier": "联通"}, int(order_id))
    return Classified(c, Verdict(category, "r1"))


def commit(store: StateStore, items, cursor: Cursor, counters=None, now: datetime = T0):
    with store.transaction() as tx:
        fresh = tx.new_keys(items)
        tx.write(Batch(fresh, cursor, counters or {}), now)
    return fresh


def test_cursor_round_trips_exactly(store):
    assert store.load_cursor() is None
    commit(store, [], Cursor(T0, 42))
    assert store.load_cursor() == Cursor(T0, 42)
    commit(store, [], Cursor(T0 + timedelta(seconds=1), "A-7"))
    assert store.load_cursor() == Cursor(T0 + timedelta(seconds=1), "A-7")


def test_dedupe_within_and_across_batches(store):
    first = commit(store, [item("1"), item("2"), item("1")], Cursor(T0, 2))
    assert [c.cancellation.order_id for c in first] == ["1", "2"]
    second = commit(store, [item("2"), item("3"), item("1", status="审核不通过")], Cursor(T0, 3))
    assert [(c.cancellation.order_id, c.cancellation.status) for c in second] == [
        ("3", "已撤单"), ("1", "审核不通过")]
    assert store.count_events() == 4


def test_counters_accumulate_and_round_trip(store):
    key = ("watchdog_cancellations", (("carrier", "联通"), ("category", "compliance")))
    commit(store, [item("1")], Cursor(T0, 1), {key: 3})
    commit(store, [item("2")], Cursor(T0, 2), {key: 2, ("watchdog_duplicate_rows", ()): 1})
    assert store.counters() == {key: 5, ("watchdog_duplicate_rows", ()): 1}


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        fresh = tx.new_keys([item("9")])
        tx.write(Batch(fresh, Cursor(T0, 9), {("watchdog_cancellations", ()): 1}), T0)
        raise RuntimeError("crash between write and commit")
    assert store.load_cursor() is None
    assert store.count_events() == 0
    assert store.counters() == {}
    assert commit(store, [item("9")], Cursor(T0, 9))  # still new


def test_events_read_back_in_time_order(store):
    commit(store, [item("2", at=T0 + timedelta(minutes=1)), item("1")], Cursor(T0, 2))
    events = list(store.events(T0, T0 + timedelta(hours=1)))
    assert [e.order_id for e in events] == ["1", "2"]
    assert events[0].dimensions == {"carrier": "联通"}
    assert events[0].event_time == T0


def test_prune_removes_old_events_and_keys(store):
    commit(store, [item("1")], Cursor(T0, 1), now=T0)
    commit(store, [item("2")], Cursor(T0, 2), now=T0 + timedelta(days=40))
    events, keys = store.prune(T0 + timedelta(days=1))
    assert (events, keys) == (2, 1)  # both events carry event_time T0; key 1 is old


def test_named_cursors_are_independent(store):
    with store.transaction("orders") as tx:
        tx.write(Batch((), Cursor(T0, ""), {}), T0)
    assert store.load_cursor() is None
    assert store.load_cursor("orders") == Cursor(T0, "")


def test_newer_schema_is_refused(store):
    with store.engine.begin() as conn:
        conn.execute(meta_table.update().values(value="999"))
    with pytest.raises(StateError, match="newer than this release"):
        store.migrate()


def test_dedupe_with_keys_claimed_in_new_keys(store):
    """The pipeline passes `now`: on PostgreSQL the keys are claimed by an insert."""
    def claim(items, now=T0):
        with store.transaction() as tx:
            fresh = tx.new_keys(items, now)
            tx.write(Batch(fresh, Cursor(T0, 1), {}), now)
        return [(c.cancellation.order_id, c.cancellation.status) for c in fresh]

    assert claim([item("1"), item("2"), item("1")]) == [("1", "已撤单"), ("2", "已撤单")]
    assert claim([item("2"), item("3"), item("1", status="审核不通过")],
                 now=T0 + timedelta(days=40)) == [("3", "已撤单"), ("1", "审核不通过")]
    assert store.count_events() == 4
    assert store.prune(T0 + timedelta(days=1)) == (4, 2)  # keys carry the `now` given
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.new_keys([item("9")], T0)
        raise RuntimeError("crash before the commit")
    assert claim([item("9")]) == [("9", "已撤单")]  # the rolled-back claim left nothing


def test_order_minutes_credit_only_growth_and_forget_old_minutes(store):
    from watchdog import order_minutes as om
    from watchdog.model import OrderCount

    m0 = T0.replace(second=0, microsecond=0)
    minute = timedelta(minutes=1)
    with store.engine.begin() as conn:
        assert om.load(conn, "s", m0) is None  # never saved
    counts = [OrderCount({"carrier": "联通", "p": "卡"}, 4, minute=m0),
              OrderCount({"carrier": "电信"}, 1, minute=m0 + minute)]
    with store.engine.begin() as conn:
        fresh, changed = om.credit(counts, om.load(conn, "s", m0) or {})
        om.save(conn, "s", m0, changed)
    assert [(c.count, c.minute) for c in fresh] == [(4, m0), (1, m0 + minute)]
    # Later: the first minute grew by 2, the second shrank (nothing credited, mark kept).
    later = [OrderCount({"p": "卡", "carrier": "联通"}, 6, minute=m0),
             OrderCount({"carrier": "电信"}, 0, minute=m0 + minute)]
    with store.engine.begin() as conn:
        credited = om.load(conn, "s", m0)
        fresh, changed = om.credit(later, credited)
        om.save(conn, "s", m0 + minute, changed)  # forget m0 from now on
    assert [(c.count, c.minute) for c in fresh] == [(2, m0)]
    with store.engine.begin() as conn:
        assert om.load(conn, "s", m0) == {
            (m0 + minute, next(k[1] for k in credited if k[0] == m0 + minute)): 1}
        om.save(conn, "s", m0 + 5 * minute, {})  # a quiet spell: no minute left ...
        assert om.load(conn, "s", m0) == {}  # ... but saved before: nothing credited
        assert om.load(conn, "other", m0) is None


def test_events_round_trip_awkward_text_exactly(store):
    """Events go in by COPY on PostgreSQL: tabs, newlines, backslashes, quotes, emoji and
    \\N-like text must come back as written."""
    awkward = "原因\t第二列\n第二行 \\N \\\\ 'q' \"qq\" 🙂 ,;"
    c = Cancellation("7", "已撤单", awkward, T0, T0, {"carrier": "联\t通\\", "x": "\\N"}, 7)
    with store.transaction() as tx:
        fresh = tx.new_keys([Classified(c, Verdict("unknown", "r\\1"))], T0)
        tx.write(Batch(fresh, Cursor(T0, 7), {}, reasons={"7": awkward}), T0)
    [e] = store.events(T0 - timedelta(seconds=1), T0 + timedelta(seconds=1))
    assert (e.order_id, e.status, e.category, e.rule, e.event_time, e.reason) == (
        "7", "已撤单", "unknown", "r\\1", T0, awkward)
    assert e.dimensions == {"carrier": "联\t通\\", "x": "\\N"}
