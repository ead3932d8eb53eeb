"""How busy a scope is, judged over the traffic window as well as the spike window.

A promotion burst of one product brings cancellations of every category, but over a
four-minute spike window the product's *other* categories are a handful of events: when
the burst's mix happens to lean to compliance for four minutes, the short window alone
says the product is not busier and its compliance is a spike (the clean simulated week
raised one such alert with exact windows: 9 compliance vs 0.62 expected, 1 other event in
the window, 29 others in the hour). The same four minutes without the burst before them
are a spike and must still fire.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import learn
from watchdog.detect import DetectConfig, Detector
from watchdog.model import Cancellation, Classified, Verdict

PRODUCTS = tuple(f"p{i}" for i in range(20))
MIX = {"compliance": 0.4, "operator_error": 0.3, "customer_initiated": 0.2,
       "system_fault": 0.03, "duplicate": 0.07}
START = datetime(2024, 5, 6, tzinfo=UTC)
HOT = "p3"


def _event(i: str, cat: str, product: str, t: datetime) -> Classified:
    c = Cancellation(i, "已撤单", f"原因{cat}", t, t, {"product": product, "carrier": "c"})
    return Classified(c, Verdict(cat, "r"))


def _normal(rng: Random, now: datetime, per_min: float) -> list[Classified]:
    n = sum(1 for _ in range(int(per_min * 2)) if rng.random() < 0.5)
    return [_event(f"{now.timestamp()}-{k}", rng.choices(list(MIX), list(MIX.values()))[0],
                   rng.choice(PRODUCTS), now - timedelta(seconds=rng.uniform(1, 59)))
            for k in range(n)]


def _firing(d: Detector, batch: list[Classified], now: datetime, category: str) -> list:
    """Observe one poll's batch and step: the firing transitions of `category`."""
    d.observe(batch, now)
    return [t for t in d.step(now) if t.status == "firing" and t.signal.category == category]


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, datetime]:
    d = Detector(DetectConfig(), ["product"])
    rng = Random(5)
    now = learn(d, rng, START, 4, lambda r, t: _normal(r, t, 8))
    # settle at noon, so both runs test the same hour of the day
    while now.hour != 12:
        d.observe(_normal(rng, now, 8), now)
        d.step(now)
        now += timedelta(minutes=1)
    return d, now


def _run(warm: tuple[Detector, datetime], burst_minutes: int) -> list:
    """`burst_minutes` of a promotion on HOT (3 extra cancellations a minute: operator
    errors, duplicates and customer cancellations, no compliance), then four minutes of
    HOT leaning to compliance (10 compliance, nothing else): the compliance
    transitions of HOT and of compliance overall."""
    d, now = copy.deepcopy(warm[0]), warm[1]
    rng = Random(11)
    fired = []
    others = ("operator_error", "duplicate", "customer_initiated")
    lean = ["compliance"] * 10
    for minute in range(burst_minutes + 5):
        batch = _normal(rng, now, 8)
        if minute < burst_minutes:
            batch += [_event(f"b{minute}-{k}", others[(minute + k) % 3], HOT,
                             now - timedelta(seconds=10 + 15 * k)) for k in range(3)]
        elif minute < burst_minutes + 4:
            i = minute - burst_minutes
            batch += [_event(f"l{i}-{k}", lean[3 * i + k], HOT,
                             now - timedelta(seconds=10 + 15 * k))
                      for k in range(3) if 3 * i + k < len(lean)]
        fired += _firing(d, batch, now, "compliance")
        now += timedelta(minutes=1)
    return fired


def test_lean_after_a_promotion_burst_of_the_product_is_quiet(warm) -> None:
    fired = _run(warm, burst_minutes=12)
    assert fired == [], [(t.signal.labels, t.signal.observed, t.signal.expected)
                         for t in fired]


def test_the_same_lean_without_the_burst_is_a_spike(warm) -> None:
    fired = _run(warm, burst_minutes=0)
    assert [t.signal.labels for t in fired] == [{"category": "compliance", "product": HOT}]


# --- a sparse slice whose baseline falls off a cliff at the hour -------------------------
# The clean simulated month: a product whose operator errors were learned for the 14:00
# hour but not for 15:00 (two sampled Mondays), a promotion burst of one distributor on it
# from 14:48, then five operator errors at 15:02-15:03 with no other event of the product
# in those two minutes. The burst's traffic factor (24) times the 15:00 baseline (0.0002)
# still expected nothing: 5 vs 0.00 fired. Over the traffic window the product's
# expectation is its 14:xx rate times the burst.

NEW = "p_new"


