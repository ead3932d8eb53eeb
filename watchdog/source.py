"""Reads new cancellations (and new-order counts) from the order database.

The order database is someone else's production database and strictly read-only to us.
A poll is a keyset-paginated range scan on the (changed_at, id) index, so its cost depends
on how many orders changed since the cursor, never on the size of the table.

Times: cursors and everything returned are UTC-aware. Naive database timestamps are local
time in `source.timezone`; bound parameters are converted back to that local time, so the
comparison happens in the column's own type and microseconds round-trip exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from sys import intern
from typing import Any

import sqlalchemy as sa
import structlog

from .config import SourceConfig
from .model import Cancellation, Cursor, OrderCount
from .readonly import create_readonly_engine
from .source_check import QUERY_COLUMNS, check_query, check_table
from .timeline import as_text, current_reason

log = structlog.get_logger("watchdog.source")

QUERY_ALIAS = "wd_q"
_FLOOR = datetime(1970, 1, 2, tzinfo=UTC)
"""`:since_ts` for a custom query reading from the beginning (a day in, so the local time
stays after 1970-01-01 in every zone)."""

_LONG_DIGITS = re.compile(r"\d{9,}")
_INTERNED_REASON_CHARS = 200


class SourceError(Exception):
    """The order database cannot be read; the message says what, where and what to do."""


class OrderSource:
    """Reads cancelled orders from one order database (table mode or custom query mode)."""

    def __init__(self, cfg: SourceConfig, engine: sa.Engine | None = None) -> None:
        self.cfg = cfg
        self.engine = engine if engine is not None else _build_engine(cfg)
        self._zone = cfg.zone
        # SQLite stores datetimes as text; binds must use the same separator to compare.
        self._sqlite_t_separator = False
        self.skipped_rows = 0
        """Rows read but skipped because their change time could not be read (a total)."""

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> OrderSource:
        """A source with its own read-only engine (timeouts, pool_pre_ping)."""
        return cls(cfg, _build_engine(cfg))

    @property
    def where(self) -> str:
        """The database URL with the password masked, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> OrderSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- cancellations -------------------------------------------------------------------

    def fetch_cancellations(self, after: Cursor | None, limit: int) -> list[Cancellation]:
        """Up to `limit` cancelled orders after `after`, in (changed_at, id) order.

        `after=None` reads from the beginning; `after.order_id=None` reads every row with
        `changed_at >= after.changed_at` (the look-back re-read). A row whose change time
        cannot be read is logged (by id only), counted in `skipped_rows` and skipped; a
        reason that cannot be read counts as none. Neither aborts the batch.
        """
        rows = self._run(self.fetch_statement(after, limit), "reading cancellations")
        out = []
        for row in rows:
            c = self._cancellation(row)
            if c is not None:
                out.append(c)
        return out

    def fetch_statement(self, after: Cursor | None, limit: int) -> sa.Select[Any]:
        """The SELECT behind `fetch_cancellations`, with its parameters bound (for EXPLAIN)."""
        src = self._selectable(after, limit)
        c = self._columns(src)
        changed, oid = c["changed_at"], c["id"]
        stmt = sa.select(
            oid.label("wd_id"),
            c["status"].label("wd_status"),
            changed.label("wd_changed_at"),
            *(c[f"reason{i}"].label(f"wd_reason{i}") for i in range(self._reason_count)),
            *(c[f"dim:{name}"].label(f"wd_dim{i}") for i, name in enumerate(self.cfg.dimensions)),
        ).select_from(src)
        stmt = stmt.where(c["status"].in_(list(self.cfg.cancelled_statuses)))
        if after is not None:
            lo, hi = self._bind_time(after.changed_at)
            # The leading `changed_at >= lo` makes this an index range scan on every
            # database; the OR alone lets some planners walk the index from its start.
            condition = changed >= sa.bindparam("wd_lo", lo)
            if after.order_id is not None:
                same = changed == hi if lo is hi else changed <= hi
                condition = sa.and_(
                    condition,
                    sa.or_(
                        changed > sa.bindparam("wd_hi", hi),
                        sa.and_(same, oid > sa.bindparam("wd_after_id", after.order_id)),
                    ),
                )
            stmt = stmt.where(condition)
        return stmt.order_by(changed, oid).limit(limit)

    @property
    def _reason_count(self) -> int:
        return 1 if self.cfg.query else len(self.cfg.columns.reason)

    def _selectable(self, after: Cursor | None, limit: int) -> sa.FromClause:
        if not self.cfg.query:
            return self._table()
        since_ts = self._bind_time(after.changed_at if after else _FLOOR)[0]
        values: dict[str, Any] = {
            "since_ts": since_ts,
            "since_id": after.order_id if after else None,
            "limit": limit,
        }
        # A trailing `;` is natural at a SQL prompt but breaks the subquery.
        text = sa.text(self.cfg.query.strip().rstrip(";"))
        used = set(text.compile().params)
        binds = [sa.bindparam(k, v) for k, v in values.items() if k in used]
        if "statuses" in used:
            binds.append(
                sa.bindparam("statuses", list(self.cfg.cancelled_statuses), expanding=True)
            )
        names = dict.fromkeys(
            [*QUERY_COLUMNS, *(d.column for d in self.cfg.dimensions.values())]
        )
        return (
            text.bindparams(*binds)
            .columns(*(sa.column(n) for n in names))
            .subquery(QUERY_ALIAS)
        )

    def _table(self) -> sa.TableClause:
        cols = self.cfg.columns
        names = [cols.id, cols.status, cols.changed_at, *cols.reason]
        names += [d.column for d in self.cfg.dimensions.values()]
        if cols.created_at:
            names.append(cols.created_at)
        assert self.cfg.table is not None  # config: table or query
        return sa.table(
            self.cfg.table, *(sa.column(n) for n in dict.fromkeys(names)),
            schema=self.cfg.db_schema,
        )

    def _columns(self, src: sa.FromClause) -> dict[str, sa.ColumnElement[Any]]:
        """Logical name -> column of `src` (the mapping differs between the two modes)."""
        if self.cfg.query:
            mapping = {"id": "id", "status": "status", "changed_at": "changed_at"}
            mapping["reason0"] = "reason"
        else:
            cols = self.cfg.columns
            mapping = {"id": cols.id, "status": cols.status, "changed_at": cols.changed_at}
            mapping.update({f"reason{i}": r for i, r in enumerate(cols.reason)})
            if cols.created_at:
                mapping["created_at"] = cols.created_at
        mapping.update({f"dim:{n}": d.column for n, d in self.cfg.dimensions.items()})
        return {key: src.c[name] for key, name in mapping.items()}

    def _cancellation(self, row: sa.Row[Any]) -> Cancellation | None:
        raw_id = _plain_id(row[0])
        try:
            changed_at = self._read_time(row[2])
        except Exception as exc:  # one broken row must not stop the others
            # Without a readable change time the row has no place in the stream: skipped,
            # counted (`skipped_rows`), logged by id. The message could quote row content;
            # the type is enough to investigate.
            self.skipped_rows += 1
            log.warning("row_skipped", order_id=str(raw_id), error=type(exc).__name__)
            return None
        try:
            texts = (as_text(v) for v in row[3 : 3 + self._reason_count])
            reason, event_time = current_reason(_first_reason(list(texts)), self._zone)
        except Exception as exc:
            # The cancellation still counts, as a reason nobody can read (unknown).
            log.warning("reason_unreadable", order_id=str(raw_id), error=type(exc).__name__)
            reason, event_time = None, None
        if reason is not None and len(reason) <= _INTERNED_REASON_CHARS:
            reason = intern(reason)
        first_dim = 3 + self._reason_count
        # Dimension values, statuses and short reasons repeat across rows: one shared
        # string per value keeps a poll's batch of cancellations (held for detection)
        # small. Interned strings are freed with their last reference.
        dims = {
            name: intern(as_text(row[first_dim + i]) or "")
            for i, name in enumerate(self.cfg.dimensions)
        }
        return Cancellation(
            order_id=str(raw_id),
            status=intern(as_text(row[1]) or ""),
            reason=reason,
            event_time=event_time or changed_at,
            changed_at=changed_at,
            dimensions=dims,
            raw_id=raw_id,
        )

    # -- new orders ----------------------------------------------------------------------

    def count_new_orders(self, since: datetime, until: datetime) -> list[OrderCount]:
        """Orders created in [since, until), per minute of creation (UTC) and per value of
        the dimensions with `label: true`; and, when `source.count_orders_by` names
        dimensions, once more per minute and value of those (`count_by` set).

        Per minute, so that the caller can count the same minutes again on the next poll
        and credit only what was committed late (see `order_minutes`). Returns [] unless
        `source.count_orders` is on. Needs table mode (the dimension columns of a custom
        query are aliases, not table columns).
        """
        if not self.cfg.count_orders:
            return []
        if self.cfg.query:
            raise SourceError(
                "source.count_orders: counting new orders reads source.table directly and "
                "is not available with source.query; set count_orders: false"
            )
        labelled = [n for n, d in self.cfg.dimensions.items() if d.label]
        out = self._count_orders_by(labelled, since, until, count_by=False)
        if self.cfg.count_orders_by:
            out += self._count_orders_by(list(self.cfg.count_orders_by), since, until,
                                         count_by=True)
        return out

    def _count_orders_by(self, names: list[str], since: datetime, until: datetime,
                         count_by: bool) -> list[OrderCount]:
        """One grouped count: per minute of creation and values of `names`."""
        table = self._table()
        created = table.c[self.cfg.columns.created_at or ""]
        dims = [table.c[self.cfg.dimensions[n].column] for n in names]
        minute = _minute_of(created, self.engine.dialect.name).label("wd_minute")
        stmt = (
            sa.select(minute, *dims, sa.func.count().label("n"))
            .select_from(table)
            .where(
                created >= sa.bindparam("wd_since", self._bind_time(since)[0]),
                created < sa.bindparam("wd_until", self._bind_time(until)[0]),
            )
            .group_by(minute, *dims)
        )
        totals: dict[tuple[Any, ...], int] = {}
        for row in self._run(stmt, "counting new orders"):
            # NULL and '' both become "": merge them.
            key = (self._utc(row[0]), *(as_text(v) or "" for v in row[1:-1]))
            totals[key] = totals.get(key, 0) + int(row[-1])
        return [
            OrderCount(dict(zip(names, key[1:], strict=True)), n, minute=key[0],
                       count_by=count_by)
            for key, n in totals.items() if n
        ]

    # -- check ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Verify the configuration against the database; return warnings.

        Raises SourceError for an unreachable database, a missing table or column, a
        custom query without the required columns, or a user without SELECT.
        """
        try:
            with self.engine.connect() as conn:
                self._prepare(conn)
                if self.cfg.query:
                    problems, warnings = check_query(conn, self.cfg, self._probe_statement())
                else:
                    problems, warnings = check_table(conn, self.cfg)
                if problems:
                    raise SourceError("\n".join(problems))
                # A real (tiny) poll proves SELECT privileges and the bound parameters.
                conn.execute(self.fetch_statement(Cursor(datetime.now(UTC), None), 1)).all()
                return warnings
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("checking the order table", exc) from exc

    def _probe_statement(self) -> sa.Select[Any]:
        """`SELECT * FROM (<query>) WHERE false`: the query's column names, no rows."""
        sub = self._selectable(Cursor(datetime.now(UTC), None), 1)
        return sa.select(sa.literal_column("*")).select_from(sub).where(sa.false())

    # -- plumbing ------------------------------------------------------------------------

    def _run(self, stmt: sa.Executable, what: str) -> list[sa.Row[Any]]:
        try:
            with self.engine.connect() as conn:
                self._prepare(conn)
                return list(conn.execute(stmt).all())
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(what, exc) from exc

    def _prepare(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Naive binds are read in the session zone (also for timestamptz columns), so
            # pin it per transaction: engines passed in or pgbouncer may not set it.
            conn.execute(
                sa.text("SELECT set_config('TimeZone', :tz, true)"), {"tz": self._zone.key}
            )

    def _bind_time(self, when: datetime) -> tuple[Any, Any]:
        """(lo, hi): the smallest and largest stored forms of the instant `when`.

        Server databases compare real timestamps, so both are the naive local time. SQLite
        compares text: `2024-05-01 10:00:00` (Python's sqlite3) and
        `2024-05-01 10:00:00.000000` (SQLAlchemy) are the same instant, and every string
        between them is a shorter spelling of it too.
        """
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        local = when.astimezone(self._zone).replace(tzinfo=None)
        if self.engine.dialect.name != "sqlite":
            return local, local
        sep = "T" if self._sqlite_t_separator else " "
        hi = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")
        return hi.rstrip("0").rstrip("."), hi

    def _read_time(self, value: Any) -> datetime:
        """A change time as UTC; SQLite text also sets the separator binds must use."""
        if isinstance(value, str):
            value = value.strip()
            self._sqlite_t_separator = len(value) > 10 and value[10] == "T"
        return self._utc(value)

    def _utc(self, value: Any) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            raise TypeError(f"change time is a {type(value).__name__}, not a timestamp")
        if value.tzinfo is None:
            value = value.replace(tzinfo=self._zone)
        return value.astimezone(UTC)

    def _error(self, what: str, exc: sa.exc.SQLAlchemyError) -> SourceError:
        return SourceError(f"{what} from {self.where} failed: {explain_error(exc, self.cfg)}")


def explain_error(exc: sa.exc.SQLAlchemyError, cfg: SourceConfig) -> str:
    """The driver's message (first line, long digit runs masked) and what to do."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    message = _LONG_DIGITS.sub("<digits>", message)
    lowered = message.lower()
    seconds = cfg.statement_timeout.total_seconds()
    if any(s in lowered for s in ("statement timeout", "max_statement_time", "execution time")):
        hint = (
            f"the query ran longer than source.statement_timeout ({seconds:g}s); run "
            "`cancel-watchdog check` for a missing index, or raise the timeout"
        )
    elif isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and any(
        s in lowered for s in ("connect", "connection", "unable to open", "can't", "refused")
    ):
        hint = "check source.url, that the server is up and reachable, and the credentials"
    elif "permission denied" in lowered or "command denied" in lowered:
        hint = "grant SELECT on the order table to the watchdog's user (see README)"
    else:
        hint = "run `cancel-watchdog check` to compare source.table/columns/query with the database"
    return f"{message}; {hint}"


def _minute_of(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """`column` cut to its minute, in the column's own (local) time.

    Every zone's offset is a whole number of minutes, so a local minute is a UTC minute.
    SQLite keeps timestamps as text: the first 16 characters are the minute.
    """
    if dialect == "postgresql":  # a literal: the GROUP BY must repeat the same expression
        return sa.func.date_trunc(sa.literal_column("'minute'"), column)
    if dialect in ("mysql", "mariadb"):
        return sa.func.date_format(column, "%Y-%m-%d %H:%i")
    return sa.func.substr(column, 1, 16)


def _first_reason(texts: Sequence[str | None]) -> str | None:
    """The first non-blank text; else the first non-NULL one (e.g. '' or spaces)."""
    for text in texts:
        if text is not None and text.strip():
            return text
    return next((t for t in texts if t is not None), None)


def _plain_id(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _build_engine(cfg: SourceConfig) -> sa.Engine:
    try:
        return create_readonly_engine(cfg.url, cfg.statement_timeout.total_seconds(), cfg.zone)
    except sa.exc.NoSuchModuleError as exc:
        raise SourceError(
            f"source.url: {exc}; write e.g. postgresql+psycopg://user@host/db"
        ) from exc
    except (sa.exc.ArgumentError, ValueError):
        # The parse error quotes the whole URL, password included: leave it out.
        raise SourceError(
            "source.url: not a valid SQLAlchemy URL; write e.g. "
            "postgresql+psycopg://user:password@host:5432/db or "
            "mysql+pymysql://user:password@host:3306/db?charset=utf8mb4"
        ) from None
    except ImportError as exc:
        raise SourceError(
            f"source.url: the database driver is not installed ({exc.name}); install "
            "cancel-watchdog[postgres] or cancel-watchdog[mysql]"
        ) from exc
