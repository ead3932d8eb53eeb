"""Random counts for synthetic streams in the detector tests."""

from __future__ import annotations

import math
from random import Random


def poisson(rng: Random, lam: float) -> int:
    """A Poisson draw with mean `lam` (Knuth's method: fine for the small means used)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1
