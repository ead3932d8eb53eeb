"""The step-change, new-template, cluster and silence signals: thresholds at known
means, cold start, quiet on normal data, hysteresis (resolve once normal again)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from tests.sampling import poisson
from watchdog.detect import DetectConfig, Detector
from watchdog.detect.gaps import gap_threshold
from watchdog.model import Cancellation, Classified, Verdict

START = datetime(2024, 4, 25, 0, 0, tzinfo=UTC)
RATES = {"operator_error": 3.0, "compliance": 4.0, "customer_initiated": 2.5,
         "supply_shortage": 0.6, "system_fault": 0.3}
CARRIERS = ("A", "B", "C", "D")
DIMS = ["carrier", "product", "distributor"]


def _cfg(**over: object) -> DetectConfig:
    raw: dict[str, object] = {"resolve_after": "5m",
                              "templates": {"learn_for": "1h"},
                              # the 4-day baseline's slots learn the new level at 20% a
                              # slot while it lasts: x2.2 reads as ~x1.8 after an hour,
                              # p ~3e-6 with the learned dispersion
                              "step": {"min_ratio": 1.5, "alpha": 1e-4},
                              "silence": {"dimensions": ["carrier"]}}
    raw.update(over)
    return DetectConfig.model_validate(raw)


class Stream:
    """Normal traffic one minute at a time, plus whatever a test adds."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = Random(seed)
        self.i = 0

    def ev(self, cat: str, t: datetime, reason: str | None = None, carrier: str | None = None,
           distributor: str | None = None, product: str | None = None) -> Classified:
        self.i += 1
        dims = {"carrier": carrier or self.rng.choice(CARRIERS),
                "product": product or f"P{self.rng.randrange(8)}",
                "distributor": distributor or f"D{self.rng.randrange(300)}"}
        c = Cancellation(f"o{self.i}", "已撤单", reason or f"常见原因 {cat}", t, t, dims)
        return Classified(c, Verdict(cat, "r"))

    def minute(self, t: datetime, factor: dict[str, float] | None = None,
               skip_carrier: str | None = None) -> list[Classified]:
        out = []
        for cat, lam in RATES.items():
            for _ in range(poisson(self.rng, lam * (factor or {}).get(cat, 1.0))):
                e = self.ev(cat, t - timedelta(seconds=self.rng.uniform(0, 59.9)))
                if e.cancellation.dimensions["carrier"] != skip_carrier:
                    out.append(e)
        return out


def run(d: Detector, s: Stream, t: datetime, minutes: int, extra=None, **kw
        ) -> tuple[list, datetime]:
    out = []
    for k in range(minutes):
        t += timedelta(minutes=1)
        batch = s.minute(t, **kw) + (extra(t, k) if extra else [])
        d.observe(batch, t)
        out += d.step(t)
    return out, t


@pytest.fixture(scope="module")
def warm() -> tuple[Detector, Stream, datetime]:
    d = Detector(_cfg(), DIMS)
    s = Stream()
    t = START
    while t < START + timedelta(days=4):  # time-of-day baselines (a flat one adapts fast)
        t += timedelta(minutes=1)
        d.observe(s.minute(t), t, learning=True)
        if t.minute % 15 == 0:
            d.step(t, learning=True)
    d.step(t, learning=True)
    return d, s, t


def fresh(warm) -> tuple[Detector, Stream, datetime]:
    d, s, t = warm
    return copy.deepcopy(d), copy.deepcopy(s), t


def firing(ts, kind: str) -> list:
    return [x for x in ts if x.status == "firing" and x.signal.kind == kind]


def test_normal_data_raises_nothing(warm) -> None:
    d, s, t = fresh(warm)
    out, _ = run(d, s, t, 120)
    assert [x for x in out if x.status == "firing"] == []


# --- step --------------------------------------------------------------------------------

@pytest.mark.parametrize(("factor", "fires"), [(1.2, False), (2.2, True)])
def test_step_fires_above_its_ratio_only_after_sustain(warm, factor: float, fires: bool) -> None:
    """compliance at x2.2 of a known mean (4/min) for 80 min: a step (step.min_ratio 1.5
    here), not a spike (spike.min_ratio 3), and only once it held `sustain` (20 min); at
    x1.2 nothing."""
    d, s, t = fresh(warm)
    out, t2 = run(d, s, t, 80, factor={"compliance": factor})
    steps = firing(out, "step")
    assert firing(out, "spike") == []
    if not fires:
        assert steps == []
        return
    assert steps and steps[0].signal.category == "compliance"
    assert steps[0].signal.at - t >= timedelta(minutes=20)
    assert steps[0].signal.observed >= 1.5 * steps[0].signal.expected
    # back to normal: resolves (after the long window has emptied)
    out, _ = run(d, s, t2, 90)
    assert any(x.status == "resolved" and x.signal.kind == "step" for x in out)


