"""Count tails, thresholds at known means, dispersion, baselines, hysteresis."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from watchdog.detect.baseline import Baseline
from watchdog.detect.episodes import Episodes
from watchdog.detect.spike import Thresholds, count_test, traffic_factor
from watchdog.detect.stats import critical_count, dispersion_sample, log_pmf, upper_tail
from watchdog.model import Signal


def poisson_sf(n: int, mu: float) -> float:
    return 1 - sum(math.exp(-mu) * mu**k / math.factorial(k) for k in range(n))


@pytest.mark.parametrize(("n", "mu"), [(5, 1.0), (3, 0.2), (20, 8.0), (40, 10.0), (2, 0.01)])
def test_poisson_tail_matches_direct_sum(n: int, mu: float) -> None:
    assert upper_tail(n, mu) == pytest.approx(poisson_sf(n, mu), rel=1e-9, abs=1e-15)


def test_known_poisson_values() -> None:
    assert upper_tail(5, 1.0) == pytest.approx(0.0036598, rel=1e-4)
    assert upper_tail(10, 1.0) == pytest.approx(1.1142e-7, rel=1e-3)


def test_negative_binomial_tail_is_heavier_and_sums_pmf() -> None:
    mu, k = 4.0, 0.5
    direct = 1 - sum(math.exp(log_pmf(j, mu, k)) for j in range(12))
    assert upper_tail(12, mu, k) == pytest.approx(direct, rel=1e-9)
    assert upper_tail(12, mu, k) > upper_tail(12, mu, 0.0) * 10


def test_pmf_sums_to_one() -> None:
    for k in (0.0, 0.1, 1.5):
        assert sum(math.exp(log_pmf(j, 3.0, k)) for j in range(400)) == pytest.approx(1.0)


def test_far_tail_does_not_underflow_to_nonsense() -> None:
    assert 0.0 <= upper_tail(5000, 2.0) < 1e-300
    assert upper_tail(1, 0.0) == 0.0
    assert upper_tail(0, 3.0) == 1.0


@pytest.mark.parametrize("mu", [0.2, 1.0, 5.0, 30.0])
def test_critical_count_is_the_first_count_below_alpha(mu: float) -> None:
    n = critical_count(mu, 0.1, 1e-6)
    assert upper_tail(n, mu, 0.1) <= 1e-6 < upper_tail(n - 1, mu, 0.1)


def test_dispersion_estimate_recovers_known_k() -> None:
    rng = Random(3)
    k, mu = 0.3, 20.0
    samples = []
    for _ in range(20000):
        lam = rng.gammavariate(1 / k, mu * k)
        x = _poisson(rng, lam)
        samples.append(dispersion_sample(x, mu))
    assert sum(samples) / len(samples) == pytest.approx(k, abs=0.03)
    assert dispersion_sample(3, 0.5) is None


def _poisson(rng: Random, lam: float) -> int:
    # sum of exponential gaps: fine for the moderate means used here
    t, n = rng.expovariate(1.0), 0
    while t < lam:
        t += rng.expovariate(1.0)
        n += 1
    return n


TH = Thresholds(min_count=8, min_ratio=3.0, min_excess=6.0, alpha=1e-6)


def test_count_test_gates() -> None:
    assert count_test(30, 2.0, 0.1, TH).fires
    assert not count_test(7, 0.01, 0.1, TH).fires, "below min_count"
    assert not count_test(40, 15.0, 0.1, TH).fires, "below min_ratio"
    assert not count_test(9, 0.5, 5.0, TH).fires or upper_tail(9, 0.5, 5.0) <= 1e-6


def test_traffic_factor_only_scales_up_and_shrinks_small_counts() -> None:
    assert traffic_factor(10, 10) == 1.0
    assert traffic_factor(3, 30) == 1.0
    assert traffic_factor(300, 100) == pytest.approx(305 / 105)
    assert traffic_factor(2, 0) == pytest.approx(7 / 5)
    assert traffic_factor(10, 10, 500, 100) == pytest.approx(505 / 105)


def test_baseline_cold_then_flat_then_seasonal() -> None:
    b = Baseline()
    assert b.hour_rate(0) is None
    for h in range(6):
        b.learn_hour(h, 60.0)
    assert b.hour_rate(100) == pytest.approx(1.0, rel=0.01)
    b2 = Baseline()
    for day in range(3):
        for slot in range(288):
            b2.learn_slot(day * 288 + slot, 50.0 if slot == 0 else 5.0)
    # the nightly burst in slot 0 (and its neighbours' max) is expected, the rest is not
    assert b2.slot_rate(3 * 288) > 5 * b2.slot_rate(3 * 288 + 100)


def test_an_hour_whose_first_slot_came_before_the_series_is_warm_after_three_days() -> None:
    """A series born inside an hour (the first timeout of the nightly sweep at 00:07) has
    seen that hour's first slot a day less than the rest of it. After three nights the
    sweep is the hour's level, not the flat fallback: the demo's payment slice, warmed 72
    hours, expected 1.2 at 00:08 and alerted on 22 (bench/cold_start.py)."""
    b = Baseline()
    for day in range(3):
        for slot in range(1 if day == 0 else 0, 288):
            b.learn_slot(day * 288 + slot, 30.0 if 1 <= slot <= 4 else 0.05)
            if slot % 12 == 11 and (day, slot) != (0, 11):
                b.learn_hour(day * 24 + slot // 12, 120.4 if slot == 11 else 0.6)
    assert b.day_n[0] == 2 and b.day_n[11] == 3
    # 00:05-00:09, the sweep's first minutes, at its rate of 6 a minute
    assert b.expected(3 * 1440 + 5, 4) == pytest.approx(4 * 6.0, rel=0.01)


def test_baseline_learning_clips_outliers() -> None:
    b = Baseline()
    for day in range(10):
        b.learn_slot(day * 288, 10.0)
    b.learn_slot(10 * 288, 10_000.0)
    assert b.day[0] < 5.0


def test_an_incident_hour_is_no_dispersion_sample() -> None:
    """An hour above the clip is an incident (or a new pattern, learned as such), not
    the series' usual spread: it leaves the dispersion as it was. Before, each one
    raised it, and a young series' tests went deaf (docs/detection.md, the cold-start
    repeat case: a signature break 21 minutes late)."""
    rng = Random(3)
    b = Baseline()
    for h in range(24):
        b.learn_hour(h, float(sum(rng.random() < 0.5 for _ in range(240))))  # ~120 an hour
    usual = b.dispersion
    b.learn_hour(24, 600.0)
    assert b.dispersion == usual
    b.learn_hour(25, 150.0)  # within the usual spread: still learned
    assert b.dispersion != usual


def test_baseline_round_trips_bytes() -> None:
    b = Baseline()
    b.learn_hour(5, 120.0)
    b.learn_slot(7, 3.0)
    b.scale = 1.5
    c = Baseline.from_bytes(b.to_bytes())
    assert (c.flat, c.flat_n, c.scale, c.day[7], c.week_n.count(1)) == (
        b.flat, b.flat_n, b.scale, b.day[7], 1)


def _sig(obs: float, at: datetime) -> Signal:
    return Signal("spike", {"category": "system_fault"}, at, True, obs, 1.0, 300.0)


def test_episode_fires_once_updates_on_growth_resolves_after_window() -> None:
    eps = Episodes(growth=1.5)
    t = datetime(2024, 5, 1, tzinfo=UTC)
    first = eps.fire(_sig(20, t), t)
    assert first is not None and first.status == "firing"
    assert eps.fire(_sig(22, t + timedelta(minutes=1)), t + timedelta(minutes=1)) is None
    up = eps.fire(_sig(40, t + timedelta(minutes=2)), t + timedelta(minutes=2))
    assert up is not None and up.status == "updated" and up.episode == first.episode
    key = ("spike", (("category", "system_fault"),))
    five = timedelta(minutes=5)
    assert eps.normal(key, t + timedelta(minutes=3), five) is None
    eps.still_abnormal(key)  # a relapse restarts the clock
    assert eps.normal(key, t + timedelta(minutes=4), five) is None
    assert eps.normal(key, t + timedelta(minutes=8), five) is None
    done = eps.normal(key, t + timedelta(minutes=9), five)
    assert done is not None and done.status == "resolved" and not done.signal.firing
