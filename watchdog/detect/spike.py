"""The count test: is a window's count a spike against its (traffic-adjusted) baseline?

Gates first (cheap, and they encode what on-call cares about: a minimum count, ratio and
excess), then the negative-binomial tail with the series' estimated dispersion.

Traffic adjustment: if the *other* categories of the same scope, or the orders of that
scope, rose by a factor g, this category is expected to rise by g too. A surge of orders,
the 09:00 release of overnight reviews or a month-end push then stays quiet, while a
change in the *mix* (one category rising alone) still alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import upper_tail

SHRINK = 5.0
"""Pseudo-count in traffic factors: a few extra events at night do not move them."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_count: int
    min_ratio: float
    min_excess: float
    alpha: float


@dataclass(frozen=True, slots=True)
class CountTest:
    observed: int
    expected: float
    """Baseline expectation after the traffic adjustment."""
    p: float
    fires: bool
    abnormal: bool
    """A looser test, used to keep an open episode open (hysteresis)."""

    @property
    def ratio(self) -> float:
        return self.observed / self.expected if self.expected > 0 else float("inf")


def traffic_factor(others_observed: float, others_expected: float,
                   orders_observed: float | None = None,
                   orders_expected: float | None = None) -> float:
    """How much busier than usual the scope is, judged by everything but the category."""
    g = (max(others_observed, 0.0) + SHRINK) / (max(others_expected, 0.0) + SHRINK)
    if orders_observed is not None and orders_expected is not None:
        g = max(g, (orders_observed + SHRINK) / (orders_expected + SHRINK))
    return max(g, 1.0)


def count_test(observed: int, expected: float, dispersion: float, th: Thresholds) -> CountTest:
    gates = (
        observed >= th.min_count
        and observed >= th.min_ratio * expected
        and observed - expected >= th.min_excess
    )
    loose = observed >= max(1.5, th.min_ratio / 2) * expected and observed >= 3
    if not (gates or loose):
        return CountTest(observed, expected, 1.0, False, False)
    p = upper_tail(observed, expected, dispersion)
    return CountTest(observed, expected, p, gates and p <= th.alpha, loose and p <= 1e-2)
