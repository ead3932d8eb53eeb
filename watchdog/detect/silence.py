"""Silence: an upstream or carrier whose cancellations and orders stop.

Judged in expected events, not minutes: a gap is a silence when the baseline expected at
least `min_expected` events in it (a Poisson chance of e^-20 when min_expected is 20), so
a quiet carrier at night needs hours and a busy upstream at noon minutes. Only while the
rest of the platform is alive: when everything stops, the source is down (and
watchdog_source_up says so), not one upstream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SilenceTest:
    gap_minutes: int
    expected: float
    fires: bool
    abnormal: bool


def silence_test(gap_minutes: int, expected: float, min_gap: int, min_expected: float,
                 platform_alive: bool) -> SilenceTest:
    if gap_minutes < min_gap or not platform_alive:
        return SilenceTest(gap_minutes, expected, False, False)
    fires = expected >= min_expected
    return SilenceTest(gap_minutes, expected, fires, expected >= min_expected / 2)
