"""Random counts for synthetic streams in the detector tests, and their warm-up."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from random import Random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.detect import Detector
    from watchdog.model import Classified


def poisson(rng: Random, lam: float) -> int:
    """A Poisson draw with mean `lam` (Knuth's method: fine for the small means used)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def learn(d: Detector, rng: Random, start: datetime, days: float,
          minute: Callable[[Random, datetime], list[Classified]]) -> datetime:
    """`days` of `minute`'s traffic from `start` observed and learned, a step every 15
    minutes and one at the end (the daemon's learning pace); the end."""
    now = start
    while now < start + timedelta(days=days):
        d.observe(minute(rng, now), now, learning=True)
        if now.minute % 15 == 0:
            d.step(now, learning=True)
        now += timedelta(minutes=1)
    d.step(now, learning=True)
    return now
