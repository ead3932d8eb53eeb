"""Detection proof: each incident of DOMAIN.md alone, benign patterns alone, a clean week.

Warm-up: four simulated days learned directly (harness.warm_detector). Incidents run
through `replay` over a live-fed SQLite order database (the real pipeline). The clean
run continues the warm stream for CLEAN_DAYS (default 7; set WATCHDOG_SCENARIO_DAYS=28
for the month recorded in docs/detection.md) through the daemon's detection stage.
`pytest -s tests/scenarios` prints the table.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from watchdog.detect.episodes import Transition
from watchdog.rules import load_rules
from watchdog.simulate import (
    CarrierOutage,
    DistributorAbuse,
    Incident,
    NumberPoolExhausted,
    OpsBulkCancel,
    PolicyChange,
    ProductTakedown,
    RegionalPause,
    UpstreamSignatureBreak,
    UpstreamSilence,
)
from watchdog.simulate.lifecycle import quick_cancel_plan
from watchdog.simulate.world import World

from .harness import POLL, SEED, T0, ZONE, config, local, run_clean, run_replay, save_state
from .harness import warm_detector as warm

CLEAN_DAYS = float(os.environ.get("WATCHDOG_SCENARIO_DAYS", "7"))
ONSET = T0 + timedelta(minutes=90)
HOURS = 3.0
WORLD = World(SEED, 2000)
ABUSER = WORLD.distributor_ids[150]
FORM_BUG_DISTRIBUTOR = WORLD.distributor_ids[40]


@dataclass(frozen=True, slots=True)
class FormBug(Incident):
    """Incident 8: our order form breaks for one distributor's page: operator errors."""

    distributor: str
    start: datetime
    duration: timedelta
    rate_per_min: float = 2.5

    def inject(self, world, lo, hi, rng, new_id):
        from watchdog.simulate.clock import to_sim

        a = max(lo, to_sim(self.start))
        b = min(hi, to_sim(self.start + self.duration))
        out = []
        t = float(a)
        rank = world.rank_of[self.distributor]
        while b > a:
            t += rng.expovariate(self.rate_per_min / 60)
            if t >= b:
                break
            created = int(t)
            draft = world.draft(rng, created, new_id(), distributor=rank)
            at = created + int(rng.uniform(10, 90))
            out.append((draft, quick_cancel_plan(created, at, "operator_error")))
        return out


@dataclass(frozen=True, slots=True)
class ParserBug(Incident):
    """Incident 8, second half: our form or parser breaks one field for every distributor;
    the same operator_error wording appears across many distributors at once."""

    start: datetime
    duration: timedelta
    rate_per_min: float = 8.0

    def inject(self, world, lo, hi, rng, new_id):
        from watchdog.simulate.clock import to_sim

        a = max(lo, to_sim(self.start))
        b = min(hi, to_sim(self.start + self.duration))
        out = []
        t = float(a)
        while b > a:
            t += rng.expovariate(self.rate_per_min / 60)
            if t >= b:
                break
            created = int(t)
            draft = world.draft(rng, created, new_id())
            at = created + int(rng.uniform(10, 90))
            out.append((draft, quick_cancel_plan(created, at, "form_parser")))
        return out


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    incidents: tuple[Incident, ...]
    categories: tuple[str, ...]
    contributor: tuple[str, str] | None
    kinds: tuple[str, ...] = ("spike", "step", "new_template")
    detect: dict | None = None
    hours: float = HOURS
    alerting: dict | None = None
    max_delay: timedelta = 2 * POLL
    also: tuple[str, ...] = ()
    """Categories the incident also raises that are not false alerts (the parser bug's
    operator errors spike too)."""
    """From the first symptom (for silence: from when the gap became abnormal, see
    `_silence_onset`). The issue's floor is two polls; a case that cannot meet it says
    why next to its own bound (docs/detection.md)."""


