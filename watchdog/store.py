"""The state database: tables and the few transactions that touch them.

Cursor, dedupe keys, classified events and counter totals are committed in one
transaction per batch, so a crash at any point followed by a restart counts every
cancellation exactly once. SQLite by default, PostgreSQL (or MySQL) for production.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .model import Classified, Cursor

log = structlog.get_logger("watchdog.store")

SCHEMA_VERSION = 1
"""The state schema this release writes. A change that existing databases must follow
(a new column, a changed key) bumps it and adds the step from the previous version to
MIGRATIONS; a new table needs no step (`migrate` creates missing tables)."""
MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {}
"""The step from schema version N to N + 1, keyed by N; it gets the migration's
connection (one transaction) and must leave the tables as version N + 1 defines them."""
MIGRATION_LOCK = 0x57444D47  # "WDMG": the PostgreSQL advisory lock key of `migrate`
LEASE_INTERVAL = timedelta(seconds=10)
"""The default of state.lease_interval."""
TABLE_MODULES: tuple[str, ...] = (
    "watchdog.alerts.state", "watchdog.notifiers.outbox", "watchdog.detect.state",
    "watchdog.order_minutes",
)
"""Modules defining further state tables on `metadata` (imported before create_all)."""
REASON_SAMPLE_CHARS = 300
_CHUNK = 500


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


@dataclass(frozen=True, slots=True)
class StoredEvent:
    order_id: str
    status: str
    category: str
    rule: str
    event_time: datetime
    dimensions: Mapping[str, str]
    reason: str | None


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one page of a poll commits together."""

    classified: Sequence[Classified]
    cursor: Cursor
    counters: Mapping[CounterKey, int]
    """Counter increments, computed by the caller for the *new* items only (see `new_keys`)."""
    admitted_labels: Iterable[tuple[str, str]] = ()
    reasons: Mapping[str, str | None] | None = None
    """Masked, shortened reason per order id, kept for alert samples."""


class StateStore:
    def __init__(self, engine: Engine, source_name: str = "default") -> None:
        self.engine = engine
        self.source_name = source_name

    @classmethod
    def open(cls, url: str, lease_interval: timedelta = LEASE_INTERVAL) -> StateStore:
        """Connect and migrate. `lease_interval` sets how fast a dead peer is noticed on
        PostgreSQL (see `postgres_liveness`)."""
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        elif sa.engine.make_url(url).get_backend_name() == "postgresql":
            kwargs["connect_args"] = postgres_liveness(url, lease_interval)
        engine = sa.create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- schema -----------------------------------------------------------------------

    def migrate(self, version: int = SCHEMA_VERSION,
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
            with self.engine.connect() as conn:
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
            raise StateError(f"state database {self.safe_url}: {_short(exc)}") from exc
        if found is not None and found < version:
            log.info("state_migrated", from_version=found, to_version=version)
        return found

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # --- reads ------------------------------------------------------------------------

    def load_cursor(self, name: str | None = None) -> Cursor | None:
        """The stored position of the main cursor, or of a named secondary one."""
        key = self._cursor_key(name)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(cursor_table).where(cursor_table.c.source == key)).first()
        if row is None:
            return None
        oid: Any = int(row.order_id) if row.id_is_int else row.order_id
        return Cursor(row.changed_at, oid)

    def counters(self) -> dict[CounterKey, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(counters_table)).all()
        return {(r.metric, tuple(sorted(json.loads(r.labels).items()))): r.value for r in rows}

    def admitted_labels(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for dim, value in conn.execute(sa.select(label_values_table)).all():
                out.setdefault(dim, set()).add(value)
        return out

    def events(self, since: datetime, until: datetime) -> Iterator[StoredEvent]:
        q = (
            sa.select(events_table)
            .where(events_table.c.event_time >= since, events_table.c.event_time < until)
            .order_by(events_table.c.event_time, events_table.c.id)
        )
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=2000).execute(q):
                yield StoredEvent(r.order_id, r.status, r.category, r.rule, r.event_time,
                                  json.loads(r.dimensions), r.reason)

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one()

    # --- the batch transaction --------------------------------------------------------

    def transaction(self, cursor_name: str | None = None) -> _Transaction:
        return _Transaction(self, self._cursor_key(cursor_name))

    def _cursor_key(self, name: str | None) -> str:
        return self.source_name if name is None else f"{self.source_name}:{name}"

    # --- housekeeping -----------------------------------------------------------------

    def prune(self, before: datetime) -> tuple[int, int]:
        """Drop events and dedupe keys older than `before`; returns (events, keys) removed."""
        with self.engine.begin() as conn:
            ev = conn.execute(events_table.delete().where(events_table.c.event_time < before))
            keys = conn.execute(seen_table.delete().where(seen_table.c.seen_at < before))
        return ev.rowcount or 0, keys.rowcount or 0

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