# --- new template --------------------------------------------------------------------------

NEW = "证件照片模糊无法识别，编号X"


def _template_burst(s: Stream, n: int, cat: str = "customer_initiated",
                    distributors: int = 1):
    def extra(t: datetime, k: int) -> list[Classified]:
        if k >= n:
            return []
        return [s.ev(cat, t - timedelta(seconds=5), NEW, distributor=f"X{k % distributors}")]
    return extra


@pytest.mark.parametrize(("n", "fires"), [(9, False), (10, True)])
def test_new_template_at_min_count(warm, n: int, fires: bool) -> None:
    d, s, t = fresh(warm)
    out, t2 = run(d, s, t, 12, extra=_template_burst(s, n))
    hits = firing(out, "new_template")
    if not fires:
        assert hits == []
        return
    assert [x.signal.labels["category"] for x in hits] == ["customer_initiated"]
    assert hits[0].signal.observed == 10
    out, _ = run(d, s, t2, 40)  # no more of it: resolves once its window ends
    assert any(x.status == "resolved" and x.signal.kind == "new_template" for x in out)


def test_new_template_cold_start_is_quiet() -> None:
    """Before templates were learned for `learn_for`, every wording is new: no alert."""
    d = Detector(_cfg(), DIMS)
    s = Stream(5)
    out, _ = run(d, s, START, 30, extra=_template_burst(s, 20))
    assert firing(out, "new_template") == []


@pytest.mark.parametrize(("distributors", "category"), [(2, "operator_error"),
                                                        (6, "system_fault")])
def test_operator_template_across_many_distributors_is_a_system_fault(
        warm, distributors: int, category: str) -> None:
    d, s, t = fresh(warm)
    out, _ = run(d, s, t, 12, extra=_template_burst(s, 10, "operator_error", distributors))
    hits = firing(out, "new_template")
    assert [x.signal.labels["category"] for x in hits] == [category]
    if category == "system_fault":
        assert hits[0].signal.labels["classified_as"] == "operator_error"
        assert "parser" in hits[0].signal.summary


@pytest.mark.parametrize(("grows", "alerts"), [(NEW, ["new_template"]),
                                               ("常见原因 operator_error",
                                                ["new_template", "spike"])])
def test_a_parser_faults_own_spike_is_its_alert(warm, grows: str, alerts: list[str]) -> None:
    """The form's fault first shows as one operator_error wording across many
    distributors (alerting as system_fault), then grows into a spike of operator_error:
    still the parser's alert, not a second one filed under the rules' verdict (scenario
    8b: the parser alert, then operator_error stage=precheck a minute later). A spike of
    other operator errors meanwhile is another incident."""
    d, s, t = fresh(warm)
    burst = _template_burst(s, 10, "operator_error", 6)

    def extra(at: datetime, k: int) -> list[Classified]:
        if k < 10:
            return burst(at, k)
        return [s.ev("operator_error", at - timedelta(seconds=1 + i), grows,
                     distributor=f"X{i}") for i in range(15)]

    out, _ = run(d, s, t, 16, extra=extra)
    assert [x.signal.kind for x in out if x.status == "firing"] == alerts
    assert firing(out, "new_template")[0].signal.labels["category"] == "system_fault"


def test_a_parser_fault_and_its_spike_crossing_at_one_poll_are_one_alert(warm) -> None:
    """The form breaks at once: the parser's wording across many distributors reaches
    its template count and a spike of operator_error at the same poll. One incident,
    one alert: the parser fault, which the spike's events belong to."""
    d, s, t = fresh(warm)

    def extra(at: datetime, k: int) -> list[Classified]:
        if k != 2:
            return []
        return [s.ev("operator_error", at - timedelta(seconds=1 + i), NEW,
                     distributor=f"X{i % 6}") for i in range(25)]

    out, _ = run(d, s, t, 4, extra=extra)
    assert [(x.signal.kind, x.signal.labels["category"]) for x in out
            if x.status == "firing"] == [("new_template", "system_fault")]


