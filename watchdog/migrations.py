"""State schema versions: the stamp, ordered migration steps, and the lock that makes
replicas starting together take turns."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from .state_schema import StateError, meta_table, metadata

log = structlog.get_logger("watchdog.store")

SCHEMA_VERSION = 1
"""The state schema this release writes. A change that existing databases must follow
(a new column, a changed key) bumps it and adds the step from the previous version to
MIGRATIONS; a new table needs no step (`migrate` creates missing tables)."""
MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {}
"""The step from schema version N to N + 1, keyed by N; it gets the migration's
connection (one transaction) and must leave the tables as version N + 1 defines them."""
MIGRATION_LOCK = 0x57444D47  # "WDMG": the PostgreSQL advisory lock key of `migrate`
TABLE_MODULES: tuple[str, ...] = (
    "watchdog.alerts.state", "watchdog.notifiers.outbox", "watchdog.detect.state",
    "watchdog.order_minutes",
)
"""Modules defining further state tables on `metadata` (imported before create_all)."""


def migrate(engine: Engine, version: int = SCHEMA_VERSION,
        migrations: Mapping[int, Callable[[Connection], None]] = MIGRATIONS,
        ) -> int | None:
    """Bring the state database to schema `version`; returns the version it was
    stamped with (None: it was empty).

    In one transaction: an empty database gets every table and the version stamp; an
    older one runs the steps of `migrations` from its version up, in order, then gets
    the tables it still lacks and the new stamp; a newer one is refused, so a
    downgrade cannot corrupt it. Replicas starting together take turns: on
    PostgreSQL through a transaction-scoped advisory lock, on SQLite through an
    immediate (write-locking) transaction. (MySQL/MariaDB commit every DDL statement
    on its own: a step that fails there may be half done; restore the backup.)

    Modules that keep state of their own (detection, alerts) define their tables on
    this module's `metadata` and are listed in TABLE_MODULES, so one create_all sees
    every table.
    """
    for module in TABLE_MODULES:
        importlib.import_module(module)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": MIGRATION_LOCK})
            found = _stamped_version(conn)
            if found is not None and found > version:
                raise StateError(
                    f"state database schema version {found} is newer than this release "
                    f"supports ({version}); upgrade cancel-watchdog"
                )
            if found is not None and found < version:
                for step in range(found, version):
                    if step not in migrations:
                        raise StateError(
                            f"state database schema version {found} cannot be migrated "
                            f"to {version}: no step from version {step}; upgrade "
                            "through an intermediate release")
                    migrations[step](conn)
            metadata.create_all(conn)
            if found is None:
                conn.execute(meta_table.insert().values(key="schema_version",
                                                        value=str(version)))
            elif found < version:
                conn.execute(meta_table.update()
                             .where(meta_table.c.key == "schema_version")
                             .values(value=str(version)))
            conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        safe_url = engine.url.render_as_string(hide_password=True)
        raise StateError(f"state database {safe_url}: {short_error(exc)}") from exc
    if found is not None and found < version:
        log.info("state_migrated", from_version=found, to_version=version)
    return found


def _stamped_version(conn: Connection) -> int | None:
    """The schema version the state database is stamped with; None when it is empty."""
    if not sa.inspect(conn).has_table(meta_table.name):
        return None
    found = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
    return None if found is None else int(found)


def short_error(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
