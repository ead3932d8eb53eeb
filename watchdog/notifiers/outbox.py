"""The durable outbox: a message is written before it is sent, marked per URL after.

A lifecycle step inserts its notifications in the same transaction as the alert state,
so a crash loses nothing; a crash during a send re-sends at most the items whose lease
was held (in flight), once the lease runs out: at least once for those, as the receiver
may have got the interrupted request. The unique `dedupe` key makes a second replica (or a retried
step) unable to queue the same flush twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..alerts.state import group_id
from ..alerts.values import Alert, Notification
from ..state_schema import UTCDateTime, metadata
from .channel import Deliverable, Digest

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

outbox_table = sa.Table(
    "watchdog_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("dedupe", sa.String(255), nullable=False, unique=True),
    sa.Column("flush_key", sa.String(191), nullable=False, index=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("done_urls", sa.String(255), nullable=False, default="[]"),
    sa.Column("fallback", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("deadline_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_until", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_watchdog_outbox_due", "status", "next_attempt_at"),
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    dedupe: str
    flush_key: str
    channel: str
    item: Deliverable
    attempts: int
    done_urls: frozenset[int]
    fallback: str | None
    created_at: datetime
    deadline_at: datetime


# --- (de)serialisation ------------------------------------------------------------------

def _alert_doc(a: Alert) -> dict[str, Any]:
    return {"fp": a.fingerprint, "labels": dict(a.labels), "status": a.status,
            "starts_at": a.starts_at.isoformat(),
            "ends_at": a.ends_at.isoformat() if a.ends_at else None,
            "last_seen": a.last_seen.isoformat(), **a.details()}


def _alert_from(d: dict[str, Any]) -> Alert:
    return Alert(
        d["fp"], d["labels"], d["status"], datetime.fromisoformat(d["starts_at"]),
        datetime.fromisoformat(d["ends_at"]) if d["ends_at"] else None,
        datetime.fromisoformat(d["last_seen"]), d.get("kind", ""), d.get("observed", 0.0),
        d.get("expected", 0.0), d.get("window_seconds", 0.0), d.get("score", 0.0),
        d.get("summary", ""), Alert.contributors_from(d.get("contributors")),
        tuple(d.get("samples", ())))


def encode(item: Deliverable) -> tuple[str, str]:
    """(kind, JSON payload)."""
    if isinstance(item, Notification):
        doc = {"group_key": item.group_key, "seq": item.seq, "route_id": item.route_id,
               "status": item.status, "group_labels": dict(item.group_labels),
               "created_at": item.created_at.isoformat(), "fallback": item.fallback,
               "repeat_interval_s": item.repeat_interval_s,
               "group_since": item.group_since.isoformat() if item.group_since else None,
               "alerts": [_alert_doc(a) for a in item.alerts]}
        return "alert", json.dumps(doc, ensure_ascii=False)
    if isinstance(item, Digest):
        return "digest", json.dumps({"day": item.day, "context": item.context},
                                    ensure_ascii=False)
    raise TypeError(f"cannot queue {type(item).__name__}")


def decode(kind: str, channel: str, payload: str) -> Deliverable:
    d = json.loads(payload)
    if kind == "digest":
        return Digest(d["day"], d["context"])
    return Notification(
        d["group_key"], d["seq"], channel, d["route_id"], d["status"], d["group_labels"],
        tuple(_alert_from(a) for a in d["alerts"]), datetime.fromisoformat(d["created_at"]),
        d.get("fallback"), d.get("repeat_interval_s", 0.0),
        datetime.fromisoformat(d["group_since"]) if d.get("group_since") else None)


# --- writes inside a caller's transaction ---------------------------------------------------

def flush_key(n: Notification) -> str:
    """Names one flush of one group; a group that closes and reopens starts a new name."""
    since = f"{n.group_since.timestamp():.6f}" if n.group_since else "0"
    return f"{group_id(n.group_key)}:{since}:{n.seq}"


def enqueue(conn: Connection, items: Iterable[tuple[str, str, Deliverable, str | None]],
            now: datetime, deadline: timedelta) -> int:
    """Queue (dedupe key, flush key, item, fallback channel) rows; returns how many."""
    rows = []
    for dedupe, fkey, item, fallback in items:
        kind, payload = encode(item)
        channel = item.channel if isinstance(item, Notification) else dedupe.rsplit(":", 1)[-1]
        rows.append({"dedupe": dedupe, "flush_key": fkey, "channel": channel, "kind": kind,
                     "payload": payload, "status": PENDING, "attempts": 0, "done_urls": "[]",
                     "fallback": fallback, "created_at": now, "next_attempt_at": now,
                     "deadline_at": now + deadline})
    if rows:
        conn.execute(outbox_table.insert(), rows)
    return len(rows)


def notification_rows(notes: Sequence[Notification]
                      ) -> list[tuple[str, str, Deliverable, str | None]]:
    return [(f"{flush_key(n)}:{n.channel}", flush_key(n), n, n.fallback) for n in notes]


# --- the delivery side -----------------------------------------------------------------

class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int = 200) -> dict[str, list[OutboxRow]]:
        """Pending rows whose attempt is due and whose lease is free, per channel, oldest first."""
        t = outbox_table
        q = (sa.select(t).where(t.c.status == PENDING, t.c.next_attempt_at <= now,
                                sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
             .order_by(t.c.id).limit(limit))
        out: dict[str, list[OutboxRow]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out.setdefault(r.channel, []).append(_row(r))
        return out

    def claim(self, row_id: int, now: datetime, lease: timedelta) -> bool:
        """Take the row for one attempt; False if another worker holds it."""
        t = outbox_table
        with self.engine.begin() as conn:
            res = conn.execute(t.update().where(
                t.c.id == row_id, t.c.status == PENDING,
                sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
            ).values(claimed_until=now + lease, attempts=t.c.attempts + 1))
        return res.rowcount == 1

    def finish(self, row_id: int, status: str, now: datetime, done: Iterable[int],
               error: str | None = None, next_attempt_at: datetime | None = None) -> None:
        values: dict[str, Any] = {"status": status, "done_urls": json.dumps(sorted(done)),
                                  "claimed_until": None, "last_error": error}
        if status == PENDING:
            values["next_attempt_at"] = next_attempt_at or now
        else:
            values["finished_at"] = now
        with self.engine.begin() as conn:
            conn.execute(outbox_table.update().where(outbox_table.c.id == row_id).values(**values))

    def siblings(self, fkey: str) -> list[tuple[str, str, str | None]]:
        """(channel, status, fallback) of every row of one flush."""
        t = outbox_table
        with self.engine.connect() as conn:
            return [(r.channel, r.status, r.fallback) for r in conn.execute(
                sa.select(t.c.channel, t.c.status, t.c.fallback).where(t.c.flush_key == fkey))]

    def pending_count(self) -> int:
        t = outbox_table
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t)
                                .where(t.c.status == PENDING)).scalar_one()

    def rows(self, status: str | None = None) -> list[sa.Row[Any]]:
        t = outbox_table
        q = sa.select(t).order_by(t.c.id)
        if status:
            q = q.where(t.c.status == status)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def prune(self, before: datetime) -> int:
        t = outbox_table
        with self.engine.begin() as conn:
            res = conn.execute(t.delete().where(t.c.status != PENDING, t.c.finished_at < before))
        return res.rowcount or 0


def _row(r: Any) -> OutboxRow:
    return OutboxRow(r.id, r.dedupe, r.flush_key, r.channel,
                     decode(r.kind, r.channel, r.payload), r.attempts,
                     frozenset(json.loads(r.done_urls)), r.fallback, r.created_at, r.deadline_at)