def test_a_parser_fault_stays_open_while_its_template_goes_on(warm) -> None:
    """The parser fault goes on for an hour at 4 a minute: its template is known after
    half an hour, but the alert stays open until it stops, and the operator_error shift
    it makes is its tail (scenario 8b: the parser alert resolved at 30 minutes, the
    template still coming, and a step of operator_error stage=precheck fired)."""
    d, s, t = fresh(warm)
    burst = _template_burst(s, 10, "operator_error", 6)

    def extra(at: datetime, k: int) -> list[Classified]:
        if k < 10:
            return burst(at, k)
        if k >= 70:
            return []
        return [s.ev("operator_error", at - timedelta(seconds=1 + i), NEW,
                     distributor=f"X{(k + i) % 6}") for i in range(4)]

    out, _ = run(d, s, t, 130, extra=extra)
    assert [(x.status, x.signal.kind) for x in out if x.status != "updated"] == [
        ("firing", "new_template"), ("resolved", "new_template")]
    assert out[-1].signal.at - t > timedelta(minutes=70)


def test_new_wordings_of_a_category_spiking_in_the_same_poll_belong_to_the_spike(warm) -> None:
    """A carrier outage arrives with a wording never seen before: the spike and the new
    template cross their thresholds at the same poll. One incident, one alert: the
    spike, whose samples show the wording (soak 2026-12-03: spike carrier=中国移动 and
    new_template esop接口超时 and a cluster on 中国移动, all at one poll)."""
    d, s, t = fresh(warm)

    def extra(at: datetime, k: int) -> list[Classified]:
        if k != 2:
            return []
        return [s.ev("system_fault", at - timedelta(seconds=1 + i), "esop接口超时，请稍后重试",
                     carrier="C") for i in range(25)]

    out, _ = run(d, s, t, 4, extra=extra)
    assert [x.signal.kind for x in out if x.status == "firing"] == ["spike"]
    assert firing(out, "spike")[0].signal.labels["category"] == "system_fault"


@pytest.mark.parametrize(("spreads_on", "alerts"), [("C", 1), ("A", 2)])
def test_an_incident_spreading_past_its_first_slice_stays_one_alert(
        warm, spreads_on: str, alerts: int) -> None:
    """A carrier's incident first crosses the threshold of one of its products (the
    smaller series), then spreads over the carrier's other products, and the carrier's
    series (or the whole category) fires too: still the product's alert, whose top
    contributor is that carrier (demo 2026-12-03: a carrier outage as spike
    stage=opening, then the whole category beside it). An incident of another carrier
    meanwhile is another incident: it alerts."""
    d, s, t = fresh(warm)
    cat = "operator_error"  # busy overall: one product's burst is not yet the category's

    def extra(at: datetime, k: int) -> list[Classified]:
        if k == 0:
            return [s.ev(cat, at - timedelta(seconds=1 + i), carrier="C", product="P1")
                    for i in range(12)]
        return [s.ev(cat, at - timedelta(seconds=1 + i), carrier=spreads_on,
                     product=f"P{i % 8}") for i in range(24)]

    out, _ = run(d, s, t, 5, extra=extra)
    fired = firing(out, "spike")
    assert fired and fired[0].signal.labels == {"category": cat, "product": "P1"}
    top = fired[0].signal.contributors[0]
    assert (top.dimension, top.value) == ("carrier", "C")
    assert len(fired) == alerts, [x.signal.labels for x in fired]
    last = fired[-1].signal
    # the carrier, as the alert's own label or on top of its drill-down (the
    # distributors pooled as `other` fire first: that alert takes the carrier's name)
    assert last.labels.get("carrier") == spreads_on or (
        (last.contributors[0].dimension, last.contributors[0].value) == ("carrier", spreads_on))


