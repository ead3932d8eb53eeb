"""Volume: one distributor's new orders x10, its cancellations leaning to compliance and
duplicates (DOMAIN.md incident 7, distributor abuse).

Volume alone is no incident: a promotion burst brings ten times a distributor's orders
with a normal mix of cancellations. Nor is a lean alone: two compliance cancellations of
one of 2,000 distributors are chance. The test wants all of them at once, per value
(distributor), over a window of `window` minutes:

- at least `min_orders` new orders, and at least `min_ratio` x its usual share of the
  platform's orders (usual share learned with decay; a value never seen has a small
  prior share);
- at least `min_lean` cancellations in the lean categories (compliance, duplicate), and
  that many out of its cancellations are unlikely at the platform's usual lean share
  (binomial tail <= `alpha`; the stream's usual share is 0.42, so 4 of 4 is 3%);
- and at least `min_per_order` lean cancellations per new order over `ratio_window`: a
  burst's orders are mostly kept, an abuser's mostly cancelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VolumeThresholds:
    min_orders: int = 8
    min_ratio: float = 10.0
    min_lean: int = 4
    alpha: float = 0.05
    min_per_order: float = 0.2


@dataclass(frozen=True, slots=True)
class VolumeCounts:
    """One value's counts over the test window (and the long window for the ratio)."""

    orders: int
    """New orders of the value in the window."""
    total_orders: int
    """New orders of the platform in the window."""
    cancels: int
    """The value's cancellations (every monitored category) in the window."""
    lean: int
    """... of which in the lean categories."""
    long_orders: int
    long_lean: int
    """New orders and lean cancellations of the value over the ratio window."""


@dataclass(frozen=True, slots=True)
class VolumeTest:
    expected: float
    """The value's usual share x the platform's orders in the window."""
    p: float
    """Binomial tail of `lean` of `cancels` at the usual lean share."""
    fires: bool
    abnormal: bool
    """A looser test that keeps an open episode open: the volume still high."""

    def ratio(self, orders: int) -> float:
        return orders / self.expected if self.expected > 0 else math.inf


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return min(1.0, sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1)))


def volume_test(c: VolumeCounts, usual_share: float, usual_lean: float,
                th: VolumeThresholds) -> VolumeTest:
    expected = usual_share * c.total_orders
    high = c.orders >= th.min_orders and c.orders >= th.min_ratio * expected
    loose = c.orders >= max(3.0, th.min_orders / 2) and c.orders >= th.min_ratio / 2 * expected
    if not high:
        return VolumeTest(expected, 1.0, False, loose)
    if c.lean < th.min_lean or c.long_orders <= 0 \
            or c.long_lean < th.min_per_order * c.long_orders:
        return VolumeTest(expected, 1.0, False, loose)
    p = binomial_tail(c.lean, c.cancels, usual_lean)
    return VolumeTest(expected, p, p <= th.alpha, loose)