class _Transaction:
    """`with store.transaction() as tx: fresh = tx.new_keys(items); tx.write(batch, now)`.

    Commits on a clean exit, rolls back on an exception.
    """

    def __init__(self, store: StateStore, cursor_key: str) -> None:
        self.store = store
        self.cursor_key = cursor_key
        self._ctx = store.engine.begin()
        self.conn: Connection
        self._claimed = False
        """The seen keys were inserted by `new_keys` (PostgreSQL)."""

    def __enter__(self) -> _Transaction:
        self.conn = self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)

    def new_keys(self, items: Sequence[Classified],
                 now: datetime | None = None) -> list[Classified]:
        """The items whose (order id, status) was never seen; first occurrence in a batch.

        Selecting and writing in one transaction keeps a crash from splitting them; the
        primary key on seen keys is the backstop against a second writer. With `now` on
        PostgreSQL the keys are claimed here, in one `INSERT ... ON CONFLICT DO NOTHING
        RETURNING`, and `write` does not insert them again: a lookup by a list of ids
        lets the planner pick a sequential scan of the whole key table (it did, at 70 ms a
        page, while the table grew during a catch-up), a conflict check always uses the key.
        """
        unique: dict[tuple[str, str], Classified] = {}
        for c in items:
            unique.setdefault(c.cancellation.dedupe_key, c)
        if now is not None and self.conn.dialect.name == "postgresql" and unique:
            claimed = {tuple(r) for r in self.conn.execute(_PG_CLAIM, {
                "ids": [k[0] for k in unique], "statuses": [k[1] for k in unique],
                "seen_at": now})}
            self._claimed = True
            return [c for k, c in unique.items() if k in claimed]
        seen: set[tuple[str, str]] = set()
        ids = sorted({k[0] for k in unique})
        for i in range(0, len(ids), _CHUNK):
            rows = self.conn.execute(
                sa.select(seen_table.c.order_id, seen_table.c.status).where(
                    seen_table.c.order_id.in_(ids[i : i + _CHUNK])
                )
            )
            seen.update((r.order_id, r.status) for r in rows)
        return [c for k, c in unique.items() if k not in seen]

    def write(self, batch: Batch, now: datetime) -> None:
        conn = self.conn
        reasons = batch.reasons or {}
        if batch.classified:
            dimensions = _DimensionsJSON()
            if not self._claimed:
                _insert_rows(conn, seen_table, [
                    (c.cancellation.order_id, c.cancellation.status)
                    for c in batch.classified], ("order_id", "status"), {"seen_at": now})
            _insert_rows(
                conn, events_table,
                [
                    (
                        c.cancellation.order_id, c.cancellation.status, c.verdict.category,
                        c.verdict.rule, c.cancellation.event_time,
                        dimensions(c.cancellation.dimensions),
                        reasons.get(c.cancellation.order_id),
                    )
                    for c in batch.classified
                ],
                ("order_id", "status", "category", "rule", "event_time", "dimensions",
                 "reason"),
                {"ingested_at": now},
            )
        admitted = [{"dimension": d, "value": v} for d, v in batch.admitted_labels]
        if admitted:
            _insert_missing(conn, label_values_table, admitted)
        if batch.counters:
            _increment(conn, batch.counters)
        _set_cursor(conn, self.cursor_key, batch.cursor)