def test_an_incident_crossing_two_nested_slices_at_one_poll_is_one_alert(warm) -> None:
    """A carrier's outage, half of it on one product, crosses the product's threshold
    and the carrier's at the same poll. The product is the stronger signal (the
    carrier's counts are overdispersed) but holds under half the carrier's events: one
    alert still, the product's, with the carrier on top of its drill-down, as when the
    product crosses a poll earlier (soak schedule 2026-12-04: spike carrier=中国电信 and
    upstream=电信集团渠道 at one poll)."""
    d, s, t = fresh(warm)
    cat = "operator_error"
    d.series[(cat, "carrier", "C")].baseline.dispersion = 0.6

    def extra(at: datetime, k: int) -> list[Classified]:
        if k != 0:
            return []
        return [s.ev(cat, at - timedelta(seconds=1 + i), carrier="C",
                     product="P1" if i < 12 else f"P{2 + i % 6}") for i in range(25)]

    out, _ = run(d, s, t, 3, extra=extra)
    fired = firing(out, "spike")
    assert [x.signal.labels for x in fired] == [{"category": cat, "product": "P1"}]
    top = fired[0].signal.contributors[0]
    assert (top.dimension, top.value) == ("carrier", "C")


@pytest.mark.parametrize("burst", [False, True])
def test_another_categorys_alerting_burst_does_not_mask_an_outage(warm, burst: bool) -> None:
    """The nightly timeout sweep cancels x10 the usual customer_initiated orders, and
    alerts (a new sweep); a carrier's outage starts beside it. That burst is not more
    traffic: the outage alerts as it would alone (soak 2026-12-03: a signature break
    at 01:00 during the third night's sweep went unreported)."""
    d, s, t = fresh(warm)
    factor = {"customer_initiated": 10.0} if burst else None
    out, t = run(d, s, t, 8, factor=factor)
    assert [x.signal.category for x in firing(out, "spike")] == (
        ["customer_initiated"] if burst else [])

    def extra(at: datetime, k: int) -> list[Classified]:
        return [s.ev("system_fault", at - timedelta(seconds=1 + i), carrier="C")
                for i in range(3)]

    out, _ = run(d, s, t, 4, extra=extra, factor=factor)
    assert [x.signal.category for x in firing(out, "spike")] == ["system_fault"]


# --- clusters ------------------------------------------------------------------------------

WORDINGS = ("新规：该地区暂停受理", "风控升级，需人脸核验后再提交", "监管要求暂停异地开户")

@pytest.mark.parametrize(("wordings", "fires"), [(1, False), (2, True), (3, True)])
def test_cluster_of_new_compliance_wordings_on_one_carrier(warm, wordings: int,
                                                           fires: bool) -> None:
    """compliance clusters need 2 never-seen wordings on one slice within 5 minutes."""
    d, s, t = fresh(warm)
    out, _ = run(d, s, t, 4, extra=_one_a_minute(s, WORDINGS[:wordings]))
    hits = [x for x in firing(out, "new_template") if "template" not in x.signal.labels]
    if fires:
        assert [dict(x.signal.labels) for x in hits] == [{"category": "compliance",
                                                           "carrier": "C"}]
    else:
        assert hits == []


def test_a_cluster_stays_open_while_its_slice_still_cancels_far_above_normal(warm) -> None:
    """A product's pool runs dry for an hour: its two new wordings alert as a cluster,
    and are known half an hour later, while the product still fails. The alert stays
    open until the product is normal again, and the category's spike of the same events
    stays its alert (scenario 3: the cluster resolved while the pool was still dry, and
    the category fired overall at that very poll)."""
    d, s, t = fresh(warm)
    dry = ("号码资源不足，请更换套餐", "号池已空，暂无可选号码")

    def extra(at: datetime, k: int) -> list[Classified]:
        if k >= 60:
            return []
        return [s.ev("supply_shortage", at - timedelta(seconds=1 + i), dry[i % 2],
                     product="P3") for i in range(3)]

    out, _ = run(d, s, t, 100, extra=extra)
    assert [(x.status, x.signal.kind) for x in out if x.status != "updated"] == [
        ("firing", "new_template"), ("resolved", "new_template")]
    fired, resolved = out[0], out[-1]
    assert fired.signal.labels == {"category": "supply_shortage", "product": "P3"}
    assert resolved.signal.at - t > timedelta(minutes=60)


def test_a_known_wording_wrapped_otherwise_is_not_new(warm) -> None:
    """Labels a system in between adds (`失败原因：`, `【C系统】`) and trailing marks do
    not make a known wording new: three of them on one carrier are no cluster."""
    d, s, t = fresh(warm)
    wrapped = ("失败原因：常见原因 compliance~", "【C系统】常见原因 compliance！！",
               "上游反馈：审核结果：常见原因 compliance。")
    out, _ = run(d, s, t, 4, extra=_one_a_minute(s, wrapped))
    assert firing(out, "new_template") == []


