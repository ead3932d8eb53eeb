"""When orders arrive: a diurnal curve, mild weekly and month-end seasonality, bursts.

Arrivals are a non-homogeneous Poisson process (sampled by thinning) whose rate is
interpolated between hourly levels, so minute counts vary like real traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from random import Random

from .clock import DAY, HOUR, from_sim, weekday

# Relative orders per minute by hour of day (Asia/Shanghai). Shape: trough 02-07, ramp up to
# 10:00, evening peak 19-22. Scaled so that one day holds `daily_orders`.
HOURLY_SHAPE: tuple[float, ...] = (
    16, 9, 5.5, 4.5, 4, 4.5, 6, 11, 19, 26, 30, 32,
    33, 30, 30, 31, 31, 30, 32, 36, 40, 42, 36, 25,
)
WEEKDAY_FACTOR: tuple[float, ...] = (0.96, 0.97, 0.99, 1.0, 1.02, 1.05, 1.01)
MONTH_END_FACTOR = 1.12
"""Distributors push volume in the last two days of a month (settlement targets)."""

BURST_HOURS = range(10, 23)
BURST_PROBABILITY = 0.12
"""Chance per daytime hour of a promotion burst (a live stream or a short-video push)."""
BURST_SHARE = 0.035
"""Expected share of daily volume that bursts add; the base curve is reduced by it."""


@dataclass(frozen=True, slots=True)
class Burst:
    """A promotion: extra orders for one product from one distributor for a while."""

    start: int
    end: int
    per_min: float
    distributor_rank: int
    product_index: int


@dataclass(frozen=True, slots=True)
class Traffic:
    daily_orders: int

    @property
    def _scale(self) -> float:
        return self.daily_orders * (1 - BURST_SHARE) / (sum(HOURLY_SHAPE) * 60)

    def arrivals(self, rng: Random, lo: int, hi: int) -> list[int]:
        """Arrival seconds in [lo, hi) (within one day), sorted."""
        per_second = (
            self._scale * WEEKDAY_FACTOR[weekday(lo)] * _month_end(lo)
            * rng.lognormvariate(0, 0.06) / 60
        )
        # the curve is piecewise linear with knots at half hours: its maximum is at a knot
        # or an end of the interval
        peak = max(_level(t) for t in (lo, (lo + hi) // 2, hi - 1)) * per_second
        out: list[int] = []
        t = float(lo)
        expo, rand = rng.expovariate, rng.random
        while True:
            t += expo(peak)
            if t >= hi:
                return out
            if rand() * peak < _level(int(t)) * per_second:
                out.append(int(t))

    def burst(self, rng: Random, lo: int, distributors: int, products: int) -> Burst | None:
        """Maybe a promotion burst starting in the hour beginning at lo."""
        if (lo % DAY) // HOUR not in BURST_HOURS or rng.random() >= BURST_PROBABILITY:
            return None
        minutes = rng.uniform(10, 40)
        mean_minutes = 25
        # extra rate sized so that bursts add about BURST_SHARE of a day on average
        per_min = (
            self.daily_orders * BURST_SHARE
            / (len(BURST_HOURS) * BURST_PROBABILITY * mean_minutes)
            * rng.uniform(0.6, 1.4)
        )
        start = lo + rng.randrange(HOUR)
        return Burst(
            start, start + int(minutes * 60), per_min,
            rng.randrange(min(50, distributors)), rng.randrange(products),
        )


def _level(s: int) -> float:
    """HOURLY_SHAPE interpolated linearly between the middles of the hours."""
    x = (s % DAY) / HOUR - 0.5
    h0 = math.floor(x)
    frac = x - h0
    return HOURLY_SHAPE[h0 % 24] * (1 - frac) + HOURLY_SHAPE[(h0 + 1) % 24] * frac


def _month_end(s: int) -> float:
    d = from_sim(s - s % DAY + DAY).day  # tomorrow's day of month
    d2 = from_sim(s - s % DAY + 2 * DAY).day
    return MONTH_END_FACTOR if d == 1 or d2 == 1 else 1.0
