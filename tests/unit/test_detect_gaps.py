"""Usual longest gaps (detect/gaps.py): learning per hour of day, decay, cold fallback,
the threshold at known values, no learning during an outage or a silence episode, and
persistence through the state database."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from watchdog.detect import DetectConfig, Detector
from watchdog.detect.gaps import GapLearner, GapProfile, gap_threshold
from watchdog.detect.state import load_detector, save_detector
from watchdog.store import StateStore

U = ("upstream", "U1")
V = ("upstream", "U2")
DAY = 1440
T = 100 * DAY
"""A local midnight (minutes since the epoch); local = UTC in these tests."""


def feed(g: GapLearner, first: int, last: int,
         active: Callable[[int], Iterable[tuple[str, str]]],
         platform: Callable[[int], bool] = lambda m: True) -> None:
    """Minutes first..last inclusive; `active(m)` the values with events in minute m."""
    for m in range(first, last + 1):
        g.minute(m, m, set(active(m)), (U, V), platform(m))


def busy_except(*quiet: range) -> Callable[[int], Iterable[tuple[str, str]]]:
    """U1 and U2 active every minute, except U1 in the `quiet` minutes."""
    def active(m: int) -> list[tuple[str, str]]:
        return [V] if any(m in r for r in quiet) else [U, V]
    return active


def test_a_gap_is_learned_as_minutes_between_events_for_its_hour() -> None:
    g = GapLearner()
    # the learner starts in hour 0 (not whole: nothing learned); hour 1: U1 quiet 3 min
    feed(g, T + 1, T + 60 + 59, busy_except(range(T + 71, T + 74)))
    p = g.profiles[U]
    assert p.days[0] == 0, "the learner's first hour is not whole"
    assert (p.days[1], p.high[1]) == (1, 4.0)  # events at :10 and :14, polled at :14
    assert g.profiles[V].high[1] == 1.0  # events every minute: gap 1


def test_the_gap_open_at_the_end_of_the_hour_counts_in_it() -> None:
    g = GapLearner()
    feed(g, T, T + 119, busy_except(range(T + 110, T + 130)))
    assert g.profiles[U].high[1] == 11.0  # last event :49, the hour ends at :60
    feed(g, T + 120, T + 179, busy_except(range(T + 110, T + 130)))
    assert g.profiles[U].high[2] == 21.0  # the whole gap, :49 of hour 1 to :10 of hour 2


def test_the_mark_rises_at_once_and_sinks_by_the_decay_per_day() -> None:
    p = GapProfile()
    p.learn(9, 6.0, 0.9)
    p.learn(9, 1.0, 0.9)
    assert p.high[9] == pytest.approx(5.4)
    p.learn(9, 1.0, 0.9)
    assert p.high[9] == pytest.approx(4.86)
    p.learn(9, 8.0, 0.9)
    assert p.high[9] == 8.0
    assert p.days[9] == 4


def test_cold_until_the_hour_and_its_neighbours_are_learned_on_warm_days() -> None:
    p = GapProfile()
    for _ in range(3):
        p.learn(9, 1.0, 0.9)
        p.learn(10, 2.0, 0.9)
    assert p.usual(10, 3) is None, "hour 11 not learned"
    for _ in range(3):
        p.learn(11, 1.0, 0.9)
    assert p.usual(10, 3) == 2.0  # the largest of 9, 10, 11
    assert p.usual(10, 4) is None
    assert p.usual(0, 1) is None  # 23, 0, 1 never learned
    assert gap_threshold(None, 2, 2.0, 10) == 10  # cold: min_gap


@pytest.mark.parametrize(("usual", "floor", "factor", "need"), [
    (1.0, 2, 2.0, 2),   # a busy value: one whole empty minute
    (1.0, 3, 2.0, 3),   # the floor
    (1.5, 2, 2.0, 3),
    (2.7, 2, 2.0, 6),   # 5.4 rounds up
    (4.0, 2, 2.5, 10),
    (30.0, 2, 2.0, 60),  # quiet at night: longer than min_gap
])
def test_threshold_at_known_values(usual: float, floor: int, factor: float, need: int) -> None:
    assert gap_threshold(usual, floor, factor, 10) == need


def test_a_gap_the_platform_did_not_fill_is_not_learned() -> None:
    """A source outage: nothing at all for 15 minutes. The hour is not learned for the
    values whose gaps it made (both), and is learned again the next hour."""
    g = GapLearner()
    outage = range(T + 80, T + 95)
    feed(g, T, T + 179, lambda m: [] if m in outage else [U, V], lambda m: m not in outage)
    assert g.profiles[U].days[1] == 0 and g.profiles[V].days[1] == 0
    assert (g.profiles[U].days[2], g.profiles[U].high[2]) == (1, 1.0)


def test_a_quiet_night_with_a_flowing_platform_is_learned() -> None:
    """The rest flows (platform True): a 40-minute gap of U1 is usual, learned."""
    g = GapLearner()
    feed(g, T, T + 119, busy_except(range(T + 70, T + 110)))
    assert g.profiles[U].high[1] == 41.0


def test_the_gap_of_a_silence_episode_is_not_learned() -> None:
    g = GapLearner()
    quiet = range(T + 70, T + 100)
    feed(g, T, T + 75, busy_except(quiet))
    g.exclude(U, T + 69)  # the detector opened an episode on U1's gap after :09
    feed(g, T + 76, T + 179, busy_except(quiet))
    assert g.profiles[U].days[1] == 0, "the hour with the episode is not learned"
    assert (g.profiles[U].days[2], g.profiles[U].high[2]) == (1, 1.0)
    assert g.episodes == {}, "forgotten once the gap is over"
    assert g.profiles[V].days[1] == 1


def test_minutes_skipped_restart_the_learner_without_learning_the_hole() -> None:
    g = GapLearner()
    feed(g, T, T + 89, busy_except())
    feed(g, T + 100, T + 179, busy_except())  # 10 minutes unknown (a restart)
    assert g.profiles[U].days[1] == 0
    assert g.profiles[U].days[2] == 1


def test_json_round_trip() -> None:
    g = GapLearner()
    feed(g, T, T + 3 * 60 - 1, busy_except(range(T + 71, T + 74)))
    g.exclude(V, T + 170)
    again = GapLearner()
    again.load_json(g.to_json())
    assert again.profiles[U].to_json() == g.profiles[U].to_json()
    assert again.episodes == {V: T + 170}
    assert again.cursor is None  # learning resumes at the next whole hour


def test_detector_state_round_trip_keeps_learned_gaps(tmp_path) -> None:
    cfg = DetectConfig.model_validate({"silence": {"dimensions": ["upstream"]}})
    d = Detector(cfg, ["upstream"])
    d.topk["upstream"].touch("U1")
    feed(d.gaps, T, T + 3 * 60 - 1, busy_except(range(T + 71, T + 74)))
    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        save_detector(store.engine, d, full=True)
        again = Detector(cfg, ["upstream"])
        load_detector(store.engine, again)
    finally:
        store.close()
    assert again.gaps.profiles[U].to_json() == d.gaps.profiles[U].to_json()
    assert again.gaps.profiles[U].high[1] == 4.0
