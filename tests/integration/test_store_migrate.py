"""State schema migrations: ordered steps in one transaction, the version stamp, and
replicas that start at the same moment."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from watchdog.migrations import MIGRATION_LOCK, SCHEMA_VERSION
from watchdog.state_schema import StateError, meta_table, metadata
from watchdog.store import StateStore


@pytest.fixture
def store(db_url, unique_name):
    engine = sa.create_engine(db_url)
    metadata.drop_all(engine)
    engine.dispose()
    s = StateStore.open(db_url)
    with s.engine.begin() as conn:  # a table of an "old release", with a row in it
        conn.execute(sa.text(f"CREATE TABLE {unique_name} (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text(f"INSERT INTO {unique_name} (id) VALUES (7)"))
    yield s
    with s.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {unique_name}"))
    metadata.drop_all(s.engine)
    s.close()


def stamped(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(meta_table.c.value).where(
            meta_table.c.key == "schema_version")).scalar_one())


def columns(store: StateStore, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(store.engine).get_columns(table)}


def add_column_step(table: str, calls: list[int]):
    """Version 1 -> 2: a new column, filled from existing data."""
    def step(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN doubled INTEGER"))
        conn.execute(sa.text(f"UPDATE {table} SET doubled = id * 2"))
    return step


def test_a_new_database_is_stamped_with_the_current_version(store):
    assert stamped(store) == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION  # a second start changes nothing


def test_an_older_database_runs_its_steps_once_and_is_stamped(store, unique_name):
    calls: list[int] = []
    steps = {1: add_column_step(unique_name, calls)}
    assert store.migrate(version=2, migrations=steps) == 1
    assert stamped(store) == 2
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT doubled FROM {unique_name}")).scalar() == 14
    assert store.migrate(version=2, migrations=steps) == 2
    assert calls == [1]
    # An older release now refuses the database instead of misreading it.
    with pytest.raises(StateError, match="version 2 is newer than this release supports"):
        store.migrate(version=1)


def test_a_failing_step_leaves_the_database_as_it_was(store, unique_name, db_url):
    calls: list[int] = []

    def broken(conn: sa.Connection) -> None:
        raise sa.exc.OperationalError("ALTER TABLE ...", {}, Exception("disk full"))

    with pytest.raises(StateError, match="disk full"):
        store.migrate(version=3, migrations={1: add_column_step(unique_name, calls), 2: broken})
    assert calls == [1]
    assert stamped(store) == 1
    if not db_url.startswith("mysql"):  # MySQL commits each DDL statement on its own
        assert "doubled" not in columns(store, unique_name)


def test_a_missing_step_is_refused_with_a_clear_message(store, unique_name):
    with pytest.raises(StateError, match="no step from version 2"):
        store.migrate(version=3, migrations={1: add_column_step(unique_name, [])})
    assert stamped(store) == 1


def test_replicas_starting_together_on_postgres_take_turns(postgres_url, unique_name):
    engine = sa.create_engine(postgres_url)
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {unique_name} (id INTEGER PRIMARY KEY)"))
    a, b = StateStore.open(postgres_url), StateStore.open(postgres_url)
    inside, release = threading.Event(), threading.Event()
    calls: list[int] = []
    column = add_column_step(unique_name, calls)

    def slow_step(conn: sa.Connection) -> None:
        column(conn)
        inside.set()
        release.wait(30)

    results: dict[str, object] = {}

    def run(name: str, store: StateStore) -> None:
        try:
            results[name] = store.migrate(version=2, migrations={1: slow_step})
        except Exception as exc:  # reported by the assertions below
            results[name] = exc

    first = threading.Thread(target=run, args=("a", a))
    second = threading.Thread(target=run, args=("b", b))
    try:
        first.start()
        assert inside.wait(30)
        second.start()

        def waiting_for_the_lock() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :key AND NOT granted"), {"key": MIGRATION_LOCK}).scalar())

        deadline = time.monotonic() + 30
        while not waiting_for_the_lock():
            assert time.monotonic() < deadline, "the second replica never waited"
            assert not results.get("b"), results  # it must not get past the lock
            time.sleep(0.02)
        release.set()
        first.join(30)
        second.join(30)
        assert results == {"a": 1, "b": 2}  # b found the work done
        assert calls == [1]
        assert stamped(a) == 2
    finally:
        release.set()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {unique_name}"))
        metadata.drop_all(engine)
        for s in (a, b):
            s.close()
        engine.dispose()
