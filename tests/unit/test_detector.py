"""The detector end to end on synthetic streams: spike, drill-down, cold start, restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import learn
from watchdog.detect import DetectConfig, Detector
from watchdog.detect.series import ORDERS
from watchdog.detect.state import load_detector, save_detector
from watchdog.model import Cancellation, Classified, OrderCount, Verdict
from watchdog.store import StateStore

CARRIERS = ("中国联通", "中国电信", "中国移动", "中国广电")
MIX = {"compliance": 0.4, "operator_error": 0.3, "customer_initiated": 0.2,
       "system_fault": 0.03, "duplicate": 0.07}
START = datetime(2024, 5, 6, tzinfo=UTC)


def _events(rng: Random, now: datetime, per_min: float, extra: list[tuple[str, str]] = ()
            ) -> list[Classified]:
    out = []
    n = sum(1 for _ in range(int(per_min * 2)) if rng.random() < 0.5)
    picks = [(rng.choices(list(MIX), list(MIX.values()))[0], rng.choice(CARRIERS))
             for _ in range(n)] + list(extra)
    for i, (cat, carrier) in enumerate(picks):
        t = now - timedelta(seconds=rng.uniform(0, 60))
        c = Cancellation(f"{now.timestamp()}-{i}", "已撤单", f"原因{cat} 13812345678", t, t,
                         {"carrier": carrier, "upstream": f"u{rng.randrange(3)}"})
        out.append(Classified(c, Verdict(cat, "r")))
    return out


def _warm(d: Detector, rng: Random, days: int = 4,
          minute: Callable[[Random, datetime], list[Classified]] | None = None) -> datetime:
    """`days` of `minute`'s traffic (default `_events` at 8 a minute) learned; the end."""
    return learn(d, rng, START, days, minute or (lambda r, now: _events(r, now, 8)))


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, datetime]:
    d = Detector(DetectConfig(), ["carrier", "upstream"])
    return d, _warm(d, Random(1))


def test_quiet_stream_stays_quiet_then_outage_fires_with_contributor(warm) -> None:
    d, now = warm
    rng = Random(2)
    fired = []
    for _ in range(120):
        d.observe(_events(rng, now, 8), now)
        fired += [t for t in d.step(now) if t.status == "firing"]
        now += timedelta(minutes=1)
    assert fired == []
    for _ in range(3):
        d.observe(_events(rng, now, 8, [("system_fault", "中国联通")] * 12), now)
        fired += [t for t in d.step(now) if t.status == "firing"]
        now += timedelta(minutes=1)
    # one alert: the carrier's slice crosses its threshold first (12 in its first poll)
    # and then holds the category's spike; or the category with the carrier on top
    assert len(fired) == 1, [t.signal.labels for t in fired]
    sig = fired[0].signal
    assert sig.category == "system_fault"
    if sig.labels.get("carrier") != "中国联通":
        top = sig.contributors[0]
        assert (top.dimension, top.value) == ("carrier", "中国联通")
    assert fired[0].signal.samples and all("13812345678" not in s for s in fired[0].signal.samples)


def test_cold_detector_never_fires() -> None:
    d = Detector(DetectConfig(), ["carrier"])
    rng = Random(4)
    now = START
    out = []
    for _ in range(60):
        d.observe(_events(rng, now, 8, [("system_fault", "中国联通")] * 10), now)
        out += d.step(now)
        now += timedelta(minutes=1)
    assert [t for t in out if t.signal.kind in ("spike", "step")] == []


def test_a_category_born_late_has_learned_the_quiet_hours_before_it() -> None:
    """System faults absent for the night, then a trickle from 08:00: at 10:00 the
    category has two hours of its own, but twelve of its scope's. Its quiet hours were
    watched, so it is warm and a carrier's outage fires (it stayed cold, untested, until
    six hours after its first event: the demo's outage at 13:30 raised no alert)."""
    d = Detector(DetectConfig(), ["carrier"])
    quiet = {k: v for k, v in MIX.items() if k != "system_fault"}

    def night(rng: Random, now: datetime) -> list[Classified]:
        return [e for e in _events(rng, now, 8) if e.category in quiet]

    rng = Random(9)
    now = learn(d, rng, START - timedelta(hours=12), 0.5, night)
    now = learn(d, rng, now, 2 / 24, lambda r, t: _events(r, t, 8))
    assert d.series[("system_fault", "", "")].baseline.warm
    fired = []
    for _ in range(3):
        d.observe(_events(rng, now, 8, [("system_fault", "中国联通")] * 12), now)
        fired += [t.signal for t in d.step(now) if t.status == "firing"]
        now += timedelta(minutes=1)
    assert [s.category for s in fired] == ["system_fault"], [s.labels for s in fired]


def test_surge_with_normal_mix_is_quiet(warm) -> None:
    d, now = warm
    d = _copy(d, now)
    rng = Random(5)
    out = []
    for _ in range(15):
        d.observe(_events(rng, now, 40), now)  # everything x5: the 09:00 review release
        out += [t for t in d.step(now) if t.status == "firing" and t.signal.kind == "spike"]
        now += timedelta(minutes=1)
    assert out == []


