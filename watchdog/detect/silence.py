"""Silence: an upstream or carrier whose cancellations and orders stop.

Judged in expected events, not minutes: a gap is a silence when the baseline expected at
least `min_expected` events in it (a Poisson chance of e^-20 when min_expected is 20), so
a quiet carrier at night needs hours and a busy upstream at noon minutes.

Only ONE value stopping while the rest of the platform flows is a silence:

- the rest must have *flowed after* the value's last event: since then (over the last
  `min_gap` at most) the other values delivered at least `REST_FLOWING` of their usual
  cancellations or orders. When the whole stream stops or lags (the source down, its
  writer stalled, rows arriving late with older times: they count at the previous poll),
  every value's last event is the platform's last event and nothing flowed after it;
  watchdog_source_up and the cursor lag say so, not one upstream. (Before, the guard was
  "the platform's last event within `min_gap` of now": at the poll exactly `min_gap`
  after a stalled stream's last minute every value was `min_gap` old and the platform
  still "alive", and every carrier and upstream fired at once.)
- most values of a dimension falling silent together is not per-value either: when more
  of its values are silent than flowing, none of them fires.
"""

from __future__ import annotations

from dataclasses import dataclass

REST_FLOWING = 0.5
"""The rest of the platform flows when it delivered at least this share of its expected
events since the value's last one."""


@dataclass(frozen=True, slots=True)
class SilenceTest:
    gap_minutes: int
    expected: float
    fires: bool
    abnormal: bool


def silence_test(gap_minutes: int, expected: float, min_gap: int, min_expected: float,
                 platform_alive: bool, whole: float | None = None,
                 min_whole: float = 0.0) -> SilenceTest:
    """`platform_alive`: the rest of the platform flowed after this value's last event
    (see `rest_flows`). `whole`: the events expected in the gap's whole empty minutes
    (all but the last event's own), which must reach `min_whole` too (a gap judged
    against a learned usual gap, only a few minutes long: see gaps.py)."""
    if gap_minutes < min_gap or not platform_alive:
        return SilenceTest(gap_minutes, expected, False, False)
    fires = expected >= min_expected and (whole is None or whole >= min_whole)
    return SilenceTest(gap_minutes, expected, fires, expected >= min_expected / 2)


def rest_flows(streams: list[tuple[float, float | None]]) -> bool:
    """(observed, expected) of the rest of the platform per stream (cancellations, new
    orders) since the value's last event: True when any stream delivered at least
    `REST_FLOWING` of its expectation. Nothing known, or nothing expected: False."""
    return any(mu is not None and mu > 0 and n >= REST_FLOWING * mu for n, mu in streams)


def most_silent(silent: int, flowing: int) -> bool:
    """More of a dimension's values are silent than flowing: the stream, not a value."""
    return silent > flowing