INCIDENTS = [
    Case("1 carrier BSS outage", (CarrierOutage("中国联通", ONSET, timedelta(minutes=30)),),
         ("system_fault",), ("carrier", "中国联通")),
    Case("2 upstream signature break",
         (UpstreamSignatureBreak("华南号卡联盟", ONSET, timedelta(minutes=30)),),
         ("system_fault",), ("upstream", "华南号卡联盟")),
    Case("2b upstream callbacks stop", (UpstreamSilence("号卡云仓", ONSET, timedelta(hours=2)),),
         ("system_fault",), ("upstream", "号卡云仓"), kinds=("silence",)),
    Case("3 number pool exhausted",
         (NumberPoolExhausted("联通大王卡29元", ONSET, timedelta(hours=2)),),
         ("supply_shortage",), ("product", "联通大王卡29元")),
    Case("4 policy step change", (PolicyChange("中国移动", ONSET, None, None, 0.3),),
         ("compliance",), ("carrier", "中国移动")),
    Case("5 regional pause", (RegionalPause("河南", ONSET, timedelta(hours=1)),),
         ("compliance",), ("province", "河南")),
    Case("6 product takedown", (ProductTakedown("联通王卡19元", ONSET),),
         ("supply_shortage",), ("product", "联通王卡19元")),
    Case("7 distributor abuse", (DistributorAbuse(ABUSER, ONSET, timedelta(hours=1)),),
         # NOT at the floor (bound 4 min, met at 3.6): its orders are x10 from the
         # start (3 a minute), but a promotion burst is too; what tells abuse is the
         # cancellations leaning to compliance/duplicate, and at onset the abuser has
         # only ~1 cancellation a minute (each 20 s-15 min after its order): two polls
         # after the first symptom it has 2, and 2 of 2 happen by chance 18% of the
         # time at the usual 42% share. The volume test fires at the 4th (4 of 4: 3%),
         # 6 minutes from onset, with 17 orders against 0.34 expected.
         ("compliance", "duplicate"), ("distributor", ABUSER),
         kinds=("spike", "step", "new_template", "volume"),
         max_delay=timedelta(minutes=4)),
    Case("8 form bug (one distributor)",
         (FormBug(FORM_BUG_DISTRIBUTOR, ONSET, timedelta(hours=1)),),
         ("operator_error",), ("distributor", FORM_BUG_DISTRIBUTOR)),
    # one operator_error wording across many distributors: our own parser (system_fault)
    Case("8b parser bug (one template, many distributors)",
         (ParserBug(ONSET, timedelta(hours=1)),), ("system_fault",), None,
         kinds=("new_template",), also=("operator_error",)),
]

BENIGN = [
    Case("ops bulk action (excluded)",
         (OpsBulkCancel(ONSET, distributor=WORLD.distributor_ids[5]),), (), None),
    Case("announced maintenance (config)",
         (CarrierOutage("中国电信", ONSET, timedelta(minutes=20)),), (), None,
         alerting={"maintenance": [{"name": "电信 BSS upgrade", "cron": "0 11 * * *",
                                     "duration": "3h", "match": {"carrier": "中国电信"}}]}),
]


@dataclass
class Row:
    name: str
    delay: str
    symptom_delay: str
    false_alerts: int
    drill_down: str
    ok: bool
    own_alerts: str = "-"
    """How many alerts (firing episodes) the incident raised in its own categories: one
    incident, one alert, or a few where it really is several (an outage spreading)."""


ROWS: list[Row] = []
CLEAN_ALERTS: list[str] = []
INCIDENT_ALERTS: list[str] = []


@pytest.fixture(scope="module")
def warm_state(tmp_path_factory: pytest.TempPathFactory):
    rules = load_rules([], use_defaults=True)
    cfg = config("sqlite://", "sqlite://")
    stage, feed = warm(cfg, rules)
    path = tmp_path_factory.mktemp("warm") / "state.db"
    save_state(stage, f"sqlite:///{path}")
    return path, stage, feed


