"""Fast random picks: the generator draws millions of them per simulated week.

`Random.choice`/`choices` sample integers exactly, which costs several times a float
draw; a float draw's bias over a few thousand items is far below anything we measure.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence
from random import Random
from typing import TypeVar

T = TypeVar("T")


def pick(rng: Random, seq: Sequence[T]) -> T:
    return seq[int(rng.random() * len(seq))]


def weighted_index(rng: Random, cum_weights: Sequence[float]) -> int:
    """An index drawn with the given cumulative weights."""
    return bisect(cum_weights, rng.random() * cum_weights[-1])
