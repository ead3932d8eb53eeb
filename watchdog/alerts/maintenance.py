"""Maintenance windows: cron-scheduled periods that suppress named categories/upstreams."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from .config import MaintenanceWindow


def window_active(w: MaintenanceWindow, now: datetime) -> bool:
    """True while `now` lies in [a cron start, that start + duration)."""
    local = now.astimezone(ZoneInfo(w.timezone))
    # get_prev is strictly before its base: nudge so a window starting exactly now counts.
    start = croniter(w.cron, local + timedelta(microseconds=1)).get_prev(datetime)
    return start.astimezone(UTC) <= now < (start + w.duration).astimezone(UTC)


def window_matches(w: MaintenanceWindow, labels: Mapping[str, str]) -> bool:
    if w.categories and labels.get("category") not in w.categories:
        return False
    if w.upstreams and labels.get("upstream") not in w.upstreams:
        return False
    return all(labels.get(k) == v for k, v in w.match.items())


def in_maintenance(labels: Mapping[str, str], windows: Iterable[MaintenanceWindow],
                   now: datetime) -> MaintenanceWindow | None:
    for w in windows:
        if window_matches(w, labels) and window_active(w, now):
            return w
    return None
