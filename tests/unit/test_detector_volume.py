"""The volume test: one distributor's new orders x10 with cancellations leaning to
compliance/duplicate (DOMAIN.md incident 7), not a promotion burst, not a small
distributor's two cancellations; and the bounded per-distributor table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from watchdog.detect import VOLUME, DetectConfig, Detector
from watchdog.detect.volume import VolumeCounts, VolumeThresholds, binomial_tail, volume_test
from watchdog.detect.volumes import Volumes
from watchdog.model import Cancellation, Classified, OrderCount, Verdict

START = datetime(2024, 5, 6, tzinfo=UTC)
DISTRIBUTORS = tuple(f"D{i:03d}" for i in range(200))
WEIGHTS = tuple(1.0 / (i + 1) for i in range(200))
MIX = {"compliance": 0.35, "duplicate": 0.07, "operator_error": 0.28,
       "customer_initiated": 0.27, "supply_shortage": 0.03}
"""The usual lean (compliance + duplicate) share is 0.42, as in the simulated stream."""
ORDERS_PER_MIN = 40
CANCELS_PER_MIN = 8


def _cancel(i: str, cat: str, distributor: str, t: datetime) -> Classified:
    c = Cancellation(i, "已撤单", f"原因{cat}", t, t, {"distributor": distributor})
    return Classified(c, Verdict(cat, "r"))


def _minute(rng: Random, now: datetime) -> tuple[list[Classified], list[OrderCount]]:
    """One normal minute ending at `now`: orders per distributor, cancellations."""
    minute = now - timedelta(minutes=1)
    picks = rng.choices(DISTRIBUTORS, WEIGHTS, k=ORDERS_PER_MIN)
    orders = [OrderCount({"distributor": d}, picks.count(d), minute, count_by=True)
              for d in set(picks)]
    orders.append(OrderCount({}, ORDERS_PER_MIN, minute))
    cancels = [_cancel(f"{now.timestamp()}-{k}", rng.choices(list(MIX), list(MIX.values()))[0],
                       rng.choices(DISTRIBUTORS, WEIGHTS)[0],
                       now - timedelta(seconds=rng.uniform(1, 59)))
               for k in range(CANCELS_PER_MIN)]
    return cancels, orders


def _poll(d: Detector, cancels: list[Classified], orders: list[OrderCount],
          now: datetime, learning: bool = False) -> list:
    d.observe(cancels, now, learning=learning)
    d.observe_orders(orders, now - timedelta(minutes=1), now)
    return d.step(now, learning=learning)


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, datetime]:
    d = Detector(DetectConfig(), ["distributor"])
    rng = Random(3)
    now = START
    while now < START + timedelta(hours=12):
        now += timedelta(minutes=1)
        _poll(d, *_minute(rng, now), now, learning=True)
    for _ in range(40):  # a normal stretch evaluated: the windows are full
        now += timedelta(minutes=1)
        assert not [t for t in _poll(d, *_minute(rng, now), now) if t.status == "firing"]
    return d, now


def _run(warm: tuple[Detector, datetime], who: str, orders_per_min: float,
         mix: dict[str, float], cancel_share: float, minutes: int = 30) -> list:
    """`who` places `orders_per_min` extra orders; `cancel_share` of them are cancelled
    2-10 minutes later with `mix`. The firing transitions."""
    d, now = copy.deepcopy(warm[0]), warm[1]
    rng = Random(11)
    due: list[tuple[datetime, str]] = []
    fired = []
    carry = 0.0
    for minute in range(minutes):
        now += timedelta(minutes=1)
        cancels, orders = _minute(rng, now)
        carry += orders_per_min
        extra, carry = int(carry), carry - int(carry)
        if extra:
            orders.append(OrderCount({"distributor": who}, extra, now - timedelta(minutes=1),
                                     count_by=True))
        for _k in range(extra):
            if rng.random() < cancel_share:
                cat = rng.choices(list(mix), list(mix.values()))[0]
                due.append((now + timedelta(seconds=rng.uniform(120, 600)), cat))
        cancels += [_cancel(f"x{minute}-{k}", cat, who, at - timedelta(seconds=1))
                    for k, (at, cat) in enumerate(due) if at <= now]
        due = [(at, cat) for at, cat in due if at > now]
        fired += [t for t in _poll(d, cancels, orders, now) if t.status == "firing"]
    return fired


def test_fires_on_a_tenfold_abuser_leaning_to_compliance(warm):
    # D050 usually has ~0.04 orders a minute; the abuser places 3 a minute, 85% of them
    # cancelled, two thirds compliance, a third duplicate
    fired = _run(warm, "D050", 3.0, {"compliance": 0.65, "duplicate": 0.35}, 0.85)
    volume = [t for t in fired if t.signal.kind == VOLUME]
    assert volume, fired
    s = volume[0].signal
    assert s.labels == {"category": "compliance", "distributor": "D050"}
    assert s.observed >= 8 and s.observed >= 10 * s.expected
    assert s.contributors[0].dimension == "distributor"
    assert s.contributors[0].value == "D050"
    assert "new orders in 15 min" in s.summary and s.samples
    assert len(volume) == 1  # one episode, however the mix sways


def test_quiet_on_a_promotion_burst(warm):
    # ten times the volume and more, with the usual mix of cancellations
    fired = _run(warm, "D050", 6.0, MIX, 0.25)
    assert not [t for t in fired if t.signal.kind == VOLUME]


def test_quiet_on_a_small_distributors_two_cancellations(warm):
    # a distributor never seen: 10 orders, two compliance cancellations
    fired = _run(warm, "NEW1", 10 / 30, {"compliance": 1.0}, 0.2)
    assert not [t for t in fired if t.signal.kind == VOLUME]


def test_thresholds_at_known_values():
    th = VolumeThresholds()  # 8 orders, x10, 4 lean, p 0.05, 0.2 per order
    base = VolumeCounts(orders=8, total_orders=800, cancels=4, lean=4, long_orders=8,
                        long_lean=4)
    share = 0.001  # expected 0.8: 8 orders are exactly x10
    assert binomial_tail(4, 4, 0.42) == pytest.approx(0.42 ** 4)  # 0.031
    assert volume_test(base, share, 0.42, th).fires
    assert not volume_test(VolumeCounts(7, 800, 4, 4, 8, 4), share, 0.42, th).fires
    assert not volume_test(base, 0.00101, 0.42, th).fires  # x9.9
    assert not volume_test(VolumeCounts(8, 800, 3, 3, 8, 3), share, 0.42, th).fires
    # 4 of 5 at 0.42 is 10%: a lean, but not an unlikely one
    assert binomial_tail(4, 5, 0.42) == pytest.approx(0.1033, abs=1e-4)
    assert not volume_test(VolumeCounts(8, 800, 5, 4, 8, 4), share, 0.42, th).fires
    # 0.2 lean cancellations per new order over the long window
    assert volume_test(VolumeCounts(8, 800, 4, 4, 20, 4), share, 0.42, th).fires
    assert not volume_test(VolumeCounts(8, 800, 4, 4, 21, 4), share, 0.42, th).fires


def test_the_table_is_bounded_and_evicts_the_least_used():
    t = Volumes(cap=100, half_life_minutes=1440, lean_categories=["compliance"],
                prior_share=0.001)
    for i in range(90):  # the busy ones, learned
        t.add_orders(f"busy{i}", 0, 50)
    t.learn(1)
    for i in range(10_000):  # a long tail of one-off distributors
        t.add_orders(f"tail{i}", 1, 1)
        if i % 100 == 0:
            t.bound()
    t.bound(keep={"tail9999"})
    assert len(t.entries) <= 110
    assert all(f"busy{i}" in t.entries for i in range(90))
    assert "tail9999" in t.entries  # an open episode stays
    assert t.usual_share("tail5") == 0.001  # evicted: the prior
    assert t.usual_share("busy1") == pytest.approx(1 / 90)


def test_learned_shares_survive_a_restart(warm, tmp_path):
    from watchdog.detect.state import load_detector, save_detector
    from watchdog.store import StateStore

    d = warm[0]
    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    save_detector(store.engine, d, full=True)
    fresh = Detector(DetectConfig(), ["distributor"])
    load_detector(store.engine, fresh)
    store.close()
    assert d.volumes is not None and fresh.volumes is not None
    assert fresh.volumes.usual_share("D001") == pytest.approx(d.volumes.usual_share("D001"),
                                                              rel=1e-3)
    assert fresh.volumes.usual_lean() == pytest.approx(d.volumes.usual_lean())


def test_an_open_volume_episode_survives_a_restart_without_firing_again(warm, tmp_path):
    from watchdog.detect.state import load_detector, save_detector
    from watchdog.store import StateStore

    d, now = copy.deepcopy(warm[0]), warm[1]
    rng = Random(11)
    abuse = {"compliance": 0.65, "duplicate": 0.35}

    def minute(det: Detector, at: datetime, k: int) -> list:
        cancels, orders = _minute(rng, at)
        orders.append(OrderCount({"distributor": "D050"}, 3, at - timedelta(minutes=1),
                                 count_by=True))
        cancels += [_cancel(f"r{at.timestamp()}-{j}", rng.choices(list(abuse),
                                                                  list(abuse.values()))[0],
                            "D050", at - timedelta(seconds=5 + j)) for j in range(k)]
        return _poll(det, cancels, orders, at)

    fired = []
    for _ in range(12):
        now += timedelta(minutes=1)
        fired += [t for t in minute(d, now, 2) if t.status == "firing"]
    assert [t.signal.kind for t in fired] == [VOLUME]
    store = StateStore.open(f"sqlite:///{tmp_path / 'r.db'}")
    save_detector(store.engine, d, full=True)
    again = Detector(DetectConfig(), ["distributor"])
    load_detector(store.engine, again)
    store.close()
    after = []
    for _ in range(20):
        now += timedelta(minutes=1)
        after += minute(again, now, 2)
    assert not [t for t in after if t.status in ("firing", "resolved")], after
