"""A burst that recurs at the same time every day becomes the baseline.

A new nightly job (say activation timeouts swept at 00:05 from one day on) is a spike the
first night. Learning is robust: an observation above mean + 4 sd is clipped, and a
series' slots are not learned at all while it alerts, so one incident cannot teach the
baseline that incidents are normal. But the same clip and freeze kept a *recurring*
burst from being learned for many nights (in the clean simulated month with one day of
history, the 7-day activation timeouts first swept on day 8 raised `customer_initiated
stage=activation` every night after: 23 alerts in 28 days). A slot that exceeded its
clip on `RECUR_DAYS` days in a row is learned as it is.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import learn
from watchdog.detect import DetectConfig, Detector
from watchdog.detect.baseline import RECUR_DAYS, SLOT_MINUTES, SLOTS_PER_DAY, Baseline
from watchdog.model import Cancellation, Classified, Verdict

MIX = {"compliance": 0.4, "operator_error": 0.3, "customer_initiated": 0.2,
       "system_fault": 0.03, "duplicate": 0.07}
STAGES = ("precheck", "review", "carrier", "shipping", "activation")
START = datetime(2024, 5, 6, tzinfo=UTC)


def _event(i: str, cat: str, stage: str, t: datetime) -> Classified:
    c = Cancellation(i, "已撤单", f"原因{cat}", t, t, {"stage": stage})
    return Classified(c, Verdict(cat, "r"))


def _normal(rng: Random, now: datetime) -> list[Classified]:
    n = sum(1 for _ in range(8) if rng.random() < 0.5)
    return [_event(f"{now.timestamp()}-{k}", rng.choices(list(MIX), list(MIX.values()))[0],
                   rng.choice(STAGES), now - timedelta(seconds=rng.uniform(1, 59)))
            for k in range(n)]


def _sweep(now: datetime, n: int) -> list[Classified]:
    """The new job: `n` customer cancellations at the activation stage, 00:05-00:08."""
    return [_event(f"job{now.timestamp()}-{k}", "customer_initiated", "activation",
                   now - timedelta(seconds=5 + 50 * k / n)) for k in range(n)]


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, datetime]:
    d = Detector(DetectConfig(), ["stage"])
    return d, learn(d, Random(3), START, 4, _normal)


def _nights(warm: tuple[Detector, datetime], nights: int, job: int) -> list[int]:
    """`nights` days with the job's burst of `job` a minute at 00:05-00:08: per night, the
    customer_initiated episodes that fired."""
    d, now = copy.deepcopy(warm[0]), warm[1]
    rng = Random(9)
    per_night = [0] * nights
    end = now + timedelta(days=nights)
    while now < end:
        batch = _normal(rng, now)
        if now.hour == 0 and 5 <= now.minute < 9:
            batch += _sweep(now, job)
        d.observe(batch, now)
        for t in d.step(now):
            if t.status == "firing" and t.signal.category == "customer_initiated":
                per_night[(now - warm[1]).days] += 1
        now += timedelta(minutes=1)
    return per_night


def test_a_new_nightly_job_alerts_on_its_first_nights_then_is_learned(warm) -> None:
    per_night = _nights(warm, 7, job=25)   # 100 in 4 minutes; the category sees ~1 a minute
    assert all(per_night[:RECUR_DAYS]), per_night      # an incident the first nights
    assert not any(per_night[RECUR_DAYS:]), per_night  # then the usual (before: every night)


def test_one_burst_is_still_not_learned() -> None:
    """Exceeding the clip on one day (or on days that are not consecutive) is clipped."""
    b = Baseline()
    slot = 3
    for day in range(6):
        b.learn_slot(day * SLOTS_PER_DAY + slot, 1.0)
    before = b.day[slot]
    b.learn_slot(6 * SLOTS_PER_DAY + slot, 50.0)      # an incident
    b.learn_slot(7 * SLOTS_PER_DAY + slot, 1.0)
    b.learn_slot(8 * SLOTS_PER_DAY + slot, 50.0)      # another, not the next day
    clipped = b.day[slot]
    assert clipped < before + 0.12 * 8 / SLOT_MINUTES * 2  # two clipped steps at most
    fresh = Baseline()
    for day in range(6):
        fresh.learn_slot(day * SLOTS_PER_DAY + slot, 1.0)
    for day in range(6, 6 + RECUR_DAYS):
        fresh.learn_slot(day * SLOTS_PER_DAY + slot, 50.0)
    assert fresh.day[slot] * SLOT_MINUTES > 20          # learned: 50 a slot, not ~8


def test_a_burst_drifting_by_a_slot_still_recurs() -> None:
    b = Baseline()
    for day in range(6):
        b.learn_slot(day * SLOTS_PER_DAY + 10, 1.0)
        b.learn_slot(day * SLOTS_PER_DAY + 11, 1.0)
    for k in range(RECUR_DAYS):
        b.learn_slot((6 + k) * SLOTS_PER_DAY + 10 + k % 2, 50.0)
    assert max(b.day[10], b.day[11]) * SLOT_MINUTES > 20


def test_recurrence_survives_a_restart() -> None:
    b = Baseline()
    for day in range(6):
        b.learn_slot(day * SLOTS_PER_DAY + 4, 1.0)
    for day in range(6, 6 + RECUR_DAYS - 1):
        b.learn_slot(day * SLOTS_PER_DAY + 4, 50.0)
    b = Baseline.from_bytes(b.to_bytes())
    b.learn_slot((6 + RECUR_DAYS - 1) * SLOTS_PER_DAY + 4, 50.0)
    assert b.day[4] * SLOT_MINUTES > 20


def test_a_frozen_series_learns_only_a_recurring_slot() -> None:
    b = Baseline()
    for day in range(6):
        b.learn_slot(day * SLOTS_PER_DAY + 7, 1.0)
    before = b.day[7]
    b.learn_slot(6 * SLOTS_PER_DAY + 7, 1.0, frozen=True)
    b.learn_slot(6 * SLOTS_PER_DAY + 8, 50.0, frozen=True)
    assert b.day[7] == before and b.day[8] == 0
    for day in range(7, 7 + RECUR_DAYS):
        b.learn_slot(day * SLOTS_PER_DAY + 7, 50.0, frozen=True)
    assert b.day[7] * SLOT_MINUTES > 20


def test_a_baseline_saved_before_recurrence_loads() -> None:
    b = Baseline()
    b.learn_hour(5, 120.0)
    b.learn_slot(7, 3.0)
    v1 = bytes([1]) + b.to_bytes()[1:]         # format 1: the same, no recurrences after
    old = Baseline.from_bytes(v1)
    assert old.recur == {} and old.day[7] == b.day[7] and old.flat == b.flat


def _learn_day(b: Baseline, day: int, per_slot: dict[int, float], frozen: set[int]) -> None:
    """One day of settled slots and hours: `per_slot` events a slot by hour (else 1)."""
    for hour in range(24):
        n = per_slot.get(hour, 1.0)
        for k in range(SLOTS_PER_DAY // 24):
            b.learn_slot(day * SLOTS_PER_DAY + hour * SLOTS_PER_DAY // 24 + k, n,
                         hour in frozen)
        b.learn_hour(day * 24 + hour, n * SLOTS_PER_DAY // 24, hour in frozen)


def test_a_recurring_hour_is_expected_at_its_hour_only() -> None:
    """From a cold start, a break at 13:00 three days running (the series alerting, so
    frozen) is learned as that hour's routine; it must not become the expectation of
    every other hour through the flat fallback. The soak's upstream breaking at 13:00
    and 01:00 every day lost its third 01:00 alert that way: 4.6 expected a minute."""
    b = Baseline()
    for day in range(RECUR_DAYS):
        burst = {13: 50.0} | ({1: 50.0} if day else {})
        _learn_day(b, day, burst, frozen=set(burst))
    normal = 1.0 / SLOT_MINUTES
    night = b.hour_rate(RECUR_DAYS * 24 + 1)
    assert night is not None and night < 3 * normal      # before: 8.6 a minute
    for day in (RECUR_DAYS, RECUR_DAYS - 1 + 7):   # the routine from the next day on, and
        noon = b.hour_rate(day * 24 + 13)          # on the weekday it was learned on
        assert noon is not None and noon > 5, day
