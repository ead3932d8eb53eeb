"""Names and small helpers shared by the detector and its tests (counts, novelty, silence)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .episodes import EpisodeKey
from .series import SeriesKey, labels_of
from .spike import CountTest

SPIKE = "spike"
STEP = "step"
NEW_TEMPLATE = "new_template"
SILENCE = "silence"
VOLUME = "volume"
SILENCE_CATEGORY = "system_fault"
"""An upstream or carrier falling silent is an integration fault."""
SWEEP_SHARE = 5
"""Each poll catches up the baselines of 1/SWEEP_SHARE of the series (bounded poll cost)."""
MAX_SILENCE_MINUTES = 24 * 60

Paused = Callable[[Mapping[str, str], datetime], bool]
"""(labels, now) -> True inside an announced maintenance window for those labels."""


def is_cluster(kind: str, labels: Mapping[str, str]) -> bool:
    """A new-wording episode of a slice (category and one dimension), not of one template."""
    return kind == NEW_TEMPLATE and "template" not in labels and len(labels) == 2


def minute_of(t: datetime) -> int:
    return int(t.timestamp()) // 60


def second_of(t: datetime) -> int:
    return int(t.timestamp())


def window_start(now: datetime, minutes: int) -> int:
    """First epoch second of the trailing `minutes` of real time ending at `now`.

    Windows are exact, not whole calendar minutes: an event stays inside for `minutes`
    after it happened, whatever the poll's position in the minute.
    """
    return second_of(now) - minutes * 60


def minutes_of(td: timedelta) -> int:
    return max(1, math.ceil(td.total_seconds() / 60))


@dataclass(frozen=True, slots=True)
class Finding:
    key: SeriesKey
    test: CountTest
    window: int = 0
    """Minutes of the window that fired, when not the kind's own (a slice's short window)."""


def ekey(kind: str, key: SeriesKey) -> EpisodeKey:
    return (kind, tuple(sorted(labels_of(key).items())))


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    cat = labels.get("category", "")
    rest = [(k, v) for k, v in labels.items() if k != "category"]
    if not rest:
        return (cat, "", "")
    d, v = rest[0]
    return (cat, d, v)
