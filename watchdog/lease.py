"""Leadership among replicas that share one state database.

Exactly one replica polls and sends. On PostgreSQL the leader holds a session-level
advisory lock on a dedicated connection: if the process dies, even by SIGKILL, the server
drops the connection and the lock with it, and a standby's next attempt takes over. On
MySQL/MariaDB `GET_LOCK` gives the same semantics. SQLite cannot be shared between hosts,
so there a file lock makes a second instance refuse to start instead.

Counting stays exactly-once even if two replicas briefly both believe they lead: the
dedupe keys' primary key makes one of two racing commits fail and retry.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine, make_url

log = structlog.get_logger("watchdog.lease")

LOCK_NAME = "cancel-watchdog-leader"


class AlreadyRunning(Exception):
    """Another process holds the SQLite state database."""


class Lease(Protocol):
    def try_acquire(self) -> bool:
        """Become or stay leader if possible; True while this process leads."""

    def release(self) -> None: ...


class DatabaseLease:
    """A server-side session lock held on one dedicated connection."""

    def __init__(self, engine: Engine, name: str = LOCK_NAME) -> None:
        self.engine = engine
        self.name = name
        self.key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            if self._still_held():
                return True
            self._drop()
            log.warning("leadership_lost")
        try:
            conn = self.engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("lease_unavailable", error=str(exc.orig or exc)[:200])
            return False
        try:
            got = bool(conn.execute(self._acquire_sql(conn), self._params()).scalar())
            conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            conn.close()
            log.warning("lease_unavailable", error=str(exc.orig or exc)[:200])
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("leadership_acquired")
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            release = ("SELECT pg_advisory_unlock(:key)" if self._is_pg(self._conn)
                       else "SELECT RELEASE_LOCK(:name)")
            self._conn.execute(sa.text(release), self._params())
            self._conn.commit()
        except sa.exc.SQLAlchemyError:
            pass  # closing the session releases it anyway
        self._drop()

    def _still_held(self) -> bool:
        assert self._conn is not None
        try:
            if self._is_pg(self._conn):
                held = self._conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :key AND pid = pg_backend_pid() AND granted"),
                    self._params()).scalar()
            else:
                held = self._conn.execute(
                    sa.text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"),
                    self._params()).scalar()
            self._conn.commit()
            return bool(held)
        except sa.exc.SQLAlchemyError:
            return False

    def _acquire_sql(self, conn: Connection) -> sa.TextClause:
        if self._is_pg(conn):
            return sa.text("SELECT pg_try_advisory_lock(:key)")
        return sa.text("SELECT GET_LOCK(:name, 0)")

    def _params(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name}

    @staticmethod
    def _is_pg(conn: Connection) -> bool:
        return conn.dialect.name == "postgresql"

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
        self._conn = None


class FileLease:
    """SQLite state: one process per state file, refused at start otherwise."""

    def __init__(self, database: str) -> None:
        self.path = Path(f"{Path(database).resolve()}.lock")
        self._handle: Any = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise AlreadyRunning(
                f"another cancel-watchdog (pid {pid}) is using the state database "
                f"{self.path.with_suffix('')}; stop it first, or give this instance its own "
                "state.url (use PostgreSQL for several replicas)"
            ) from exc
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class SoleLease:
    """An in-memory SQLite state database: nothing to share, always leader."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def lease_for(engine: Engine) -> Lease:
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return SoleLease()
        return FileLease(url.database)
    return DatabaseLease(engine)