def test_state_round_trip_keeps_baselines_and_open_episodes(warm, tmp_path) -> None:
    d, now = warm
    d = _copy(d, now, tmp_path)
    rng = Random(6)
    for _ in range(3):
        d.observe(_events(rng, now, 8, [("system_fault", "中国电信")] * 15), now)
        d.step(now)
        now += timedelta(minutes=1)
    assert any(ep.kind == "spike" for ep in d.episodes.items.values())
    store = StateStore.open(f"sqlite:///{tmp_path / 's2.db'}")
    save_detector(store.engine, d, full=True)
    again = Detector(DetectConfig(), ["carrier", "upstream"])
    assert load_detector(store.engine, again) == len(d.series)
    key = ("system_fault", "", "")
    assert again.series[key].baseline.to_bytes() == d.series[key].baseline.to_bytes()
    again.observe(_events(rng, now, 8, [("system_fault", "中国电信")] * 15), now)
    assert [t for t in again.step(now) if t.status == "firing"] == [], "no re-fire"
    store.close()


def _copy(d: Detector, now: datetime, tmp_path=None) -> Detector:
    import tempfile
    from pathlib import Path

    folder = Path(tmp_path or tempfile.mkdtemp())
    store = StateStore.open(f"sqlite:///{folder / 'copy.db'}")
    save_detector(store.engine, d, full=True)
    fresh = Detector(d.cfg, list(d.dims))
    load_detector(store.engine, fresh)
    store.close()
    return fresh


def test_orders_land_in_their_minute_of_creation_or_spread_without_one():
    """Order counts that know their minute (late ones too) are counted in it; counts
    without one are spread over the poll's span."""
    d = Detector(DetectConfig(), ["carrier"])
    since, until = START, START + timedelta(minutes=4)
    late = START - timedelta(minutes=3)
    d.observe_orders([OrderCount({"carrier": "中国联通"}, 5, minute=late),
                      OrderCount({"carrier": "中国联通"}, 2, minute=since),
                      OrderCount({"carrier": "中国电信"}, 8)], since, until)
    m = int(START.timestamp()) // 60
    total = d.series[(ORDERS, "", "")].buckets
    assert total == {m - 3: 5, m: 2 + 2, m + 1: 2, m + 2: 2, m + 3: 2}
    # No carrier is admitted to the top K yet: both are pooled in "other", minute by minute.
    assert d.series[(ORDERS, "carrier", "other")].buckets == total



def _tail_minute(rng: Random, now: datetime, extra: int = 0, base: float = 0.0,
                 small: str | None = None) -> list[Classified]:
    """8 cancellations a minute, 98% of them from four big distributors, plus `base` a
    minute of 中国联通's system faults from those; `extra` system faults of 中国联通
    from the long tail of small distributors (pooled as `other`), or from `small` alone."""
    picks = [(rng.choices(list(MIX), list(MIX.values()))[0], rng.choice(CARRIERS),
              f"big{rng.randrange(4)}" if rng.random() < 0.98 else f"small{rng.randrange(200)}")
             for _ in range(sum(rng.random() < 0.5 for _ in range(16)))]
    picks += [("system_fault", "中国联通", f"big{rng.randrange(4)}")] * sum(
        rng.random() < base / 4 for _ in range(4))
    picks += [("system_fault", "中国联通", small or f"small{rng.randrange(200)}")
              for _ in range(extra)]
    out = []
    for i, (cat, carrier, dist) in enumerate(picks):
        t = now - timedelta(seconds=rng.uniform(0, 59))
        c = Cancellation(f"{now.timestamp()}-{i}", "已撤单", f"原因{cat}", t, t,
                         {"carrier": carrier, "distributor": dist})
        out.append(Classified(c, Verdict(cat, "r")))
    return out


def _tail_incident(base: float, per_minute: int, minutes: int, small: str | None = None
                   ) -> tuple[list, datetime]:
    """Four days of `_tail_minute` learned, then the incident; (transitions, its end)."""
    d = Detector(DetectConfig.model_validate({"top_k": {"distributor": 4}}),
                 ["carrier", "distributor"])
    rng = Random(1)
    now = _warm(d, rng, minute=lambda r, t: _tail_minute(r, t, base=base))
    out, end = [], now + timedelta(minutes=minutes)
    for _ in range(minutes + 15):
        d.observe(_tail_minute(rng, now, per_minute if now < end else 0, base, small), now)
        out += d.step(now)
        now += timedelta(minutes=1)
    return out, end


@pytest.mark.parametrize(("base", "per_minute", "minutes"), [(0.0, 6, 2), (2.0, 2, 20)])
def test_a_named_slice_labels_the_alert_before_the_pooled_other(
        base: float, per_minute: int, minutes: int) -> None:
    """A carrier's outage over the long tail of distributors crosses the pooled
    `distributor=other` first (its baseline is tiny). The alert is the carrier's:
    `other` names no one, and routes match on the carrier. And it stays one alert while
    the outage lasts, though the carrier's own series (busy with its usual faults,
    `base`) does not cross its threshold: the pooled series it holds still does (before,
    it resolved and fired again every few minutes)."""
    out, end = _tail_incident(base, per_minute, minutes)
    assert [(t.status, t.signal.labels) for t in out if t.status != "updated"] == [
        (status, {"category": "system_fault", "carrier": "中国联通"})
        for status in ("firing", "resolved")]
    assert out[-1].signal.at >= end


def test_one_pooled_distributors_incident_keeps_its_own_name() -> None:
    """The same faults from one small distributor alone are that distributor's (a form
    bug): the pooled slice alerts, its drill-down naming the distributor (beside the
    carrier, which holds them all too)."""
    out, _ = _tail_incident(0.0, 6, 2, small="small7")
    fired = [t.signal for t in out if t.status == "firing"]
    assert [s.labels for s in fired] == [{"category": "system_fault", "distributor": "other"}]
    assert ("distributor", "small7") in [(c.dimension, c.value) for c in fired[0].contributors]