@pytest.fixture(scope="module")
def warm_cliff() -> tuple[Detector, datetime]:
    """NEW is sold only 11:00-11:59 (1 cancellation a minute, the usual mix)."""
    d = Detector(DetectConfig(default_top_k=30), ["product"])
    rng = Random(8)
    now = START
    while now < START + timedelta(days=4, hours=11, minutes=46):
        batch = _normal(rng, now, 8)
        if now.hour == 11:
            batch.append(_event(f"n{now.timestamp()}",
                                rng.choices(list(MIX), list(MIX.values()))[0], NEW,
                                now - timedelta(seconds=30)))
        d.observe(batch, now, learning=now < START + timedelta(days=4))
        if now < START + timedelta(days=4):
            if now.minute % 15 == 0:
                d.step(now, learning=True)
        else:
            d.step(now)
        now += timedelta(minutes=1)
    return d, now


def _run_cliff(warm: tuple[Detector, datetime], burst: bool, errors: int) -> list:
    """From 11:46: (with `burst`) 3 cancellations a minute of NEW in every category but
    operator_error until 12:00; then `errors` operator errors of NEW at 12:00-12:02 and
    nothing else of it. The operator_error transitions of NEW."""
    d, now = copy.deepcopy(warm[0]), warm[1]
    rng = Random(12)
    fired = []
    others = ("compliance", "duplicate", "customer_initiated")
    for _ in range(20):
        batch = _normal(rng, now, 8)
        if burst and now.hour == 11:
            batch += [_event(f"b{now.minute}-{k}", others[k], NEW,
                             now - timedelta(seconds=10 + 15 * k)) for k in range(3)]
        if now.hour == 12 and 1 <= now.minute <= 2:
            half = errors // 2 if now.minute == 1 else errors - errors // 2
            batch += [_event(f"e{now.minute}-{k}", "operator_error", NEW,
                             now - timedelta(seconds=5 + 50 * k / half)) for k in range(half)]
        fired += _firing(d, batch, now, "operator_error")
        now += timedelta(minutes=1)
    return fired


def test_errors_after_a_burst_across_the_baselines_hour_cliff_are_quiet(warm_cliff) -> None:
    fired = _run_cliff(warm_cliff, burst=True, errors=5)
    assert fired == [], [(t.signal.labels, t.signal.observed, t.signal.expected)
                         for t in fired]


def test_a_real_burst_of_errors_after_the_cliff_still_fires(warm_cliff) -> None:
    fired = _run_cliff(warm_cliff, burst=False, errors=12)
    assert [t.signal.labels for t in fired] == [{"category": "operator_error", "product": NEW}]


# --- a busy slice with a mix of its own -----------------------------------------------
# The soak schedule from a cold start (2026-12-03): stage=precheck cancels ~20 a minute,
# 2% of them system faults, where the platform's share is 5%. A slice with little history
# expects the platform's mix of whatever else it cancels now, so precheck expected 5% of
# its operator errors as faults: a repeated upstream break there alerted 14 minutes late.

BIG = "pbig"
BIG_MIX = {"operator_error": 0.995, "system_fault": 0.005}


def _with_big(rng: Random, now: datetime) -> list[Classified]:
    """The normal stream at 40 a minute (3% system faults) plus BIG's 20 (0.5%)."""
    n = sum(1 for _ in range(40) if rng.random() < 0.5)
    return _normal(rng, now, 40) + [
        _event(f"g{now.timestamp()}-{k}", rng.choices(list(BIG_MIX), list(BIG_MIX.values()))[0],
               BIG, now - timedelta(seconds=rng.uniform(1, 59))) for k in range(n)]


@pytest.fixture(scope="module")
def warm_big() -> tuple[Detector, datetime]:
    d = Detector(DetectConfig(), ["product"])
    # a day: young, flat baselines, no seasonal profile yet
    return d, learn(d, Random(21), START, 1, _with_big)


def test_a_busy_slice_is_judged_by_its_own_mix(warm_big) -> None:
    """BIG's faults at 3 a minute: x30 its own rate, x7 the platform's share of its other
    cancellations. The fault of a slice that cancels a lot, but rarely for this reason,
    alerts within two polls (judged by the platform's mix, not in three)."""
    d, now = copy.deepcopy(warm_big[0]), warm_big[1]
    rng = Random(22)
    fired = []
    for minute in range(2):  # two polls
        batch = _with_big(rng, now) + [
            _event(f"f{minute}-{k}", "system_fault", BIG, now - timedelta(seconds=5 + 15 * k))
            for k in range(3)]
        fired += [t.signal.labels for t in _firing(d, batch, now, "system_fault")]
        now += timedelta(minutes=1)
    assert fired[:1] == [{"category": "system_fault", "product": BIG}], fired