def _one_a_minute(s: Stream, reasons: tuple[str, ...]):
    def extra(at: datetime, k: int) -> list[Classified]:
        if k >= len(reasons):
            return []
        return [s.ev("compliance", at - timedelta(seconds=3), reasons[k], carrier="C")]
    return extra


def _alerting_for_volume(d: Detector, t: datetime, category: str, distributor: str) -> None:
    from watchdog.detect import VOLUME
    from watchdog.model import Signal

    d.episodes.fire(Signal(VOLUME, {"category": category, "distributor": distributor}, t,
                           True, 20.0, 0.3, 900.0, "warning", 1.5), t)


@pytest.mark.parametrize("abuser", [False, True])
def test_a_distributor_alerting_for_its_volume_takes_its_cluster(warm, abuser: bool) -> None:
    """New compliance wordings on a distributor already alerting for its volume (abuse)
    are that incident, not a second alert; on any other distributor they are a cluster."""
    d, s, t = fresh(warm)
    if abuser:
        _alerting_for_volume(d, t, "compliance", "D7")

    def extra(at: datetime, k: int) -> list[Classified]:
        if k >= 3:
            return []
        return [s.ev("compliance", at - timedelta(seconds=3), WORDINGS[k],
                     carrier=CARRIERS[k], product=f"P{k}", distributor="D7")]

    out, _ = run(d, s, t, 4, extra=extra)
    hits = [x for x in firing(out, "new_template") if "template" not in x.signal.labels]
    expected = [] if abuser else [{"category": "compliance", "distributor": "D7"}]
    assert [dict(x.signal.labels) for x in hits] == expected


@pytest.mark.parametrize("wordings", [1, 3])
@pytest.mark.parametrize("abuser", [False, True])
def test_an_abusers_new_wordings_elsewhere_are_its_incident(warm, abuser: bool,
                                                            wordings: int) -> None:
    """The same for what its events make elsewhere: one new wording in volume, or a
    cluster on the carrier its orders go to (scenario 7: the volume alert, then 18
    minutes later `同一ip/设备高频下单` and a cluster on 中国移动, all D27850's)."""
    d, s, t = fresh(warm)
    if abuser:
        _alerting_for_volume(d, t, "duplicate", "D7")

    def extra(at: datetime, k: int) -> list[Classified]:
        if k >= 5:
            return []
        return [s.ev("compliance", at - timedelta(seconds=3 + i), WORDINGS[i % wordings],
                     carrier="C", product=f"P{i}", distributor="D7") for i in range(3)]

    out, _ = run(d, s, t, 6, extra=extra)
    hits = [tuple(sorted(x.signal.labels)) for x in firing(out, "new_template")]
    if abuser:
        assert hits == []
    elif wordings == 1:  # 15 events of one wording
        assert hits == [("category", "template")]
    else:  # the carrier's cluster takes the wordings
        assert hits == [("carrier", "category")]


# --- silence -------------------------------------------------------------------------------

def test_silence_fires_after_the_learned_gap_and_resolves_when_events_return(warm) -> None:
    """Four days learned B's usual longest gap at this hour (~2.6 events a minute: a few
    minutes); B is silent at gap_factor (2) times it, once min_expected events were
    expected in the gap."""
    d, s, t = fresh(warm)
    cfg = d.cfg.silence
    usual = d.gaps.usual(("carrier", "B"), t.hour, cfg.gap_warm_days)
    assert usual is not None and 2 <= usual <= 6
    need = gap_threshold(usual, 2, cfg.gap_factor, 10)
    out, t2 = run(d, s, t, need - 2, skip_carrier="B")  # its last event: the minute before
    assert firing(out, "silence") == [], f"a gap below {need} minutes is usual"
    out, t3 = run(d, s, t2, 6, skip_carrier="B")
    hits = firing(out, "silence")
    assert [dict(x.signal.labels) for x in hits] == [{"category": "system_fault",
                                                       "carrier": "B"}]
    assert hits[0].signal.window_seconds >= need * 60
    assert hits[0].signal.expected >= 20  # min_expected
    out, _ = run(d, s, t3, 10)
    assert any(x.status == "resolved" and x.signal.kind == "silence" for x in out)


def test_silence_cold_start_is_quiet() -> None:
    d = Detector(_cfg(), DIMS)
    s = Stream(7)
    out, _ = run(d, s, START, 30, skip_carrier="B")
    assert firing(out, "silence") == []
