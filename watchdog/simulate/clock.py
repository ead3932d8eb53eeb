"""Simulated time: integer seconds since 2000-01-01 00:00 naive Asia/Shanghai local time.

China has no daylight saving, so naive local time is a uniform timeline and plain
integer arithmetic on it is exact. The generator never reads the wall clock.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(2000, 1, 1)
ZONE = ZoneInfo("Asia/Shanghai")
MINUTE = 60
HOUR = 3600
DAY = 86_400
EPOCH_ORDINAL = EPOCH.toordinal()
_EPOCH_WEEKDAY = EPOCH.weekday()


def local_naive(t: datetime) -> datetime:
    """A naive Asia/Shanghai datetime; aware inputs are converted, naive ones kept as is."""
    if t.tzinfo is not None:
        t = t.astimezone(ZONE).replace(tzinfo=None)
    return t


def to_sim(t: datetime) -> int:
    delta = local_naive(t) - EPOCH
    return delta.days * DAY + delta.seconds


def from_sim(s: int) -> datetime:
    return EPOCH + timedelta(seconds=s)


def format_sim(s: int) -> str:
    """`YYYY-MM-DD HH:MM:SS`, the way upstreams write times into remarks."""
    d = date.fromordinal(EPOCH_ORDINAL + s // DAY)
    tod = s % DAY
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d} "
        f"{tod // 3600:02d}:{tod // 60 % 60:02d}:{tod % 60:02d}"
    )


def weekday(s: int) -> int:
    """Monday = 0."""
    return (s // DAY + _EPOCH_WEEKDAY) % 7


def next_clock(s: int, at: int) -> int:
    """The first instant >= s whose time of day is `at` seconds."""
    base = s - s % DAY + at
    return base if base >= s else base + DAY


def within(s: int, start: int, end: int) -> bool:
    """Is the time of day of s in [start, end) (seconds of day)?"""
    tod = s % DAY
    return start <= tod < end
