"""Engines for the order database: read-only sessions with statement timeouts.

The order database belongs to someone else and is usually production. Every session the
watchdog opens is read-only at the database level (not only by our good intentions), and
every statement is bounded in time, so a missing index or a lock can never turn a poll
into load on the platform.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy import event

log = structlog.get_logger("watchdog.source")

CONNECT_TIMEOUT_SECONDS = 10


def create_readonly_engine(
    url: str | sa.URL, statement_timeout_s: float, zone: ZoneInfo
) -> sa.Engine:
    """An engine whose sessions cannot write and whose statements time out.

    - PostgreSQL: `default_transaction_read_only=on`, `statement_timeout` and `TimeZone`
      as connection options (libpq `options`).
    - MariaDB/MySQL: `SET SESSION TRANSACTION READ ONLY` and `max_statement_time`
      (MariaDB, seconds) or `max_execution_time` (MySQL, milliseconds) on connect.
    - SQLite: a file opens with `mode=ro`; every connection also gets `query_only`.
    Raises sqlalchemy/driver errors for an unusable URL; the caller turns them into
    SourceError.
    """
    url = sa.make_url(url)
    backend = url.get_backend_name()
    timeout_ms = max(1, int(statement_timeout_s * 1000))
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        options = [
            "-c default_transaction_read_only=on",
            f"-c statement_timeout={timeout_ms}",
            f"-c TimeZone={zone.key}",
        ]
        extra = url.query.get("options")
        if isinstance(extra, str):
            options.insert(0, extra)
            url = url.difference_update_query(["options"])
        connect_args = {
            "options": " ".join(options),
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "cancel-watchdog",
        }
    elif backend in ("mysql", "mariadb"):
        if url.get_driver_name() in ("pymysql", "mysqldb"):
            # The client-side read timeout is a last resort if the server ignores ours.
            connect_args = {
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "read_timeout": int(statement_timeout_s) + 30,
            }
        # MySQL closes idle connections after wait_timeout (often 8 h, sometimes minutes).
        kwargs["pool_recycle"] = 1800
    elif backend == "sqlite":
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            uri = Path(database).absolute().as_uri() + "?mode=ro"
            kwargs["creator"] = lambda: sqlite3.connect(
                uri, uri=True, timeout=statement_timeout_s, check_same_thread=False
            )
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    if backend in ("mysql", "mariadb"):
        event.listen(engine, "connect", _mysql_session(statement_timeout_s, zone))
    elif backend == "sqlite":
        event.listen(engine, "connect", _sqlite_query_only)
    return engine


def _mysql_session(statement_timeout_s: float, zone: ZoneInfo) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        try:
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
            if "mariadb" in version.lower():
                cur.execute(f"SET SESSION max_statement_time = {float(statement_timeout_s):g}")
            else:
                # Applies to read-only SELECTs only, which is all we run.
                cur.execute(f"SET SESSION max_execution_time = {int(statement_timeout_s * 1000)}")
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            _set_mysql_time_zone(cur, zone)
        finally:
            cur.close()

    return on_connect


def _set_mysql_time_zone(cur: Any, zone: ZoneInfo) -> None:
    """TIMESTAMP columns are returned in the session time zone; make it `zone` so they read
    like DATETIME columns. Named zones need the server's time zone tables."""
    for value in (zone.key, mysql_time_zone(zone)):
        if value is None:
            continue
        try:
            cur.execute("SET time_zone = %s", (value,))
            return
        except Exception:  # unknown zone name: try the next form
            continue
    log.warning("mysql_time_zone_unset", zone=zone.key,
                hint="load the server's time zone tables (mysql_tzinfo_to_sql)")


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA query_only = ON")
    finally:
        cur.close()


def mysql_time_zone(zone: ZoneInfo) -> str | None:
    """A fixed `+08:00` offset for zones without DST (MySQL without time zone tables
    accepts only offsets), else None: then the named zone must be loaded on the server."""
    year = datetime.now().year
    winter = datetime(year, 1, 1, tzinfo=zone).utcoffset()
    summer = datetime(year, 7, 1, tzinfo=zone).utcoffset()
    if winter is None or winter != summer:
        return None
    minutes = int(winter.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
