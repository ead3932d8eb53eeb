"""Drill-down: which dimension values carry an anomaly's excess.

For each dimension, the window's events are counted per value and compared with what
that value usually contributes. A value is reported when it holds a real share of the
excess, well above its usual share of the series (so one of four upstreams that merely
got its quarter of an outage is not blamed), *and* is itself significantly above its own
expectation; ranked by share of the excess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from ..model import Contributor
from ..privacy import mask_text
from .recent import RecentEvent
from .stats import upper_tail

MIN_SHARE = 0.25
CONCENTRATION = 0.3
MAX_USUAL = 0.7
"""A value must take its usual share plus this part of the rest of the excess."""
MAX_P = 1e-3
FLOOR_EXPECTED = 0.05
SAMPLE_CHARS = 160

ExpectedFor = Callable[[str, str], float]
"""(dimension, raw value) -> events that value is expected to contribute in the window."""


def contributors(events: Sequence[RecentEvent], dims: Sequence[str], skip: str,
                 observed: float, expected: float, expected_for: ExpectedFor,
                 limit: int = 3) -> tuple[Contributor, ...]:
    excess = observed - expected
    if excess <= 0 or not events:
        return ()
    found: list[Contributor] = []
    for i, dim in enumerate(dims):
        if dim == skip:
            continue
        counts = Counter(e.dims[i] for e in events if e.dims[i])
        for value, n in counts.most_common(5):
            exp_v = expected_for(dim, value)
            share = (n - exp_v) / excess
            # capped: baselines of a slice and of its series are learned apart and can
            # disagree at tiny rates; a value holding 80% of the excess is always named
            usual = min(exp_v / expected, MAX_USUAL) if expected > 0 else 0.0
            if share < max(MIN_SHARE, usual + CONCENTRATION * (1 - usual)):
                continue
            if upper_tail(n, max(exp_v, FLOOR_EXPECTED), 0.1) > MAX_P:
                continue
            found.append(Contributor(dim, value, float(n), round(exp_v, 2), round(min(share,
                                                                                     1.0), 3)))
    # near-ties (a product and its carrier both hold all of the excess): the more specific
    # value, the one that is usually smaller, explains more
    found.sort(key=lambda c: (-round(c.share_of_excess * 10), c.expected, -c.observed))
    return tuple(found[:limit])


def samples(events: Sequence[RecentEvent], dims: Sequence[str],
            top: Contributor | None, limit: int = 3) -> tuple[str, ...]:
    """A few distinct reasons, masked, preferring events of the top contributor."""
    pick: list[RecentEvent] = list(events)
    if top is not None:
        i = dims.index(top.dimension)
        pick = [e for e in events if e.dims[i] == top.value] or pick
    out: list[str] = []
    for e in reversed(pick):
        if not e.reason:
            continue
        text = mask_text(e.reason[:SAMPLE_CHARS])
        if text not in out:
            out.append(text)
        if len(out) >= limit:
            break
    return tuple(out)


def describe(c: Contributor) -> str:
    return f"{c.dimension} {c.value}: {c.observed:g}, expected {c.expected:g}"
