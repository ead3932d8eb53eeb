"""Detector state in the state database: baselines, value rankings, templates, episodes,
and (in the meta table) the silence values' usual longest gaps and the volume table's
learned shares (volumes.py; its per-minute counts are not saved: orders are not refilled
after a restart, so the volume test is blind until its windows have filled again).

Saved after evaluations (only what changed, plus the small tables whole), loaded at
start; then the last hour of classified events (already in watchdog_events) refills the
in-memory windows. A restart therefore neither forgets baselines nor re-fires an open
episode.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Cancellation, Classified, Contributor, Signal, Verdict
from ..state_schema import UTCDateTime, metadata
from ..store import StoredEvent
from .baseline import Baseline
from .detector import Detector
from .episodes import Episode
from .series import Series, SeriesKey
from .templates import TEMPLATE_KEY

_CHUNK = 400
VALUE_CHARS = 255

series_table = sa.Table(
    "watchdog_detect_series",
    metadata,
    sa.Column("category", sa.String(64), primary_key=True),
    sa.Column("dimension", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(VALUE_CHARS), primary_key=True),
    sa.Column("baseline", sa.LargeBinary, nullable=False),
    sa.Column("learned_until", sa.BigInteger, nullable=False),
    sa.Column("hour_acc", sa.Float, nullable=False),
    sa.Column("hour_slots", sa.Integer, nullable=False),
)
values_table = sa.Table(
    "watchdog_detect_values",
    metadata,
    sa.Column("dimension", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(VALUE_CHARS), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("admitted", sa.Boolean, nullable=False),
)
templates_table = sa.Table(
    "watchdog_detect_templates",
    metadata,
    sa.Column("hash", sa.String(16), primary_key=True),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
)
episodes_table = sa.Table(
    "watchdog_detect_episodes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)
detect_meta_table = sa.Table(
    "watchdog_detect_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


# --- save -------------------------------------------------------------------------------

def save_detector(engine: Engine, d: Detector, *, full: bool = False) -> int:
    """Write what changed since the last save (everything with `full`, e.g. into another
    database) in one transaction; returns the series written."""
    dirty = list(d.series) if full else [k for k in d.dirty if k in d.series]
    if full:
        d.templates.dirty.update(d.templates.known)
    with engine.begin() as conn:
        gone = list(d.removed) + dirty
        _delete_series(conn, gone)
        rows = [_series_row(d.series[k]) for k in dirty]
        for i in range(0, len(rows), _CHUNK):
            conn.execute(series_table.insert(), rows[i:i + _CHUNK])
        conn.execute(values_table.delete())
        vrows = [{"dimension": dim, "value": v[:VALUE_CHARS], "score": s,
                  "admitted": v in tk.admitted}
                 for dim, tk in d.topk.items() for v, s in tk.scores.items()]
        vrows = list({(r["dimension"], r["value"]): r for r in vrows}.values())
        for i in range(0, len(vrows), _CHUNK):
            conn.execute(values_table.insert(), vrows[i:i + _CHUNK])
        _save_templates(conn, d)
        conn.execute(episodes_table.delete())
        erows = [{"id": ep.id, "kind": ep.kind, "started_at": ep.started_at,
                  "state": json.dumps(_episode_json(ep), ensure_ascii=False)}
                 for ep in d.episodes.items.values()]
        if erows:
            conn.execute(episodes_table.insert(), erows)
        conn.execute(detect_meta_table.delete())
        conn.execute(detect_meta_table.insert(), [
            {"key": k, "value": json.dumps(v, ensure_ascii=False)} for k, v in _meta(d).items()
        ])
    d.dirty.clear()
    d.removed.clear()
    return len(rows)


def _delete_series(conn: Connection, keys: Iterable[SeriesKey]) -> None:
    keys = list(keys)
    t = series_table
    for i in range(0, len(keys), _CHUNK):
        conn.execute(t.delete().where(sa.tuple_(t.c.category, t.c.dimension, t.c.value).in_(
            [(c, dim, v[:VALUE_CHARS]) for c, dim, v in keys[i:i + _CHUNK]])))


def _series_row(s: Series) -> dict[str, Any]:
    c, dim, v = s.key
    return {"category": c, "dimension": dim, "value": v[:VALUE_CHARS],
            "baseline": s.baseline.to_bytes(), "learned_until": s.learned_until,
            "hour_acc": s.hour_acc, "hour_slots": s.hour_slots}


def _save_templates(conn: Connection, d: Detector) -> None:
    t = d.templates
    if t.purge:
        conn.execute(templates_table.delete())
        t.dirty.update(t.known)
        t.purge = False
    dirty = [h for h in t.dirty if h in t.known]
    for i in range(0, len(dirty), _CHUNK):
        part = dirty[i:i + _CHUNK]
        conn.execute(templates_table.delete().where(templates_table.c.hash.in_(part)))
        conn.execute(templates_table.insert(), [{"hash": h, "last_seen": t.known[h]}
                                                for h in part])
    if len(t.known) >= t.max_known:
        # memory forgot the least recently seen templates: so does the table
        conn.execute(templates_table.delete().where(
            templates_table.c.last_seen < min(t.known.values())))
    t.dirty.clear()


def _meta(d: Detector) -> dict[str, Any]:
    return {
        "templates_key": TEMPLATE_KEY,
        "templates_learn_from": d.templates.learn_from,
        "rebalanced_hour": d.rebalanced_hour,
        "last_any": d.last_any,
        "last_seen": [[dim, v, m] for (dim, v), m in d.last_seen.items()],
        "step_since": [[*k, t.isoformat()] for k, t in d.step_since.items()],
        "spike_ended": {c: t.isoformat() for c, t in d.spike_ended.items()},
        "accepted": sorted(d.accepted),
        "silence_gaps": d.gaps.to_json(),
        "volumes": d.volumes.to_json() if d.volumes is not None else {},
    }


def _signal_json(s: Signal) -> dict[str, Any]:
    return {
        "kind": s.kind, "labels": dict(s.labels), "at": s.at.isoformat(), "firing": s.firing,
        "observed": s.observed, "expected": s.expected, "window_seconds": s.window_seconds,
        "severity": s.severity, "score": s.score, "summary": s.summary,
        "samples": list(s.samples),
        "contributors": [[c.dimension, c.value, c.observed, c.expected, c.share_of_excess]
                         for c in s.contributors],
    }


def _signal_from(j: Mapping[str, Any]) -> Signal:
    return Signal(
        j["kind"], dict(j["labels"]), datetime.fromisoformat(j["at"]), j["firing"],
        j["observed"], j["expected"], j["window_seconds"], j["severity"], j["score"],
        tuple(Contributor(*c) for c in j["contributors"]), tuple(j["samples"]), j["summary"])


def _episode_json(ep: Episode) -> dict[str, Any]:
    return {
        "labels": [list(p) for p in ep.labels], "reported_excess": ep.reported_excess,
        "reported": _signal_json(ep.reported),
        "normal_since": ep.normal_since.isoformat() if ep.normal_since else None,
    }


# --- load -------------------------------------------------------------------------------

def load_detector(engine: Engine, d: Detector) -> int:
    """Fill a fresh detector from the state database; returns the series loaded."""
    with engine.connect() as conn:
        n = 0
        for r in conn.execute(sa.select(series_table)):
            s = Series((r.category, r.dimension, r.value), 0, Baseline.from_bytes(r.baseline))
            s.learned_until, s.hour_acc, s.hour_slots = r.learned_until, r.hour_acc, r.hour_slots
            d.series[s.key] = s
            n += 1
        for r in conn.execute(sa.select(values_table)):
            tk = d.topk.get(r.dimension)
            if tk is not None:
                tk.scores[r.value] = r.score
                if r.admitted:
                    tk.admitted.add(r.value)
        for r in conn.execute(sa.select(episodes_table)):
            j = json.loads(r.state)
            labels = tuple((k, v) for k, v in j["labels"])
            ns = j["normal_since"]
            ep = Episode(r.id, r.kind, labels, r.started_at, j["reported_excess"],
                         _signal_from(j["reported"]),
                         datetime.fromisoformat(ns) if ns else None)
            d.episodes.items[ep.key] = ep
        meta = {r.key: json.loads(r.value) for r in conn.execute(sa.select(detect_meta_table))}
        if meta.get("templates_key") == TEMPLATE_KEY:
            for r in conn.execute(sa.select(templates_table)):
                d.templates.known[r.hash] = r.last_seen
            d.templates.learn_from = meta.get("templates_learn_from")
        else:  # keyed otherwise: relearned, learn_for long, as from a fresh start
            d.templates.purge = True
    d.rebalanced_hour = meta.get("rebalanced_hour")
    d.last_any = meta.get("last_any")
    d.last_seen = {(dim, v): m for dim, v, m in meta.get("last_seen", [])}
    d.step_since = {(c, dim, v): datetime.fromisoformat(t)
                    for c, dim, v, t in meta.get("step_since", [])}
    d.spike_ended = {c: datetime.fromisoformat(t) for c, t in meta.get("spike_ended", {}).items()}
    d.accepted = set(meta.get("accepted", []))
    d.gaps.load_json(meta.get("silence_gaps", {}))
    if d.volumes is not None:
        d.volumes.load_json(meta.get("volumes", {}))
    d.restore_alerting()
    return n


def refill_windows(d: Detector, events: Iterable[StoredEvent], now: datetime) -> int:
    """Count recent stored events into the in-memory windows (after a restart)."""
    items = [
        Classified(Cancellation(e.order_id, e.status, e.reason, e.event_time, e.event_time,
                                e.dimensions), Verdict(e.category, e.rule))
        for e in events
    ]
    d.observe(items, now, rebuild=True)
    return len(items)


def window_span(d: Detector) -> timedelta:
    return timedelta(minutes=d.horizon)