def _matches(t: Transition, case: Case) -> bool:
    s = t.signal
    if t.status != "firing" or s.kind not in case.kinds or s.category not in case.categories:
        return False
    if case.contributor is None:
        return True
    # the right TOP contributor: the alert's own slice label, or the first contributor
    dim, value = case.contributor
    if dim in s.labels:
        return s.labels[dim] == value
    return bool(s.contributors) and (s.contributors[0].dimension,
                                     s.contributors[0].value) == (dim, value)


ABNORMAL_GAP = math.log(1000)
"""Expected events in a gap with a 0.1% chance of being empty: an upstream's silence is
abnormal from then on (at 3 events a minute, 2.3 minutes after its last event)."""


def _silence_onset(t: Transition) -> datetime:
    """When the gap became abnormal: its last event plus the time in which the baseline
    expected ABNORMAL_GAP events (the signal carries the gap and its expectation)."""
    gap = t.signal.window_seconds
    rate = t.signal.expected / gap if gap else 0.0
    last = t.signal.at - timedelta(seconds=gap)
    return last + timedelta(seconds=ABNORMAL_GAP / rate) if rate > 0 else t.signal.at


def _first_symptom(case: Case) -> datetime:
    """When the first cancellation caused by the incident became visible."""
    from watchdog.simulate import generate

    base = {(w.id, w.status) for w in generate(ONSET, ONSET + timedelta(hours=1), seed=SEED,
                                                 lead_in=timedelta(days=1))
            if w.cancelled}
    for w in generate(ONSET, ONSET + timedelta(hours=1), seed=SEED, incidents=case.incidents,
                      lead_in=timedelta(days=1)):
        if w.cancelled and (w.id, w.status) not in base:
            return local(w.commit_at)
    return local(ONSET)


# the first test also pays for the module's warm-up (about a minute alone; five on a
# machine shared with other benchmarks, over the default 300 s)
@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", INCIDENTS, ids=[c.name for c in INCIDENTS])
def test_incident_detected(case: Case, warm_state, tmp_path: Path) -> None:
    transitions = run_replay(tmp_path, warm_state[0], case.incidents, case.hours, case.detect)
    onset = local(ONSET)
    hits = [t for t in transitions if _matches(t, case) and t.signal.at >= onset]
    false = [t for t in transitions if t.status == "firing" and not _matches(t, case)
             and (t.signal.at < onset
                  or t.signal.category not in case.categories + case.also)]
    first = hits[0] if hits else None
    symptom = onset
    if first:
        silence = case.kinds == ("silence",)
        symptom = _silence_onset(first) if silence else _first_symptom(case)
    delay = (first.signal.at - onset) if first else None
    sdelay = (first.signal.at - symptom) if first else None
    top = first.signal.contributors[0] if first and first.signal.contributors else None
    drill = "-"
    if first:
        scope = {k: v for k, v in first.signal.labels.items() if k != "category"}
        drill = (f"{first.signal.kind} {first.signal.category} "
                 + " ".join(f"{k}={v}" for k, v in scope.items())
                 + (f"; top {top.dimension} {top.value}: {top.observed:g} of "
                    f"{first.signal.observed:g}, expected {top.expected:g}" if top else ""))
    ok = first is not None and sdelay <= case.max_delay
    own = [t for t in transitions if t.status == "firing" and t.signal.at >= onset
           and t.signal.category in case.categories + case.also]
    INCIDENT_ALERTS.extend(f"{case.name}: {_brief([t])}" for t in own)
    ROWS.append(Row(case.name, _fmt(delay), _fmt(sdelay), len(false), drill, ok,
                    str(len(own))))
    assert first is not None, f"{case.name}: not detected; got {_brief(transitions)}"
    assert sdelay <= case.max_delay, f"{case.name}: detected {sdelay} after first symptom"
    for t in transitions:  # samples quote reasons: never a whole phone or ID number
        assert not any(re.search(r"\d{11}", x) for x in t.signal.samples)


