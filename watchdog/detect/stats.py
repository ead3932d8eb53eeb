"""Count tails for small numbers: Poisson and negative binomial, and a dispersion estimate.

Cancellation counts per window are small (0-50), so normal approximations mislead; exact
tails are cheap because the tests only ever need the *upper* tail far from the mean,
where the terms shrink geometrically. Pure `math`, no numpy.

Negative binomial here is parametrised by its mean `mu` and a dispersion `k = 1/size`:
variance = mu + k * mu**2; k = 0 is Poisson.
"""

from __future__ import annotations

import math

_EPS = 1e-15
_MAX_TERMS = 200_000


def log_pmf(n: int, mu: float, k: float = 0.0) -> float:
    """log P(X = n) for Poisson (k=0) or negative binomial with mean mu, dispersion k."""
    if mu <= 0:
        return 0.0 if n == 0 else -math.inf
    if k <= 0:
        return -mu + n * math.log(mu) - math.lgamma(n + 1)
    r = 1.0 / k
    return (
        math.lgamma(n + r) - math.lgamma(r) - math.lgamma(n + 1)
        + r * math.log(r / (r + mu)) + n * math.log(mu / (r + mu))
    )


def upper_tail(n: int, mu: float, k: float = 0.0) -> float:
    """P(X >= n). Exact for n > mu; for n <= mu returns 1.0 (the tests never care there).

    Sums the pmf upward from n; the term ratio is (j + r) / (j + 1) * q with q < 1, so it
    converges geometrically and stops once the remainder bound is negligible.
    """
    if n <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    if n <= mu:
        return 1.0
    if k <= 0:
        q, r = mu, math.inf
    else:
        r = 1.0 / k
        q = mu / (r + mu)
    log_term = log_pmf(n, mu, k)
    if log_term < -745:  # exp underflows: the tail is below ~1e-300
        return math.exp(log_term)
    term = math.exp(log_term)
    total = term
    j = n
    for _ in range(_MAX_TERMS):
        ratio = q / (j + 1) if k <= 0 else (j + r) / (j + 1) * q
        term *= ratio
        total += term
        j += 1
        # Remaining terms shrink at least by `bound` each (the ratio decreases in j for
        # r >= 1 and never exceeds q for r < 1).
        bound = ratio if (k <= 0 or r >= 1) else q
        if bound < 1 and term * bound / (1 - bound) < total * _EPS:
            break
    return min(total, 1.0)


def critical_count(mu: float, k: float, alpha: float, cap: int = 1_000_000) -> int:
    """The smallest n with P(X >= n) <= alpha: the count that would just alert."""
    n = max(1, math.floor(mu) + 1)
    step = max(1, int(math.sqrt(mu * (1 + k * mu))))
    # gallop then bisect: keeps this cheap for large means
    lo = n
    while upper_tail(n, mu, k) > alpha:
        lo = n
        n += step
        step *= 2
        if n > cap:
            return cap
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if upper_tail(mid, mu, k) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return hi


def dispersion_sample(observed: float, expected: float) -> float | None:
    """One moment estimate of k from a count and its expectation: ((x-mu)^2 - x) / mu^2.

    Averaged over many hours this is unbiased for k when X ~ NB(mu, k); a single value is
    noisy and can be negative. Returns None when mu is too small to say anything.
    """
    if expected < 1.0:
        return None
    return ((observed - expected) ** 2 - observed) / (expected * expected)


def score(p: float) -> float:
    """-log10(p), capped: a readable strength for ranking and for the Signal."""
    return min(300.0, -math.log10(max(p, 1e-300)))
