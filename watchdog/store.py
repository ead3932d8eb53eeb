"""The state database: the few transactions that touch it (its tables: state_schema.py,
its versions: migrations.py, its connections: state_engine.py).

Cursor, dedupe keys, classified events and counter totals are committed in one
transaction per batch, so a crash at any point followed by a restart counts every
cancellation exactly once. SQLite by default, PostgreSQL (or MySQL) for production.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from .model import Classified, Cursor
from .state_engine import create_state_engine
from .state_schema import (
    CounterKey,
    StateError,
    UTCDateTime,
    counters_table,
    cursor_table,
    events_table,
    label_values_table,
    seen_table,
)

LEASE_INTERVAL = timedelta(seconds=10)
"""The default of state.lease_interval."""
REASON_SAMPLE_CHARS = 300
_CHUNK = 500


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
        PostgreSQL (see `state_engine.postgres_liveness`)."""
        engine = create_state_engine(url, lease_interval)
        store = cls(engine)
        store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- schema -----------------------------------------------------------------------

    def migrate(self, version: int = SCHEMA_VERSION,
                migrations: Mapping[int, Callable[[Connection], None]] = MIGRATIONS,
                ) -> int | None:
        """Bring the state database to schema `version` (see `migrations.migrate`)."""
        return migrate(self.engine, version, migrations)

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
    cost more than the database itself during a catch-up. Here values of the few columns
    with a processor (timestamps) are converted per row and constants once; then psycopg
    COPYs the rows, other drivers get the INSERT compiled once.
    """
    dialect = conn.dialect
    names = [*columns, *constants]
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
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_rows(conn, table, names, params)
        return
    compiled = table.insert().compile(dialect=dialect, column_keys=names)
    if compiled.positional:
        order = [names.index(n) for n in compiled.positiontup or ()]
        conn.exec_driver_sql(compiled.string, [tuple(v[i] for i in order) for v in params])
    else:
        conn.exec_driver_sql(compiled.string, [dict(zip(names, v, strict=True))
                                               for v in params])


def _copy_rows(conn: Connection, table: sa.Table, names: Sequence[str],
               params: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: COPY the rows in, inside the batch's transaction. An INSERT per row,
    even pipelined, cost more per row than everything else of a catch-up together."""
    quote = conn.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(sql) as copy:
        for values in params:
            copy.write_row(values)


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
