"""The daily digest: yesterday's cancellations by category, carrier and top reasons,
against the day before, read from the state database's events. Reasons are ranked by
their template (`rules.normalise.reason_template`: numbers, phone and ID numbers folded).

`summarize` is pure; `queue_digest` puts one row per channel in the outbox under a key
naming the day, so restarts and replicas send each day's digest once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Engine

from ..alerts.config import DigestConfig
from ..model import EXCLUDE
from ..rules.normalise import reason_template
from ..store import StateStore, StoredEvent
from .channel import Digest
from .outbox import enqueue
from .render import format_delta

GRACE = timedelta(hours=1)
"""A digest whose time passed longer ago than this (daemon was down) is not sent late."""


def digest_due(cfg: DigestConfig, now: datetime) -> date | None:
    """The day to report on if the cron fired within GRACE before `now`."""
    zone = ZoneInfo(cfg.timezone)
    local = now.astimezone(zone)
    fired = croniter(cfg.cron, local + timedelta(microseconds=1)).get_prev(datetime)
    if now - fired.astimezone(UTC) > GRACE:
        return None
    return fired.date() - timedelta(days=1)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def _ranked(now: Counter[str], before: Counter[str], top: int) -> list[dict[str, Any]]:
    keys = [k for k, _ in now.most_common(top)]
    return [{"key": k, "count": now[k], "prev": before.get(k, 0),
             "delta": format_delta(now[k], before.get(k, 0))} for k in keys]


def _tally(events: Iterable[StoredEvent]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    cats: Counter[str] = Counter()
    carriers: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for e in events:
        if e.category == EXCLUDE:
            continue
        cats[e.category] += 1
        carrier = e.dimensions.get("carrier")
        if carrier:
            carriers[carrier] += 1
        # One wording is one reason, whatever phone, ID or order number it names: the
        # template the detector and `rules coverage` group unknown reasons by.
        template = reason_template(e.reason)
        if template:
            reasons[template] += 1
    return cats, carriers, reasons


def summarize(day: date, events: Iterable[StoredEvent], before: Iterable[StoredEvent],
              top: int = 5) -> dict[str, Any]:
    """Template context of a digest (JSON-able; reasons are already masked in events)."""
    c1, k1, r1 = _tally(events)
    c0, k0, r0 = _tally(before)
    total, prev = sum(c1.values()), sum(c0.values())
    return {
        "day": day.isoformat(), "total": total, "prev_total": prev,
        "total_delta": format_delta(total, prev),
        "categories": _ranked(c1, c0, 50), "carriers": _ranked(k1, k0, top),
        "reasons": _ranked(r1, r0, top),
    }


def queue_digest(engine: Engine, cfg: DigestConfig, day: date, now: datetime,
                 deadline: timedelta) -> int:
    """Queue the digest of `day` for every digest channel not yet queued; returns how many."""
    zone = ZoneInfo(cfg.timezone)
    store = StateStore(engine)
    since, until = day_bounds(day, zone)
    before_since, _ = day_bounds(day - timedelta(days=1), zone)
    ctx = summarize(day, store.events(since, until), store.events(before_since, since), cfg.top)
    queued = 0
    with engine.begin() as conn:
        for channel in cfg.channels:
            try:
                with conn.begin_nested():
                    queued += enqueue(conn, [(f"digest:{day.isoformat()}:{channel}",
                                              f"digest:{day.isoformat()}",
                                              Digest(day.isoformat(), ctx), None)],
                                      now, deadline)
            except sa.exc.IntegrityError:
                continue  # already queued by an earlier run or another replica
    return queued
