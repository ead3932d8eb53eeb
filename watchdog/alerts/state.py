"""Alert state in the state database: alerts, groups, the notification log, silences.

Tables live on `watchdog.state_schema.metadata` (listed in migrations.TABLE_MODULES).
A lifecycle step runs in one transaction that first takes the alerting lock row, so two
replicas never interleave their read-modify-write of the same groups.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..state_schema import UTCDateTime, metadata
from .lifecycle import State
from .values import Alert, Group, Matcher, NotifyLog, Silence

alerts_table = sa.Table(
    "watchdog_alerts",
    metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=True),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
)
groups_table = sa.Table(
    "watchdog_alert_groups",
    metadata,
    sa.Column("group_id", sa.String(40), primary_key=True),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("route_id", sa.String(255), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_flush", UTCDateTime(), nullable=True),
    sa.Column("seq", sa.Integer, nullable=False),
)
notify_log_table = sa.Table(
    "watchdog_notify_log",
    metadata,
    sa.Column("group_id", sa.String(40), primary_key=True),
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("firing", sa.Text, nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=False),
)
silences_table = sa.Table(
    "watchdog_silences",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
lock_table = sa.Table(
    "watchdog_alert_lock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ticks", sa.BigInteger, nullable=False),
)


def group_id(key: str) -> str:
    """Group keys are long label JSON; rows are keyed by a hash that fits any index."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the alerting lock (a row lock; SQLite's write lock)."""
    with engine.begin() as conn:
        bumped = conn.execute(
            lock_table.update().where(lock_table.c.id == 1).values(ticks=lock_table.c.ticks + 1))
        if not bumped.rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(lock_table.insert().values(id=1, ticks=1))
            except sa.exc.IntegrityError:
                conn.execute(lock_table.update().where(lock_table.c.id == 1)
                             .values(ticks=lock_table.c.ticks + 1))
        yield conn


# --- alerts, groups, log ------------------------------------------------------------------

def load_state(conn: Connection) -> State:
    alerts = {}
    for r in conn.execute(sa.select(alerts_table)):
        d = json.loads(r.details)
        alerts[r.fingerprint] = Alert(
            r.fingerprint, json.loads(r.labels), r.status, r.starts_at, r.ends_at, r.last_seen,
            d.get("kind", ""), d.get("observed", 0.0), d.get("expected", 0.0),
            d.get("window_seconds", 0.0), d.get("score", 0.0), d.get("summary", ""),
            Alert.contributors_from(d.get("contributors")), tuple(d.get("samples", ())))
    groups = {}
    keys: dict[str, str] = {}
    for r in conn.execute(sa.select(groups_table)):
        keys[r.group_id] = r.group_key
        groups[r.group_key] = Group(r.group_key, r.route_id, json.loads(r.labels), r.first_seen,
                                    r.last_flush, r.seq)
    log = {}
    for r in conn.execute(sa.select(notify_log_table)):
        key = keys.get(r.group_id)
        if key is not None:
            log[(key, r.channel)] = NotifyLog(key, r.channel, frozenset(json.loads(r.firing)),
                                              r.sent_at)
    return State(alerts, groups, log)


def save_state(conn: Connection, old: State, new: State) -> None:
    """Write the difference between two states."""
    _sync(conn, alerts_table, alerts_table.c.fingerprint, old.alerts, new.alerts,
          lambda fp, a: {"fingerprint": fp, "labels": _dumps(dict(a.labels)),
                         "status": a.status, "starts_at": a.starts_at, "ends_at": a.ends_at,
                         "last_seen": a.last_seen, "details": _dumps(a.details())})
    _sync(conn, groups_table, groups_table.c.group_id,
          {group_id(k): g for k, g in old.groups.items()},
          {group_id(k): g for k, g in new.groups.items()},
          lambda gid, g: {"group_id": gid, "group_key": g.key, "route_id": g.route_id,
                          "labels": _dumps(dict(g.labels)), "first_seen": g.first_seen,
                          "last_flush": g.last_flush, "seq": g.seq})
    old_log = {(group_id(k), c): e for (k, c), e in old.log.items()}
    new_log = {(group_id(k), c): e for (k, c), e in new.log.items()}
    t = notify_log_table
    for key in old_log.keys() - new_log.keys():
        conn.execute(t.delete().where(t.c.group_id == key[0], t.c.channel == key[1]))
    for key, e in new_log.items():
        if old_log.get(key) == e:
            continue
        values = {"firing": _dumps(sorted(e.firing)), "sent_at": e.sent_at}
        if key in old_log:
            conn.execute(t.update().where(t.c.group_id == key[0], t.c.channel == key[1])
                         .values(**values))
        else:
            conn.execute(t.insert().values(group_id=key[0], channel=key[1], **values))


def _sync(conn: Connection, table: sa.Table, pk: sa.Column[Any], old: Mapping[Any, Any],
          new: Mapping[Any, Any], row: Callable[[Any, Any], dict[str, Any]]) -> None:
    gone = [k for k in old if k not in new]
    if gone:
        conn.execute(table.delete().where(pk.in_(gone)))
    for k, v in new.items():
        if k not in old:
            conn.execute(table.insert().values(**row(k, v)))
        elif old[k] != v:
            conn.execute(table.update().where(pk == k).values(**row(k, v)))


# --- silences ---------------------------------------------------------------------------

def add_silence(conn: Connection, s: Silence) -> None:
    conn.execute(silences_table.insert().values(
        id=s.id, matchers=_dumps([[m.name, m.op, m.value] for m in s.matchers]),
        starts_at=s.starts_at, ends_at=s.ends_at, comment=s.comment, created_by=s.created_by,
        created_at=s.created_at or s.starts_at))


def load_silences(conn: Connection, active_at: datetime | None = None,
                  include_expired: bool = False) -> list[Silence]:
    q = sa.select(silences_table).order_by(silences_table.c.created_at, silences_table.c.id)
    if active_at is not None and not include_expired:
        q = q.where(silences_table.c.ends_at > active_at)
    return [
        Silence(r.id, tuple(Matcher(n, op, v) for n, op, v in json.loads(r.matchers)),
                r.starts_at, r.ends_at, r.comment, r.created_by, r.created_at)
        for r in conn.execute(q)
    ]


def expire_silence(conn: Connection, silence_id: str, now: datetime) -> bool:
    """End a silence now; False when no silence has that id (or id prefix)."""
    t = silences_table
    rows = conn.execute(sa.select(t.c.id).where(t.c.id.like(f"{silence_id}%"))).all()
    if len(rows) != 1:
        return False
    conn.execute(t.update().where(t.c.id == rows[0].id, t.c.ends_at > now).values(ends_at=now))
    return True
