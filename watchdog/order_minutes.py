"""New-order counts that stay exact when orders are committed late.

An order row can turn visible up to `source.overlap` after its `created_at`: a count of
[last poll, now) would miss it for good once its minute was counted. So every poll counts
again, per minute of creation and label values, every minute from `now - overlap` on, and
credits only what grew since the last count of that minute. What was credited per minute
is kept here, written in the same transaction as the counters it fed: a crash or a
restart neither loses an order nor counts one twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .model import OrderCount
from .state_schema import UTCDateTime, metadata

order_minutes_table = sa.Table(
    "watchdog_order_minutes",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("minute", UTCDateTime(), primary_key=True),
    sa.Column("labels", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

Key = tuple[datetime, str]
"""(UTC minute, digest of the label values; or of the `count_orders_by` values, marked)."""
_MARK = ""


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def credit(counts: Sequence[OrderCount],
           credited: Mapping[Key, int]) -> tuple[list[OrderCount], dict[Key, int]]:
    """(what to count now, the per-minute totals that changed).

    `counts` are today's totals per minute and labels; `credited` what earlier polls
    counted of them. A total that shrank (a row deleted or re-dated) credits nothing and
    keeps the higher mark, so the row is not counted again if it comes back.
    """
    fresh: list[OrderCount] = []
    changed: dict[Key, int] = {}
    for oc in counts:
        if oc.minute is None:
            raise ValueError("order counts need their minute")
        key = (oc.minute, _digest(oc.dimensions, oc.count_by))
        before = credited.get(key, 0)
        if oc.count > before:
            fresh.append(OrderCount(oc.dimensions, oc.count - before, oc.minute, oc.count_by))
            changed[key] = oc.count
    return fresh, changed


def load(conn: Connection, source: str, since: datetime) -> dict[Key, int] | None:
    """What was credited per minute from `since` on; None when `source` never saved
    (a first start, or a state database from before this table)."""
    t = order_minutes_table
    rows = conn.execute(sa.select(t.c.minute, t.c.labels, t.c.n).where(
        t.c.source == source, sa.or_(t.c.minute >= since, t.c.labels == _MARK))).all()
    if not any(r.labels == _MARK for r in rows):
        return None
    return {(r.minute, r.labels): r.n for r in rows if r.labels != _MARK}


def save(conn: Connection, source: str, keep_from: datetime,
         changed: Mapping[Key, int]) -> None:
    """Store the changed totals and forget minutes before `keep_from`, which no later
    poll counts again. A mark row (no labels) records that `source` has saved, so that
    a quiet spell that leaves no minute behind still reads as "nothing credited"."""
    t = order_minutes_table
    conn.execute(t.delete().where(t.c.source == source,
                                  sa.or_(t.c.minute < keep_from, t.c.labels == _MARK)))
    changed = {k: n for k, n in changed.items() if k[0] >= keep_from}
    rows = {(keep_from, _MARK): 0, **changed}
    keys = [{"s": source, "m": m, "l": labels} for m, labels in changed]
    if keys:
        conn.execute(t.delete().where(t.c.source == sa.bindparam("s"),
                                      t.c.minute == sa.bindparam("m"),
                                      t.c.labels == sa.bindparam("l")), keys)
    conn.execute(t.insert(), [{"source": source, "minute": m, "labels": labels, "n": n}
                              for (m, labels), n in rows.items()])


def _digest(dims: Mapping[str, str], count_by: bool = False) -> str:
    # the count_orders_by grouping is credited apart from the label grouping (the same
    # orders counted twice); its key is marked, the label grouping's unchanged
    text = json.dumps(dict(dims), ensure_ascii=False, sort_keys=True)
    if count_by:
        text = "by:" + text
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

