"""Seasonal, robust, decayed baselines: the expected rate of one series at any minute.

Three profiles are learned side by side, each an exponentially weighted mean of the rate
(events per minute):

- hour of week (168 slots), used once a slot has seen two weeks;
- time of day in 5-minute slots (288), used for the hour's level after three days (of
  the hour's end: a series born inside an hour counts from the next) and,
  once warm, for the shape *within* an hour (nightly timeout jobs and the 09:00 review
  release land in the same few minutes every day);
- flat, used after six hours, at its recent peak (a flat mean would call every
  morning ramp-up a spike).

Learning is robust: once a slot is warm, an observation above mean + 4 sd is clipped
before it is learned, so one incident cannot teach the baseline that incidents are
normal, nor is such an hour a sample of the series' dispersion (each incident hour
learned while young made the series' tests deafer). The caller freezes learning while a
series is alerting. `scale` carries a level accepted after a sustained step
(observations are learned divided by it).

Except for what recurs: a slot of the day (or an hour of the day) above its clip on
`RECUR_DAYS` days in a row (the neighbouring slot or hour counts as the same) is a new
daily pattern, say a nightly job swept from one day on, not an incident. It is learned as
it is, at `RECUR_ALPHA`, frozen or not, and a recurring hour is learned (and read) for
every day of the week, but not into the flat fallback, which stands for every hour.
Without this the clip and the freeze kept such a burst from ever being learned: it
alerted every night.
"""

from __future__ import annotations

import math
import struct
from array import array

from .stats import dispersion_sample

SLOT_MINUTES = 5
SLOTS_PER_HOUR = 60 // SLOT_MINUTES
SLOTS_PER_DAY = 24 * SLOTS_PER_HOUR
HOURS_PER_WEEK = 168

WARM_WEEK = 2
WARM_DAY = 3
WARM_FLAT = 6
WEEK_ALPHA = 0.3
DAY_ALPHA = 0.12
FLAT_ALPHA = 0.02
PEAK_DECAY = 0.985
"""Per hour: the flat fallback's peak forgets in about three days."""
DISP_ALPHA = 0.02
DEFAULT_DISPERSION = 0.1
MAX_DISPERSION = 2.0
CLIP_SD = 4.0
MIN_RATE = 1.0 / (7 * 1440)
"""Expected events per minute never go below one a week (tests need mu > 0)."""
RECUR_DAYS = 3
RECUR_ALPHA = 0.75
HOUR_KEYS = SLOTS_PER_DAY
"""`recur` keys: slots of the day are 0-287, hours of the day 288-311."""

_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
_HEADER = struct.Struct("<BdHddd")
_RECUR = struct.Struct("<HiB")
_VERSION = 2


def hour_of_week(local_hour: int) -> int:
    """Monday 00:00 = 0 for a count of local hours since the epoch."""
    day = local_hour // 24
    return ((day + _EPOCH_WEEKDAY) % 7) * 24 + local_hour % 24


