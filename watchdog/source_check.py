"""`OrderSource.check()`: compare the source configuration with the real database.

Each function returns (problems, warnings). Problems make the source unusable and name
the config key to fix; warnings (a missing index) say which statement to run.
"""

from __future__ import annotations

import difflib
from typing import Any

import sqlalchemy as sa

from .config import SourceConfig

QUERY_COLUMNS = ("id", "status", "changed_at", "reason")


def check_table(conn: sa.Connection, cfg: SourceConfig) -> tuple[list[str], list[str]]:
    assert cfg.table is not None
    insp = sa.inspect(conn)
    table, schema = cfg.table, cfg.db_schema
    if not insp.has_table(table, schema=schema):
        tables = sorted(insp.get_table_names(schema=schema))
        shown = ", ".join(tables[:50]) + (" ..." if len(tables) > 50 else "")
        where = f" in schema {schema}" if schema else ""
        return [
            f"source.table: table {table!r} not found{where}; tables are: {shown or '(none)'}"
        ], []
    if conn.dialect.name in ("mysql", "mariadb"):
        # SHOW CREATE TABLE (SQLAlchemy's reflection) needs table-level privileges; the
        # information schema also works for a user granted only some columns.
        columns, leading = _mysql_columns_and_leading(conn, table, schema)
    else:
        columns = [c["name"] for c in insp.get_columns(table, schema=schema)]
        leading = _leading_columns(insp, table, schema)
    problems = []
    for key, column in _mapped_columns(cfg):
        if _find(column, columns, conn.dialect.name) is None:
            guess = difflib.get_close_matches(column, columns, n=1, cutoff=0.6)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.append(
                f'{key}: column "{column}" not found in table {table}{hint}; '
                f"columns are: {', '.join(columns)} (a user granted only some columns "
                "sees only those)"
            )
    if problems:
        return problems, []
    warnings = []
    cols = cfg.columns
    # An index that starts with changed_at is enough; (changed_at, id) is what we suggest
    # but not what we require. The poll is `changed_at >= :lo AND (changed_at > :hi OR
    # (changed_at = :hi AND id > :id)) ORDER BY changed_at, id LIMIT n` (source.py). The
    # id test sits inside an OR: PostgreSQL and SQLite use only `changed_at >= :lo` as
    # the index bound with either index (the rest is a filter), so both read the same
    # rows. The second column only saves ordering the rows of one changed_at by id,
    # and that is free or small without it: an InnoDB secondary index ends with the
    # primary key (MySQL/MariaDB then also seek on it), SQLite orders an index by rowid,
    # and PostgreSQL 13+ / SQLite sort just the groups of equal changed_at they read
    # (incremental sort, bounded by the page plus one group). Without a leading
    # changed_at, though, every poll reads the whole table: that is the warning.
    if _lower(cols.changed_at) not in leading:
        warnings.append(
            f"no index on {table} starts with {cols.changed_at}: every poll scans the whole "
            f"table. Create one: {_create_index(conn, cfg, [cols.changed_at, cols.id])}"
        )
    if cfg.count_orders and cols.created_at and _lower(cols.created_at) not in leading:
        warnings.append(
            f"no index on {table} starts with {cols.created_at}: counting new orders scans "
            f"the whole table. Create one: {_create_index(conn, cfg, [cols.created_at])}"
        )
    return [], warnings


def check_query(
    conn: sa.Connection, cfg: SourceConfig, probe: sa.Select[Any]
) -> tuple[list[str], list[str]]:
    """Run the custom query for zero rows and compare the columns it returns."""
    returned = list(conn.execute(probe).keys())
    required = [*QUERY_COLUMNS, *(d.column for d in cfg.dimensions.values())]
    missing = [name for name in dict.fromkeys(required) if name not in returned]
    if missing:
        names = ", ".join(f'"{m}"' for m in missing)
        return [
            f"source.query: the query does not return column(s) {names}; it returns: "
            f"{', '.join(returned)}. Alias them, e.g. `o.updated_at AS changed_at`"
        ], []
    warnings = []
    used = set(sa.text(cfg.query or "").compile().params)
    if "since_ts" not in used:
        warnings.append(
            "source.query does not use :since_ts; unless the database pushes the outer "
            "keyset condition into the query, every poll reads its whole result. Add e.g. "
            "`WHERE o.updated_at >= :since_ts`"
        )
    if "limit" in used and "since_id" not in used:
        warnings.append(
            "source.query uses :limit but not :since_id; a LIMIT inside the query can stall "
            "on more than :limit rows with the same changed_at. Remove it (the watchdog "
            "applies the limit) or apply the full keyset"
        )
    return [], warnings


def _leading_columns(insp: sa.Inspector, table: str, schema: str | None) -> set[str]:
    """Lower-cased first column of every index (and of the primary key)."""
    indexes = insp.get_indexes(table, schema=schema)
    pk = insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    leading = {_lower(ix["column_names"][0]) for ix in indexes if ix.get("column_names")}
    if pk:
        leading.add(_lower(pk[0]))
    return leading


def _mysql_columns_and_leading(
    conn: sa.Connection, table: str, schema: str | None
) -> tuple[list[str], set[str]]:
    where = "TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
    params = {"schema": schema, "table": table}
    columns = conn.execute(
        sa.text(f"SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE {where} "
                "ORDER BY ORDINAL_POSITION"),
        params,
    ).scalars().all()
    leading = conn.execute(
        sa.text(f"SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE {where} "
                "AND SEQ_IN_INDEX = 1"),
        params,
    ).scalars().all()
    return [str(c) for c in columns], {_lower(str(c)) for c in leading}


def _mapped_columns(cfg: SourceConfig) -> list[tuple[str, str]]:
    cols = cfg.columns
    mapped = [
        ("source.columns.id", cols.id),
        ("source.columns.status", cols.status),
        ("source.columns.changed_at", cols.changed_at),
    ]
    mapped += [(f"source.columns.reason[{i}]", r) for i, r in enumerate(cols.reason)]
    if cols.created_at:
        mapped.append(("source.columns.created_at", cols.created_at))
    mapped += [(f"source.dimensions.{n}.column", d.column) for n, d in cfg.dimensions.items()]
    return mapped


def _find(column: str, columns: list[str], dialect: str) -> str | None:
    if column in columns:
        return column
    if dialect != "postgresql":  # MySQL and SQLite column names ignore case
        return next((c for c in columns if c.lower() == column.lower()), None)
    # PostgreSQL folds unquoted names to lower case, and SQLAlchemy quotes mixed case.
    return None


def _lower(name: str | None) -> str:
    return (name or "").lower()


def _create_index(conn: sa.Connection, cfg: SourceConfig, columns: list[str]) -> str:
    """The CREATE INDEX statement to suggest, in the dialect's least disruptive form."""
    quote = conn.dialect.identifier_preparer.quote
    table = quote(cfg.table or "")
    if cfg.db_schema:
        table = f"{quote(cfg.db_schema)}.{table}"
    name = quote("ix_" + "_".join([cfg.table or "", *columns])[:60])
    cols = ", ".join(quote(c) for c in columns)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return f"CREATE INDEX CONCURRENTLY {name} ON {table} ({cols});"
    if dialect in ("mysql", "mariadb"):
        return f"CREATE INDEX {name} ON {table} ({cols}) ALGORITHM=INPLACE LOCK=NONE;"
    return f"CREATE INDEX {name} ON {table} ({cols});"
