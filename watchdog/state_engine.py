"""Connections to the state database: liveness settings for PostgreSQL, pragmas for
SQLite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa


def postgres_liveness(url: str, lease_interval: timedelta) -> dict[str, Any]:
    """libpq parameters that bound how long either end of a state connection keeps
    talking to a peer that vanished (host power loss, network partition).

    The leader's advisory lock lives as long as its server session. A process that dies
    closes its socket and the server drops the lock at once; a *host* that dies closes
    nothing, and without keepalives the server keeps the session and the lock for the
    operating system's default of over two hours. So the server end of every session
    gets TCP keepalives (session settings sent in `options`): it ends a dead leader's
    session, releasing the lock, within idle + count x interval, about 0.8 x
    `lease_interval`, and a standby takes over at its next attempt. The client end gets
    the same (libpq `keepalives*`, `tcp_user_timeout`, `connect_timeout`), so a leader cut
    off from the server fails its queries in that time instead of hanging. Over a Unix
    socket these settings are ignored. An `options` given in the URL is kept.
    """
    lease = max(1, int(lease_interval.total_seconds()))
    idle, interval, count = max(1, lease // 2), max(1, lease // 10), 3
    timeout_ms = (idle + count * interval) * 1000
    server = (f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
              f"-c tcp_keepalives_count={count} -c tcp_user_timeout={timeout_ms}")
    given = sa.engine.make_url(url).query.get("options")
    if isinstance(given, tuple):
        given = " ".join(given)
    return {
        "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
        "keepalives_count": count, "tcp_user_timeout": timeout_ms,
        "connect_timeout": max(2, lease), "options": f"{given} {server}" if given else server,
    }


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_state_engine(url: str, lease_interval: timedelta) -> sa.Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    elif sa.engine.make_url(url).get_backend_name() == "postgresql":
        kwargs["connect_args"] = postgres_liveness(url, lease_interval)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine
