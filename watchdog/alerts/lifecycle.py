"""The alert lifecycle, a pure function of (state, signals, now).

Alertmanager's semantics on our own state: signals become alerts identified by their
labels; alerts are grouped per route and group_by labels; a group is flushed after
group_wait, then at most every group_interval; a channel is told again about an
unchanged firing group after repeat_interval; a resolved notice only goes to channels
whose log shows they were told about the firing. Silenced, inhibited and in-maintenance
alerts are left out of notifications (and come back at the next flush when the mute ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..model import Signal
from ..notifiers.router import Route, Routing
from .config import InhibitRule, MaintenanceWindow
from .inhibit import inhibited_by
from .maintenance import in_maintenance
from .silences import silenced_by
from .values import FIRING, RESOLVED, Alert, Group, Notification, NotifyLog, Silence, fingerprint

RESOLVED_RETENTION = timedelta(hours=24)
"""Resolved alerts no flush picked up (config changed) are dropped after this long."""


@dataclass(frozen=True, slots=True)
class State:
    alerts: Mapping[str, Alert] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)
    log: Mapping[tuple[str, str], NotifyLog] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Mutes:
    silences: Sequence[Silence] = ()
    inhibit: Sequence[InhibitRule] = ()
    maintenance: Sequence[MaintenanceWindow] = ()


@dataclass(frozen=True, slots=True)
class Muted:
    fingerprint: str
    reason: str
    """silence:<id>, inhibited:<fingerprint> or maintenance:<name>."""


def alert_labels(signal: Signal) -> dict[str, str]:
    """An alert's identity: the signal's labels (category, dimensions), kind and severity."""
    labels = {str(k): str(v) for k, v in signal.labels.items()}
    labels.setdefault("category", signal.category)
    labels["alertname"] = f"cancel_{signal.kind}"
    labels["severity"] = signal.severity
    return labels


def _series(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "severity"))


def apply_signals(alerts: Mapping[str, Alert], signals: Iterable[Signal], now: datetime,
                  resolve_timeout: timedelta) -> dict[str, Alert]:
    """New alert map after one evaluation.

    A firing signal starts or refreshes its alert and resolves the same series at another
    severity (an escalation replaces the warning). A non-firing signal resolves its
    series. A firing alert no signal refreshed for `resolve_timeout` resolves.
    """
    out = dict(alerts)
    by_series: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for fp, a in out.items():
        by_series.setdefault(_series(a.labels), []).append(fp)

    def resolve(fp: str, at: datetime) -> None:
        a = out[fp]
        if a.firing:
            out[fp] = replace(a, status=RESOLVED, ends_at=at, last_seen=now)

    for s in signals:
        labels = alert_labels(s)
        fp = fingerprint(labels)
        series = _series(labels)
        if s.firing:
            for other in by_series.get(series, ()):
                if other != fp:
                    resolve(other, now)
            old = out.get(fp)
            starts = old.starts_at if old is not None and old.firing else s.at
            out[fp] = Alert(
                fp, labels, FIRING, starts, None, now, s.kind, s.observed, s.expected,
                s.window_seconds, s.score, s.summary, tuple(s.contributors), tuple(s.samples))
            by_series.setdefault(series, []).append(fp)
        else:
            for other in by_series.get(series, ()):
                resolve(other, now)
    for fp, a in list(out.items()):
        if a.firing and now - a.last_seen >= resolve_timeout:
            resolve(fp, a.last_seen + resolve_timeout)
    return out


def mutes_for(alerts: Mapping[str, Alert], mutes: Mutes, now: datetime) -> dict[str, Muted]:
    firing = [a for a in alerts.values() if a.firing]
    out: dict[str, Muted] = {}
    for a in firing:
        s = silenced_by(a.labels, mutes.silences, now)
        if s is not None:
            out[a.fingerprint] = Muted(a.fingerprint, f"silence:{s.id}")
            continue
        w = in_maintenance(a.labels, mutes.maintenance, now)
        if w is not None:
            out[a.fingerprint] = Muted(a.fingerprint, f"maintenance:{w.name}")
            continue
        src = inhibited_by(a, firing, mutes.inhibit)
        if src is not None:
            out[a.fingerprint] = Muted(a.fingerprint, f"inhibited:{src.fingerprint}")
    return out


def flush(state: State, routing: Routing, mutes: Mutes,
          now: datetime) -> tuple[State, list[Notification]]:
    """Flush every group that is due; returns the new state and the messages to queue."""
    muted = mutes_for(state.alerts, mutes, now)
    members: dict[str, list[Alert]] = {}
    routes: dict[str, Route] = {}
    for a in state.alerts.values():
        for r in routing.match(a.labels):
            key = r.group_key(a.labels)
            members.setdefault(key, []).append(a)
            routes[key] = r
    groups = dict(state.groups)
    log = dict(state.log)
    for key, r in routes.items():
        if key not in groups:
            first = [a for a in members[key] if a.firing]
            if first:  # a resolved alert alone never opens a group
                groups[key] = Group(key, r.id, r.group_labels(first[0].labels), now)
    notifications: list[Notification] = []
    flushed_at: dict[str, datetime] = {}
    for key, g in list(groups.items()):
        route = routing.by_id.get(g.route_id)
        alerts = sorted(members.get(key, ()), key=lambda a: (a.starts_at, a.fingerprint))
        if route is None or not alerts:
            del groups[key]
            for lk in [lk for lk in log if lk[0] == key]:
                del log[lk]
            continue
        if not _due(g, route, now):
            if g.last_flush is not None:
                flushed_at[key] = g.last_flush
            continue
        sent = _flush_group(g, route, alerts, muted, log, now)
        notifications.extend(sent)
        groups[key] = replace(g, last_flush=now, seq=g.seq + (1 if sent else 0))
        flushed_at[key] = now
    alerts_out = _prune_resolved(state.alerts, members, flushed_at, now)
    return State(alerts_out, groups, log), notifications


def _due(g: Group, route: Route, now: datetime) -> bool:
    if g.last_flush is None:
        return now >= g.first_seen + route.group_wait
    return now >= g.last_flush + route.group_interval


def _flush_group(g: Group, route: Route, alerts: list[Alert], muted: Mapping[str, Muted],
                 log: dict[tuple[str, str], NotifyLog], now: datetime) -> list[Notification]:
    firing = [a for a in alerts if a.firing and a.fingerprint not in muted]
    firing_fps = frozenset(a.fingerprint for a in firing)
    out: list[Notification] = []
    for channel in route.channels:
        entry = log.get((g.key, channel))
        told = entry.firing if entry else frozenset()
        resolved = [a for a in alerts if not a.firing and a.fingerprint in told]
        repeat = bool(firing) and (entry is None or now - entry.sent_at >= route.repeat_interval)
        if (firing_fps - told) or resolved or repeat:
            out.append(Notification(
                g.key, g.seq + 1, channel, route.id, FIRING if firing else RESOLVED,
                dict(g.labels), tuple(firing + resolved), now, route.fallback,
                route.repeat_interval.total_seconds(), g.first_seen))
            log[(g.key, channel)] = NotifyLog(g.key, channel, firing_fps, now)
        elif entry is not None and told != firing_fps:
            # Muted alerts leave the log without a message, so that they are announced
            # again when the mute ends; resolved ones are forgotten once announced.
            log[(g.key, channel)] = replace(entry, firing=firing_fps & told)
    return out


def _prune_resolved(alerts: Mapping[str, Alert], members: Mapping[str, list[Alert]],
                    flushed_at: Mapping[str, datetime], now: datetime) -> dict[str, Alert]:
    """Drop resolved alerts once every group holding them flushed after they resolved."""
    done: dict[str, bool] = {}
    for key, group_alerts in members.items():
        last = flushed_at.get(key)
        for a in group_alerts:
            if not a.firing:
                ok = last is not None and a.ends_at is not None and last >= a.ends_at
                done[a.fingerprint] = done.get(a.fingerprint, True) and ok
    out = {}
    for fp, a in alerts.items():
        if not a.firing:
            assert a.ends_at is not None
            if done.get(fp, True) or now - a.ends_at >= RESOLVED_RETENTION:
                continue
        out[fp] = a
    return out


def forget_failed(state: State, group_key: str, channel: str,
                  fingerprints: Iterable[str]) -> State:
    """A channel never got a firing message: drop those alerts from its log, so that it
    is told at the next flush and gets no resolved notice for what it never saw."""
    entry = state.log.get((group_key, channel))
    if entry is None:
        return state
    log = dict(state.log)
    log[(group_key, channel)] = replace(entry, firing=entry.firing - frozenset(fingerprints))
    return replace(state, log=log)
