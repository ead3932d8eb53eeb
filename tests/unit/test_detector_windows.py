"""Detection windows are the trailing real time ending at `now`, not calendar minutes.

Before: events were bucketed by minute and a window was [now's minute - w + 1, now's
minute], so with a 1-minute window a burst committed at :58 and polled at :00.5 of the
next minute was in no test's window at all, and a 5-minute window was 4-5 minutes long.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import poisson
from watchdog.detect import DetectConfig, Detector
from watchdog.detect.common import minute_of, window_start
from watchdog.model import Cancellation, Classified, Verdict

START = datetime(2024, 4, 25, 5, 0, tzinfo=UTC)
RATES = {"operator_error": 3.0, "compliance": 4.0, "customer_initiated": 2.5,
         "system_fault": 0.2}
CARRIERS = ("A", "B", "C", "D")


def _cfg(window: str = "1m") -> DetectConfig:
    return DetectConfig.model_validate({
        "spike": {"window": window}, "resolve_after": "30s",
        "step": {"enabled": False}, "templates": {"enabled": False}})


def _ev(cat: str, t: datetime, oid: str, carrier: str) -> Classified:
    c = Cancellation(oid, "已撤单", "r", t, t, {"carrier": carrier})
    return Classified(c, Verdict(cat, "r"))


def _warm(cfg: DetectConfig, hours: int = 8) -> tuple[Detector, datetime]:
    rng = Random(1)
    d = Detector(cfg, ["carrier"])
    t = START
    i = 0
    while t < START + timedelta(hours=hours):
        batch = []
        for cat, lam in RATES.items():
            for _ in range(poisson(rng, lam)):
                at = t + timedelta(seconds=rng.uniform(0, 59))
                batch.append(_ev(cat, at, f"w{i}", rng.choice(CARRIERS)))
                i += 1
        t += timedelta(minutes=1)
        d.observe(batch, t, learning=True)
        d.step(t, learning=True)
    return d, t


@pytest.fixture(scope="module")
def warm_1m() -> tuple[Detector, datetime]:
    return _warm(_cfg("1m"))


def _copy(d: Detector) -> Detector:
    import copy

    return copy.deepcopy(d)


@pytest.mark.parametrize(("commit_s", "poll_delay"), [(58.0, 1.0), (58.0, 2.5), (59.5, 0.6),
                                                     (30.0, 1.0)])
def test_burst_just_before_a_minute_boundary_fires_at_the_next_poll(
        warm_1m, commit_s: float, poll_delay: float) -> None:
    """30 operator errors at :58, the next poll after the boundary: it must fire (the
    audit's reproduction missed it: the window was the new minute only)."""
    d, t = warm_1m
    d = _copy(d)
    base = t.replace(second=0, microsecond=0) + timedelta(minutes=2)
    assert d.step(base) == []
    at = base + timedelta(seconds=commit_s)
    burst = [_ev("operator_error", at, f"b{j}", "B") for j in range(30)]
    now = at + timedelta(seconds=poll_delay)
    d.observe(burst, now)
    fired = [x for x in d.step(now) if x.status == "firing"]
    assert [(x.signal.kind, x.signal.category) for x in fired][:1] == [
        ("spike", "operator_error")]
    assert fired[0].signal.observed >= 30
    assert fired[0].signal.window_seconds == 60


@pytest.mark.parametrize("window", [1, 5])
def test_window_is_exactly_the_trailing_minutes(warm_1m, window: int) -> None:
    """An event w minutes minus a second ago is inside, w minutes plus a second ago is
    not, wherever `now` falls in its minute."""
    d, t = warm_1m
    rng = Random(3)
    for _ in range(40):
        d2 = _copy(d)
        now = t + timedelta(minutes=10, seconds=rng.uniform(0, 60))
        inside = now - timedelta(minutes=window) + timedelta(seconds=1)
        outside = now - timedelta(minutes=window) - timedelta(seconds=1)
        d2.observe([_ev("duplicate", inside, "in", "A"), _ev("duplicate", outside, "out", "A")],
                   now)
        s = d2.series[("duplicate", "", "")]
        assert s.count_since(window_start(now, window), minute_of(now)) == 1, now


@pytest.mark.parametrize("interval", [20, 30, 60])
def test_an_event_counted_at_one_poll_is_inside_at_the_next(interval: int) -> None:
    """Window of two poll intervals (rounded up to minutes): an event committed between
    two polls, even one stamped before the earlier poll (a late commit), is counted at
    the poll that first sees it and still inside the window at the following one."""
    window = math.ceil(2 * interval / 60)
    cfg = _cfg(f"{window}m")
    rng = Random(interval)
    step = timedelta(seconds=interval)
    for trial in range(60):
        d = Detector(cfg, ["carrier"])
        prev = START + timedelta(seconds=rng.uniform(0, 3600))
        d.observe([], prev)
        now = prev + step
        late = rng.random() < 0.3
        at = prev - timedelta(seconds=rng.uniform(0, 50)) if late else \
            prev + timedelta(seconds=rng.uniform(0, interval))
        d.observe([_ev("duplicate", at, f"e{trial}", "A")], now, since=prev)
        s = d.series[("duplicate", "", "")]
        for t in (now, now + step):
            assert s.count_since(window_start(t, window), minute_of(t)) == 1, (
                interval, at, prev, t)


def test_a_late_event_counts_at_the_previous_poll_only_when_that_poll_caught_up() -> None:
    d = Detector(_cfg("5m"), ["carrier"])
    prev = START + timedelta(minutes=30, seconds=20)
    stamped = prev - timedelta(minutes=3)
    d.observe([_ev("duplicate", stamped, "late", "A")], prev + timedelta(seconds=60),
              since=prev)
    assert d.recent.window("duplicate", 0)[0].at == int(prev.timestamp())
    d2 = Detector(_cfg("5m"), ["carrier"])
    d2.observe([_ev("duplicate", stamped, "late", "A")], prev + timedelta(seconds=60))
    assert d2.recent.window("duplicate", 0)[0].at == int(stamped.timestamp())
