"""Silence of one carrier vs the whole stream stopping or lagging.

A silence is ONE value that stopped while the rest of the platform flows. When the whole
stream stalls (the order source or its writer lagging) every value's last event is the
platform's last event; when rows arrive late they count at the previous poll (the
daemon's `since`), so after a slow poll every value looks as old as that poll. Neither is
a per-value silence (the 20-minute soak raised 207 of them, every carrier and upstream at
once, at the poll exactly `min_gap` after the stream's last minute).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import poisson
from watchdog.detect import DetectConfig, Detector
from watchdog.model import Cancellation, Classified, OrderCount, Verdict

START = datetime(2024, 4, 25, 0, 0, tzinfo=UTC)
CARRIERS = ("A", "B", "C", "D")
UPSTREAMS = ("U1", "U2", "U3")
DIMS = ["carrier", "upstream", "product"]
RATES = {"operator_error": 3.0, "compliance": 4.0, "customer_initiated": 2.5,
         "system_fault": 0.3}
ORDERS_PER_MINUTE = 30.0


@dataclass(frozen=True)
class Row:
    at: datetime
    carrier: str
    upstream: str
    category: str | None  # None: a new order, not a cancellation


class Platform:
    """Scheduled rows (cancellations and new orders) at their own times, per minute."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = Random(seed)

    def minute(self, t: datetime, stopped: Iterable[str] = ()) -> list[Row]:
        """The rows scheduled in the minute ending at `t`, without the `stopped`
        carriers (their cancellations and their orders)."""
        off = set(stopped)
        out = []
        for cat, lam in [*RATES.items(), (None, ORDERS_PER_MINUTE)]:
            for _ in range(poisson(self.rng, lam)):
                carrier = self.rng.choice(CARRIERS)
                upstream = self.rng.choice(UPSTREAMS)
                if carrier in off:
                    continue
                at = t - timedelta(seconds=self.rng.uniform(0, 59.9))
                out.append(Row(at, carrier, upstream, cat))
        return sorted(out, key=lambda r: r.at)


_ids = iter(range(10**9))


def _classified(r: Row) -> Classified:
    c = Cancellation(f"o{next(_ids)}", "已撤单", f"原因 {r.category}", r.at, r.at,
                     {"carrier": r.carrier, "upstream": r.upstream, "product": "P1"})
    return Classified(c, Verdict(r.category or "", "r"))


def _order_counts(rows: Iterable[Row]) -> list[OrderCount]:
    n: dict[tuple[str, str], int] = {}
    for r in rows:
        n[(r.carrier, r.upstream)] = n.get((r.carrier, r.upstream), 0) + 1
    return [OrderCount({"carrier": c, "upstream": u}, k) for (c, u), k in n.items()]


class Daemon:
    """What the daemon does with a detector: at each poll, observe the rows written so
    far and not yet read (late ones count at the previous poll, `since`), count the new
    orders created in [previous poll, now) that are written by now (as
    Pipeline._count_orders), then step."""

    def __init__(self, d: Detector, t: datetime) -> None:
        self.d = d
        self.last = t
        self.read = 0
        self.rows: list[Row] = []  # in write order

    def poll(self, now: datetime) -> list:
        fresh = self.rows[self.read:]
        self.read = len(self.rows)
        self.d.observe([_classified(r) for r in fresh if r.category], now, since=self.last)
        orders = [r for r in self.rows if r.category is None and self.last <= r.at < now]
        self.d.observe_orders(_order_counts(orders), self.last, now)
        self.last = now
        return self.d.step(now)


def _cfg() -> DetectConfig:
    return DetectConfig.model_validate({"resolve_after": "5m",
                                        "silence": {"dimensions": ["carrier", "upstream"]}})


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, Platform, datetime]:
    d = Detector(_cfg(), DIMS)
    p = Platform()
    t = START
    while t < START + timedelta(days=2):  # a flat baseline (after 6 hours)
        t += timedelta(minutes=1)
        rows = p.minute(t)
        d.observe([_classified(r) for r in rows if r.category], t, learning=True)
        d.observe_orders(_order_counts(r for r in rows if r.category is None),
                         t - timedelta(minutes=1), t)
        if t.minute % 15 == 0:
            d.step(t, learning=True)
    d.step(t, learning=True)
    return d, p, t


def fresh(warm) -> tuple[Detector, Platform, datetime]:
    d, p, t = warm
    return copy.deepcopy(d), copy.deepcopy(p), t


def silences(out: list, status: str = "firing") -> list[dict[str, str]]:
    return [dict(x.signal.labels) for x in out
            if x.signal.kind == "silence" and x.status == status]


def run(d: Detector, p: Platform, t: datetime, minutes: int,
        stopped: Callable[[int], Iterable[str]] = lambda k: (),
        write: Callable[[int], bool] = lambda k: True,
        poll_every: int = 1, daemon: Daemon | None = None) -> tuple[list, datetime, Daemon]:
    """`minutes` of simulated time from `t`; each minute's rows are scheduled, and written
    when `write(k)` (else held back and written, with their old times, at the next minute
    that writes); the daemon polls every `poll_every` minutes."""
    daemon = daemon or Daemon(d, t)
    held: list[Row] = []
    out = []
    for k in range(minutes):
        t += timedelta(minutes=1)
        held += p.minute(t, stopped(k))
        if write(k):
            daemon.rows += held
            held = []
        if (k + 1) % poll_every == 0:
            out += daemon.poll(t)
    return out, t, daemon


