"""Leadership: one replica leads per state database; a dead leader's lease is taken over."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from watchdog.lease import AlreadyRunning, DatabaseLease, FileLease, SoleLease, lease_for
from watchdog.store import StateStore


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


def test_postgres_state_sessions_notice_a_dead_peer_within_the_lease_interval(postgres_url):
    # A dead leader *host* closes no socket: only TCP keepalives on the server's end of
    # its session end the session (and release the lock) in bounded time.
    url = sa.engine.make_url(postgres_url).update_query_dict(
        {"options": "-c statement_timeout=12345"})
    store = StateStore.open(url.render_as_string(hide_password=False), timedelta(seconds=10))
    try:
        with store.engine.connect() as conn:
            if conn.execute(sa.text("SELECT inet_server_addr()")).scalar() is None:
                pytest.skip("a Unix-socket connection has no TCP keepalives")
            show = {name: conn.execute(sa.text(f"SHOW {name}")).scalar() for name in (
                "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
                "tcp_user_timeout", "statement_timeout")}
            params = conn.connection.dbapi_connection.info.get_parameters()
    finally:
        store.close()
    idle, interval, count = (int(show[k]) for k in (
        "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"))
    assert idle >= 1 and interval >= 1 and count >= 1
    assert idle + count * interval <= 10  # a dead client is dropped within one interval
    assert show["tcp_user_timeout"] in ("8000", "8s")
    assert show["statement_timeout"] == "12345ms"  # options from the URL are kept
    assert params["keepalives"] == "1" and int(params["keepalives_idle"]) == idle
    assert int(params["tcp_user_timeout"]) == 8000