@pytest.mark.parametrize("case", BENIGN, ids=[c.name for c in BENIGN])
def test_benign_pattern_quiet(case: Case, warm_state, tmp_path: Path) -> None:
    transitions = run_replay(tmp_path, warm_state[0], case.incidents, 2.0, case.detect,
                             alerting=case.alerting)
    firing = [t for t in transitions if t.status == "firing"]
    ROWS.append(Row(case.name, "-", "-", len(firing), "-", not firing))
    assert not firing, _brief(firing)


# A simulated week through the detector: about 2-4 minutes on a quiet 2-core machine,
# over 5 on a busy one; the suite-wide 300 s limit is for tests that hang.
@pytest.mark.timeout(1200)
def test_clean_stream_quiet(warm_state) -> None:
    """Nightly timeout jobs, the 09:00 review release, callback repeats, promotion bursts,
    small night denominators, high-reject products, the month end, ops bulk actions and
    test orders are all in the clean stream: at most 2 alerts a week, and none in the
    windows of those patterns."""
    _, stage, feed = warm_state
    transitions = run_clean(stage, feed, CLEAN_DAYS)
    firing = [t for t in transitions if t.status == "firing"]
    weeks = CLEAN_DAYS / 7
    windows = {
        "nightly timeout jobs 00:00-02:00": lambda t: t.hour < 2,
        "09:00 review release 08:45-10:30": lambda t: (8, 45) <= (t.hour, t.minute) < (10, 30),
        "month end (last 2 days)": lambda t: (t + timedelta(days=2)).month != t.month,
        "night small denominators 02:00-07:00": lambda t: 2 <= t.hour < 7,
    }
    for name, inside in windows.items():
        n = sum(1 for t in firing if inside(t.signal.at.astimezone(ZONE)))
        ROWS.append(Row(f"benign in clean run: {name}", "-", "-", n, "-", n == 0))
    ROWS.append(Row(f"clean run, {CLEAN_DAYS:g} days (all series)", "-", "-", len(firing),
                    f"{len(firing) / weeks:.1f} per week", len(firing) <= 2 * weeks))
    CLEAN_ALERTS.extend(_detail(t) for t in firing)
    assert len(firing) <= 2 * max(weeks, 1), _brief(firing)


def _detail(t: Transition) -> str:
    """One clean-run alert in full: which series, when, and how far over its baseline."""
    s = t.signal
    top = s.contributors[0] if s.contributors else None
    return (f"{s.at.astimezone(ZONE):%a %d %H:%M:%S} {s.kind} {dict(s.labels)}: "
            f"{s.observed:g} observed vs {s.expected:.2f} expected in "
            f"{s.window_seconds:g} s, score {s.score:.3g}"
            + (f"; top {top.dimension} {top.value} {top.observed:g}/{top.expected:.2f}"
               if top else ""))


def _fmt(td: timedelta | None) -> str:
    return "missed" if td is None else f"{td.total_seconds() / 60:.1f} min"


def _brief(ts: list[Transition]) -> str:
    return "; ".join(f"{t.status} {t.signal.kind} {dict(t.signal.labels)} at "
                     f"{t.signal.at.astimezone(ZONE):%d %H:%M}" for t in ts[:12])


def teardown_module() -> None:
    if not ROWS:
        return
    lines = ["", "| scenario | delay from onset | from first symptom | false alerts | "
             "its own alerts | first alert and top contributor | ok |",
             "|---|---|---|---|---|---|---|"]
    for r in ROWS:
        lines.append(f"| {r.name} | {r.delay} | {r.symptom_delay} | {r.false_alerts} | "
                     f"{r.own_alerts} | {r.drill_down} | {'yes' if r.ok else 'NO'} |")
    if INCIDENT_ALERTS:
        lines += ["", "incident alerts:"] + [f"- {x}" for x in INCIDENT_ALERTS]
    if CLEAN_ALERTS:
        lines += ["", "clean-run alerts:"] + [f"- {x}" for x in CLEAN_ALERTS]
    text = "\n".join(lines)
    print(text)
    out = os.environ.get("WATCHDOG_SCENARIO_TABLE")
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")