def test_one_carrier_silent_while_the_rest_flows_fires_once_and_resolves(warm) -> None:
    d, p, t = fresh(warm)
    out, t, daemon = run(d, p, t, 30)
    assert silences(out) == []
    out, t, daemon = run(d, p, t, 25, stopped=lambda k: ("B",), daemon=daemon)
    assert silences(out) == [{"category": "system_fault", "carrier": "B"}]
    out, t, daemon = run(d, p, t, 15, daemon=daemon)
    assert silences(out) == []
    assert silences(out, "resolved") == [{"category": "system_fault", "carrier": "B"}]


def test_one_carrier_silent_is_found_with_slow_polls_too(warm) -> None:
    """Polls 5 minutes apart (a loaded daemon): still the one carrier."""
    d, p, t = fresh(warm)
    out, t, daemon = run(d, p, t, 30, poll_every=5)
    out, t, daemon = run(d, p, t, 30, stopped=lambda k: ("C",), poll_every=5,
                         daemon=daemon)
    assert silences(out) == [{"category": "system_fault", "carrier": "C"}]


def test_every_carrier_silent_together_is_no_per_value_silence(warm) -> None:
    """The whole stream stops (source or writer down): watchdog_source_up and the cursor
    lag say so; no carrier or upstream is silent on its own."""
    d, p, t = fresh(warm)
    out, t, daemon = run(d, p, t, 30)
    out, t, daemon = run(d, p, t, 40, stopped=lambda k: CARRIERS, daemon=daemon)
    assert silences(out) == []


def test_most_carriers_silent_together_is_no_per_value_silence(warm) -> None:
    """Three of four carriers stop at once: not three carrier faults."""
    d, p, t = fresh(warm)
    out, t, daemon = run(d, p, t, 30)
    out, t, daemon = run(d, p, t, 40, stopped=lambda k: ("A", "B", "C"), daemon=daemon)
    assert [s for s in silences(out) if "carrier" in s] == []


def test_stalled_then_catching_up_stream_raises_no_silence_storm(warm) -> None:
    """The soak's writer on a loaded machine: stalls of 12-25 minutes, then catching up
    (3 minutes of rows a minute, with their scheduled, older times), and for two hours
    30+ minutes behind; polls every 5 minutes, some 10 minutes apart (a skipped run)."""
    d, p, t = fresh(warm)
    out, t, daemon = run(d, p, t, 30)
    stalls = (range(3, 15), range(40, 65), range(90, 105), range(130, 150))
    polls = {k for k in range(200) if k % 5 == 4 and not 55 <= k < 75 and not 110 <= k < 120}
    polls |= {64, 74, 119, 170, 180}  # 10-minute gaps between polls
    polls -= {174, 179, 184, 189}
    scheduled: list[list[Row]] = []
    written = 0  # minutes of rows written so far
    for k in range(200):
        t += timedelta(minutes=1)
        scheduled.append(p.minute(t))
        behind = 30 if k >= 80 else 0
        speed = 0 if any(k in s for s in stalls) else 3
        upto = max(written, min(k + 1 - behind, written + speed))
        for rows in scheduled[written:upto]:
            daemon.rows += rows
        written = upto
        if k in polls:
            out += daemon.poll(t)
    assert written <= 200 - 30  # still behind at the end
    assert silences(out) == []


def test_a_busy_carrier_with_learned_gaps_is_silent_within_two_polls(warm) -> None:
    """Two days learned the carriers' usual longest gap (about 10 events a minute each:
    one minute, every hour); with those hours warm, B is silent once its gap reaches
    `gap_floor` (2), `min_expected` (20) events were expected in it and
    `gap_min_expected` (12) in its whole empty minutes: the second poll after it
    stopped (gap 3, ~30 expected), not after `min_gap`'s ten minutes."""
    d, p, t = fresh(warm)
    d.cfg = DetectConfig.model_validate({
        "resolve_after": "5m",
        "silence": {"dimensions": ["carrier", "upstream"], "gap_warm_days": 1}})
    hour = t.hour
    assert d.gaps.usual(("carrier", "B"), hour, 1) == 1.0
    assert d.gaps.usual(("carrier", "B"), hour, 3) is None, "cold at 3 days"
    out, t, daemon = run(d, p, t, 30)
    assert silences(out) == []
    out, t, daemon = run(d, p, t, 2, stopped=lambda k: ("B",), daemon=daemon)
    assert silences(out) == [{"category": "system_fault", "carrier": "B"}]
    hit = next(x.signal for x in out if x.signal.kind == "silence")
    assert hit.window_seconds <= 180 and hit.expected >= 20
    out, t, daemon = run(d, p, t, 10, daemon=daemon)
    assert silences(out, "resolved") == [{"category": "system_fault", "carrier": "B"}]
    assert silences(out) == []


def test_learned_gaps_stay_quiet_on_a_normal_day(warm) -> None:
    """A day of the same traffic with every hour warm: no silence (the usual gap is
    learned from exactly this kind of day)."""
    d, p, t = fresh(warm)
    d.cfg = DetectConfig.model_validate({
        "resolve_after": "5m",
        "silence": {"dimensions": ["carrier", "upstream"], "gap_warm_days": 1}})
    out, _, _ = run(d, p, t, 6 * 60)
    assert silences(out) == []