class Baseline:
    __slots__ = ("day", "day_n", "dispersion", "flat", "flat_n", "peak", "recur", "scale",
                 "week", "week_n")

    def __init__(self) -> None:
        self.week = array("f", bytes(4 * HOURS_PER_WEEK))
        self.week_n = bytearray(HOURS_PER_WEEK)
        self.day = array("f", bytes(4 * SLOTS_PER_DAY))
        self.day_n = bytearray(SLOTS_PER_DAY)
        self.flat = 0.0
        self.flat_n = 0
        self.peak = 0.0
        self.dispersion = DEFAULT_DISPERSION
        self.scale = 1.0
        self.recur: dict[int, tuple[int, int]] = {}
        """Slots and hours of the day above their clip lately: key -> (local day, days in
        a row). Only the last two days matter, so it stays small."""

    # --- reading --------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        return self.flat_n >= WARM_FLAT

    def hour_rate(self, local_hour: int) -> float | None:
        """Expected events per minute in one local hour, or None while cold."""
        h = hour_of_week(local_hour)
        if self.week_n[h] >= WARM_WEEK:
            return self.week[h] * self.scale
        first = (local_hour % 24) * SLOTS_PER_HOUR
        # an hour counts its days by its last slot: a series born at 00:07 has seen
        # midnight's first slot a day less than the rest of the hour
        if self.day_n[first + SLOTS_PER_HOUR - 1] >= WARM_DAY:
            return sum(self.day[first:first + SLOTS_PER_HOUR]) / SLOTS_PER_HOUR * self.scale
        if self.flat_n >= WARM_FLAT:
            return max(self.flat, self.peak) * self.scale
        return None

    def slot_rate(self, local_slot: int) -> float | None:
        """Expected events per minute in one local 5-minute slot, or None while cold."""
        base = self.hour_rate(local_slot // SLOTS_PER_HOUR)
        if base is None:
            return None
        i = local_slot % SLOTS_PER_DAY
        if self.day_n[i] >= WARM_DAY:
            first = i - i % SLOTS_PER_HOUR
            hour_mean = sum(self.day[first:first + SLOTS_PER_HOUR]) / SLOTS_PER_HOUR
            if hour_mean > 0:
                # the max of the neighbours absorbs a recurring burst that drifts a slot
                d = self.day
                shape = max(d[i - 1], d[i], d[(i + 1) % SLOTS_PER_DAY]) / hour_mean
                base *= shape
        return max(base, MIN_RATE)

    def expected(self, local_start: int, minutes: float) -> float | None:
        """Expected events in [local_start, local_start + minutes) (local minutes)."""
        total = 0.0
        t = float(local_start)
        end = local_start + minutes
        while t < end - 1e-9:
            slot = int(t // SLOT_MINUTES)
            slot_end = (slot + 1) * SLOT_MINUTES
            rate = self.slot_rate(slot)
            if rate is None:
                return None
            total += rate * (min(end, slot_end) - t)
            t = slot_end
        return total

    # --- learning -------------------------------------------------------------------------

    def learn_slot(self, local_slot: int, count: float, frozen: bool = False) -> None:
        """Learn one settled 5-minute slot; `frozen` (the series alerts) learns it only
        when it recurs."""
        i = local_slot % SLOTS_PER_DAY
        n = self.day_n[i]
        x = count / self.scale
        a = max(1.0 / (n + 1), DAY_ALPHA)
        if n >= WARM_DAY:
            cap = _cap(self.day[i] * SLOT_MINUTES, self.dispersion)
            near = ((i - 1) % SLOTS_PER_DAY, i, (i + 1) % SLOTS_PER_DAY)
            if x > cap and self._recurs(i, local_slot // SLOTS_PER_DAY, near):
                a = max(a, RECUR_ALPHA)
            elif frozen:
                return
            else:
                x = min(x, cap)
        elif frozen:
            return
        self.day[i] += a * (x / SLOT_MINUTES - self.day[i])
        self.day_n[i] = min(255, n + 1)

    def learn_hour(self, local_hour: int, count: float, frozen: bool = False) -> None:
        """Learn one complete local hour (called after its 12 slots)."""
        before = self.hour_rate(local_hour)
        x = count / self.scale
        recurring = False
        if before is not None:
            hod = local_hour % 24
            near = tuple(HOUR_KEYS + (hod + k) % 24 for k in (-1, 0, 1))
            above = x > _cap(before * 60 / self.scale, self.dispersion)
            recurring = above and self._recurs(HOUR_KEYS + hod, local_hour // 24, near)
            if frozen and not recurring:
                return
            sample = dispersion_sample(count, before * 60)
            if sample is not None and not above:
                sample = min(max(sample, 0.0), MAX_DISPERSION)
                self.dispersion += DISP_ALPHA * (sample - self.dispersion)
        elif frozen:
            return
        h = hour_of_week(local_hour)
        n = self.week_n[h]
        self.week_n[h] = min(255, n + 1)
        if recurring:
            # a daily pattern: every day of the week's hour learns it, and is read from
            # now on (not after two weeks of that weekday)
            for d in range(7):
                w = d * 24 + h % 24
                self.week[w] += max(WEEK_ALPHA, RECUR_ALPHA) * (x / 60 - self.week[w])
                self.week_n[w] = max(self.week_n[w], WARM_WEEK)
        else:
            wx = min(x, _cap(self.week[h] * 60, self.dispersion)) if n >= WARM_WEEK else x
            a = max(1.0 / (n + 1), WEEK_ALPHA)
            self.week[h] += a * (wx / 60 - self.week[h])
        # the flat fallback stands for every hour: a pattern of one hour is not learned
        # into it (a break recurring at 13:00 raised the expectation at 01:00 to its level)
        fx = x if self.flat_n < WARM_FLAT else min(x, _cap(self.flat * 60, self.dispersion))
        a = max(1.0 / (self.flat_n + 1), FLAT_ALPHA)
        self.flat += a * (fx / 60 - self.flat)
        self.flat_n = min(65535, self.flat_n + 1)
        self.peak = max(fx / 60, self.peak * PEAK_DECAY)

    def _recurs(self, key: int, day: int, near: tuple[int, ...]) -> bool:
        """Note that `key` went above its clip on local `day`: True once that has happened
        on RECUR_DAYS days in a row (for it or a key in `near`)."""
        r = self.recur
        got = r.get(key)
        if got is not None and got[0] == day:
            run = got[1]
        else:
            run = 1 + max((r[k][1] for k in near if k in r and r[k][0] == day - 1), default=0)
            if len(r) >= 8:
                for k in [k for k, (d, _) in r.items() if d < day - 1]:
                    del r[k]
            r[key] = (day, min(run, 255))
        return run >= RECUR_DAYS

    # --- persistence ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(_VERSION, self.flat, self.flat_n, self.peak, self.dispersion,
                            self.scale)
        recur = b"".join(_RECUR.pack(k, d, n) for k, (d, n) in self.recur.items())
        return b"".join((head, self.week.tobytes(), bytes(self.week_n), self.day.tobytes(),
                         bytes(self.day_n), recur))

    @classmethod
    def from_bytes(cls, data: bytes) -> Baseline:
        b = cls()
        version, b.flat, b.flat_n, b.peak, b.dispersion, b.scale = _HEADER.unpack_from(data)
        if version not in (1, _VERSION):
            raise ValueError(f"baseline format {version} is not supported")
        pos = _HEADER.size
        b.week = array("f", data[pos:pos + 4 * HOURS_PER_WEEK])
        pos += 4 * HOURS_PER_WEEK
        b.week_n = bytearray(data[pos:pos + HOURS_PER_WEEK])
        pos += HOURS_PER_WEEK
        b.day = array("f", data[pos:pos + 4 * SLOTS_PER_DAY])
        pos += 4 * SLOTS_PER_DAY
        b.day_n = bytearray(data[pos:pos + SLOTS_PER_DAY])
        pos += SLOTS_PER_DAY
        for at in range(pos, len(data) - _RECUR.size + 1, _RECUR.size):
            k, d, n = _RECUR.unpack_from(data, at)
            b.recur[k] = (d, n)
        return b


def _cap(mean_count: float, dispersion: float) -> float:
    """The largest count learned as is: mean + CLIP_SD negative-binomial sd (+2 for tiny means)."""
    return mean_count + CLIP_SD * math.sqrt(mean_count * (1 + dispersion * mean_count)) + 2
