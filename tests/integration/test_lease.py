"""Leadership: one replica leads per state database; a dead leader's lease is taken over."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from watchdog.lease import AlreadyRunning, DatabaseLease, FileLease, SoleLease, lease_for


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_one_leader_and_takeover_after_its_session_dies(request, server, unique_name):
    url = request.getfixturevalue(server)
    a_engine, b_engine = sa.create_engine(url), sa.create_engine(url)
    a, b = DatabaseLease(a_engine, unique_name), DatabaseLease(b_engine, unique_name)
    try:
        assert a.try_acquire() is True
        assert a.try_acquire() is True  # renewing keeps it
        assert b.try_acquire() is False
        # The leader's process dies: its server session goes away with the lock.
        a_engine.dispose()
        a._conn.invalidate()
        # The server notices the closed session asynchronously: allow it a moment.
        deadline = time.monotonic() + 10
        while not b.try_acquire() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.try_acquire() is True
        assert a.try_acquire() is False  # the old leader notices it lost the lease
    finally:
        b.release()
        a.release()
        a_engine.dispose()
        b_engine.dispose()


def test_released_lease_is_free_again(postgres_url, unique_name):
    engine = sa.create_engine(postgres_url)
    a, b = DatabaseLease(engine, unique_name), DatabaseLease(engine, unique_name)
    try:
        assert a.try_acquire()
        assert not b.try_acquire()
        a.release()
        assert b.try_acquire()
    finally:
        b.release()
        engine.dispose()


def test_sqlite_state_refuses_a_second_instance(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = lease_for(sa.create_engine(url))
    assert isinstance(first, FileLease)
    assert first.try_acquire()
    with pytest.raises(AlreadyRunning, match=r"another cancel-watchdog .* is using the state"):
        lease_for(sa.create_engine(url)).try_acquire()
    first.release()
    assert lease_for(sa.create_engine(url)).try_acquire()


def test_in_memory_sqlite_always_leads():
    assert isinstance(lease_for(sa.create_engine("sqlite://")), SoleLease)