_PG_CLAIM = sa.text(
    f"INSERT INTO {seen_table.name} (order_id, status, seen_at) "
    "SELECT k.order_id, k.status, :seen_at "
    "FROM unnest(CAST(:ids AS varchar[]), CAST(:statuses AS varchar[])) AS k(order_id, status) "
    "ON CONFLICT DO NOTHING RETURNING order_id, status"
).bindparams(sa.bindparam("seen_at", type_=UTCDateTime()))


def _insert_rows(conn: Connection, table: sa.Table, rows: Sequence[tuple[Any, ...]],
                 columns: Sequence[str], constants: Mapping[str, Any]) -> None:
    """executemany straight to the driver: one row per tuple of `columns`, plus `constants`.

    SQLAlchemy's executemany runs its type processing for every value of every row, which
    cost more than the database itself during a catch-up. Here the statement is compiled
    once, values of the few columns with a processor (timestamps) are converted per row,
    and constants once.
    """
    dialect = conn.dialect
    names = [*columns, *constants]
    compiled = table.insert().compile(dialect=dialect, column_keys=names)
    procs = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in columns]
    fixed = []
    for n, v in constants.items():
        proc = table.c[n].type.dialect_impl(dialect).bind_processor(dialect)
        fixed.append(proc(v) if proc else v)
    converting = [(i, p) for i, p in enumerate(procs) if p is not None]
    params: list[Any] = []
    for row in rows:
        values = list(row)
        for i, proc in converting:
            values[i] = proc(values[i])
        values.extend(fixed)
        params.append(values)
    if compiled.positional:
        order = [names.index(n) for n in compiled.positiontup or ()]
        conn.exec_driver_sql(compiled.string, [tuple(v[i] for i in order) for v in params])
    else:
        conn.exec_driver_sql(compiled.string, [dict(zip(names, v, strict=True))
                                               for v in params])


class _DimensionsJSON:
    """Dimension mappings as stored JSON, each distinct one encoded once per batch."""

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
        self._done: dict[tuple[tuple[str, str], ...], str] = {}

    def __call__(self, dims: Mapping[str, str]) -> str:
        key = tuple(dims.items())
        text = self._done.get(key)
        if text is None:
            text = self._done[key] = self._encode(dict(dims))
        return text


def _set_cursor(conn: Connection, source: str, cursor: Cursor) -> None:
    values = {
        "changed_at": cursor.changed_at,
        "order_id": str(cursor.order_id),
        "id_is_int": isinstance(cursor.order_id, int),
    }
    updated = conn.execute(
        cursor_table.update().where(cursor_table.c.source == source).values(**values)
    )
    if not updated.rowcount:
        conn.execute(cursor_table.insert().values(source=source, **values))


def _insert_missing(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose primary key is not there yet (another replica may have)."""
    name = conn.dialect.name
    if name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = table.insert().prefix_with("IGNORE")
    conn.execute(stmt, rows)


def _increment(conn: Connection, deltas: Mapping[CounterKey, int]) -> None:
    rows = [
        {"metric": metric, "labels": json.dumps(dict(labels), ensure_ascii=False, sort_keys=True),
         "value": n}
        for (metric, labels), n in deltas.items()
        if n
    ]
    if not rows:
        return
    name = conn.dialect.name
    t = counters_table
    if name in ("sqlite", "postgresql"):
        ins = (sqlite.insert(t) if name == "sqlite" else postgresql.insert(t))
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.metric, t.c.labels], set_={"value": t.c.value + ins.excluded.value}
        )
    elif name in ("mysql", "mariadb"):
        ins = mysql.insert(t)
        stmt = ins.on_duplicate_key_update(value=t.c.value + ins.inserted.value)
    else:  # pragma: no cover - other dialects are not supported for state
        raise StateError(f"unsupported state database dialect {name}")
    conn.execute(stmt, rows)


def _stamped_version(conn: Connection) -> int | None:
    """The schema version the state database is stamped with; None when it is empty."""
    if not sa.inspect(conn).has_table(meta_table.name):
        return None
    found = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
    return None if found is None else int(found)


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


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
