"""The state database's own tables, and the types every state table uses.

Tables of other modules (detection, alerts, outbox, order minutes) live on the same
`metadata`; `migrations.TABLE_MODULES` lists them so one create_all sees every table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql


class StateError(Exception):
    """The state database cannot be used (unreachable, read-only, newer schema...)."""


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite/PostgreSQL/MySQL), read back aware."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        # MySQL's plain DATETIME drops microseconds; the cursor needs them exact.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

metadata = sa.MetaData()

meta_table = sa.Table(
    "watchdog_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)
cursor_table = sa.Table(
    "watchdog_cursor",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("id_is_int", sa.Boolean, nullable=False),
)
seen_table = sa.Table(
    "watchdog_seen",
    metadata,
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(64), primary_key=True),
    sa.Column("seen_at", UTCDateTime(), nullable=False, index=True),
)
events_table = sa.Table(
    "watchdog_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("event_time", UTCDateTime(), nullable=False, index=True),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    sa.Column("dimensions", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)
counters_table = sa.Table(
    "watchdog_counters",
    metadata,
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("labels", sa.String(512), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
label_values_table = sa.Table(
    "watchdog_label_values",
    metadata,
    sa.Column("dimension", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
)

CounterKey = tuple[str, tuple[tuple[str, str], ...]]
"""(metric name, sorted label pairs)."""
