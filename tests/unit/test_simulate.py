"""The simulated order stream: determinism, realism bounds, traps, incidents."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest

from watchdog.simulate import (
    CarrierOutage,
    DistributorAbuse,
    NumberPoolExhausted,
    OpsBulkCancel,
    OrderWrite,
    PolicyChange,
    ProductTakedown,
    RegionalPause,
    UpstreamSignatureBreak,
    UpstreamSilence,
    distributor_id,
    generate,
    is_valid_id_number,
)
from watchdog.simulate.catalog import ALL_PREFIXES, PROVINCES
from watchdog.simulate.reason_texts import NOISE_NOTES, STATUS_NOTES

DAY = datetime(2026, 11, 23)  # a Monday
TIMELINE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def one_day() -> list[OrderWrite]:
    """One full day at the default volume."""
    return list(generate(DAY, DAY + timedelta(days=1), seed=11))


@pytest.fixture(scope="module")
def followed() -> tuple[set[int], list[OrderWrite]]:
    """Orders created in two days, followed for twelve days until nearly all are final."""
    writes = list(generate(DAY, DAY + timedelta(days=12), seed=5, daily_orders=3_000))
    ids = {w.id for w in writes if w.insert and w.order.created_at < DAY + timedelta(days=2)}
    return ids, writes


def _key(w: OrderWrite) -> tuple:
    return (w.commit_at, w.insert, w.status, w.remark, w.stage, w.updated_at, w.truth,
            w.repeat, tuple(w.values().items()))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = [_key(w) for w in generate(DAY, DAY + timedelta(hours=2), seed=3)]
    b = [_key(w) for w in generate(DAY, DAY + timedelta(hours=2), seed=3)]
    c = [_key(w) for w in generate(DAY, DAY + timedelta(hours=2), seed=4)]
    assert a == b
    assert a != c
    assert len(a) > 500


def test_a_longer_window_extends_a_shorter_one() -> None:
    short = [_key(w) for w in generate(DAY, DAY + timedelta(hours=3), seed=2)]
    long = [_key(w) for w in generate(DAY, DAY + timedelta(hours=6), seed=2)]
    assert long[: len(short)] == short
    assert len(long) > len(short)


def test_a_late_lead_in_holds_the_cancellations_of_a_full_one() -> None:
    """Before the lead-in only orders that cancel late are made: the window's
    cancellations, the activation sweep's included, are those of a full ten-day lead-in."""
    def cancels(**lead: timedelta) -> list[tuple]:
        return [_key(w) for w in generate(DAY, DAY + timedelta(days=1), seed=8,
                                          daily_orders=2_000, routine=False, **lead)
                if w.cancelled]

    full = cancels(lead_in=timedelta(days=10))
    late = cancels(lead_in=timedelta(days=2), late_lead_in=timedelta(days=8))
    short = cancels(lead_in=timedelta(days=2))
    assert late == full
    sweep = sum(k[4] == "activation" for k in full)
    assert sweep >= 10
    assert sum(k[4] == "activation" for k in short) == 0


def test_writes_come_in_commit_order_and_rows_evolve_sensibly(one_day) -> None:
    commits = [w.commit_at for w in one_day]
    assert commits == sorted(commits)
    assert all(DAY <= t < DAY + timedelta(days=1) for t in commits)
    seen: dict[int, OrderWrite] = {}
    for w in one_day:
        assert w.updated_at <= w.commit_at
        if w.insert:
            assert w.id not in seen
            assert w.status == "已提交" and w.updated_at == w.order.created_at
        else:
            prev = seen[w.id]
            assert w.updated_at >= prev.updated_at
            assert not prev.cancelled or w.repeat  # nothing happens after a cancellation
        seen[w.id] = w
    late = [w for w in one_day if w.updated_at < w.commit_at]
    assert 0.005 < len(late) / len(one_day) < 0.05
    assert max(w.commit_at - w.updated_at for w in late) <= timedelta(minutes=5)


def test_daily_volume_and_diurnal_shape(one_day) -> None:
    created = [w.order.created_at for w in one_day if w.insert]
    assert 26_000 <= len(created) <= 33_000
    per_minute = Counter(t.replace(second=0) for t in created)
    per_hour = Counter(t.hour for t in created)
    trough = [per_hour[h] / 60 for h in range(2, 7)]
    peak = [per_hour[h] / 60 for h in range(10, 23)]
    assert all(2 <= r <= 8 for r in trough), trough
    assert all(r >= 18 for r in peak), peak
    assert max(per_minute.values()) >= 45  # promotion bursts reach the documented peak


def test_cancellation_share_and_category_mix(followed) -> None:
    ids, writes = followed
    final: dict[int, OrderWrite] = {}
    for w in writes:
        if w.id in ids and not w.repeat:
            final[w.id] = w
    cancelled = [w for w in final.values() if w.cancelled]
    assert 0.15 <= len(cancelled) / len(ids) <= 0.30
    mix = Counter(w.truth for w in cancelled)
    share = {k: v / len(cancelled) for k, v in mix.items()}
    assert 0.29 <= share["compliance"] <= 0.41
    assert 0.19 <= share["operator_error"] <= 0.31
    assert 0.15 <= share["customer_initiated"] <= 0.26
    assert 0.04 <= share["duplicate"] <= 0.11
    assert 0.025 <= share["supply_shortage"] <= 0.08
    assert share["system_fault"] < 0.04
    assert set(share) <= {"compliance", "operator_error", "customer_initiated", "duplicate",
                          "supply_shortage", "system_fault", "unknown", "exclude"}


def test_every_cancellation_has_truth_stage_and_a_nightly_timeout_burst(followed) -> None:
    _, writes = followed
    cancels = [w for w in writes if w.cancelled]
    assert all(w.truth and w.stage for w in cancels)
    assert all(w.truth is None and w.stage is None for w in writes if not w.cancelled)
    timeouts = [w for w in cancels if w.stage in ("payment", "activation") and not w.repeat]
    assert timeouts
    assert sum(w.updated_at.hour < 2 for w in timeouts) / len(timeouts) > 0.9
    assert {"precheck", "review", "carrier", "opening", "delivery"} <= {w.stage for w in cancels}


def test_json_timelines_parse_and_end_with_the_reason(one_day) -> None:
    cancels = [w for w in one_day if w.cancelled and not w.repeat]
    timelines = [w for w in cancels if w.remark and w.remark.startswith("[{")]
    assert 0.25 <= len(timelines) / len(cancels) <= 0.45
    status_notes = {n for notes in STATUS_NOTES.values() for n in notes}
    for w in timelines:
        entries = json.loads(w.remark)
        assert all(set(e) == {"time", "content"} for e in entries)
        assert all(TIMELINE_TIME.match(e["time"]) for e in entries)
        assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
        last = entries[-1]["content"]
        assert last not in NOISE_NOTES
        assert entries[-1]["time"] == f"{w.updated_at:%Y-%m-%d %H:%M:%S}" or w.commit_at > (
            w.updated_at)
        assert last not in status_notes or last == "待审核"


def test_reason_texts_are_varied_and_carry_the_documented_traps(followed) -> None:
    _, writes = followed
    reasons = [w.remark for w in writes if w.cancelled and not w.repeat]
    plain = [r for r in reasons if r is not None and not r.startswith("[{")]
    assert len(set(plain)) > 200
    assert any(r is None for r in reasons)
    assert "" in plain and "见备注" in plain
    assert any(re.search(r"\d{17}[\dX]", r) for r in plain)  # raw ID numbers
    assert any(r.startswith("<html>") for r in plain)
    assert any(r.startswith("{") for r in plain)
    assert any("\n\tat " in r for r in plain)  # a stack trace
    assert any(re.fullmatch(r"[ -~]+", r) and " " in r for r in plain)  # English
    assert any(c in r for r in plain for c in "審號過")  # traditional characters
    assert any(re.search(r"[Ａ-Ｚａ-ｚ０-９]", r) for r in plain)  # full-width
    assert any(r in ("推送测试", "测试单") for r in plain)


def test_repeated_callbacks_rewrite_the_same_cancellation_later(one_day) -> None:
    first: dict[int, OrderWrite] = {}
    repeats = []
    for w in one_day:
        if w.cancelled and not w.repeat:
            first[w.id] = w
        elif w.repeat:
            repeats.append(w)
    assert 0.05 < len(repeats) / len(first) < 0.3
    for r in repeats:
        original = first[r.id]
        assert (r.status, r.remark, r.stage, r.truth) == (
            original.status, original.remark, original.stage, original.truth)
        assert r.updated_at > original.updated_at


def test_personal_data_is_well_formed(one_day) -> None:
    provinces = {p.name: p.full for p in PROVINCES}
    orders = [w.order for w in one_day if w.insert]
    for o in orders:
        assert is_valid_id_number(o.id_number), o.id_number
        assert len(o.phone) == 11 and o.phone[:3] in ALL_PREFIXES
        assert 2 <= len(o.customer_name) <= 4
        assert o.address.startswith(provinces[o.province])
        assert len(o.address) <= 128 and len(o.order_no) <= 32
    assert len({o.id for o in orders}) == len(orders)
    assert len({o.order_no for o in orders}) == len(orders)


def test_dimensions_are_realistic(one_day) -> None:
    orders = [w.order for w in one_day if w.insert]
    carriers = Counter(o.carrier for o in orders)
    assert set(carriers) == {"中国移动", "中国联通", "中国电信", "中国广电"}
    assert carriers["中国广电"] < carriers["中国移动"] < carriers["中国联通"]
    assert 3 <= len({o.upstream for o in orders}) <= 5
    assert len({o.product for o in orders}) >= 35
    assert len({o.province for o in orders}) == 31
    per_distributor = Counter(o.distributor_id for o in orders).most_common()
    assert len(per_distributor) > 1_000
    top_share = sum(n for _, n in per_distributor[:20]) / len(orders)
    assert 0.2 < top_share < 0.6  # heavy-tailed, not a monopoly


def _small(start: datetime, end: datetime, **kwargs) -> list[OrderWrite]:
    """A lighter stream for incident tests: incidents keep their own rates."""
    return list(generate(start, end, daily_orders=10_000, **kwargs))


def _window(writes, lo, hi, **dims) -> list[OrderWrite]:
    return [
        w for w in writes
        if w.cancelled and not w.repeat and lo <= w.updated_at < hi
        and all(getattr(w.order, k) == v for k, v in dims.items())
    ]


def test_carrier_outage_adds_system_faults_for_that_carrier_only() -> None:
    start = DAY + timedelta(hours=14)
    outage = CarrierOutage("中国电信", start, timedelta(minutes=30), rate_per_min=18)
    base = _small(DAY + timedelta(hours=13), DAY + timedelta(hours=15), seed=1)
    hit = _small(DAY + timedelta(hours=13), DAY + timedelta(hours=15), seed=1,
                 incidents=[outage])
    lo, hi = start + timedelta(minutes=3), start + timedelta(minutes=30)

    def faults(ws, carrier):
        return [w for w in _window(ws, lo, hi, carrier=carrier) if w.truth == "system_fault"]

    assert len(faults(base, "中国电信")) < 5
    assert 14 * 27 * 0.7 < len(faults(hit, "中国电信")) < 20 * 27 * 1.3
    assert len(faults(hit, "中国移动")) == len(faults(base, "中国移动"))
    # the base stream is untouched: every base write is still there
    assert {_key(w) for w in base} <= {_key(w) for w in hit}


def test_signature_break_hits_one_upstream_with_signature_texts() -> None:
    start = DAY + timedelta(hours=10)
    brk = UpstreamSignatureBreak("号卡云仓", start, timedelta(hours=1), rate_per_min=10)
    ws = list(generate(start, start + timedelta(hours=1), seed=2, incidents=[brk]))
    sig = [w for w in _window(ws, start, start + timedelta(hours=1))
           if w.truth == "system_fault" and w.order.upstream == "号卡云仓"]
    assert len(sig) > 400
    assert sum(bool(re.search("签名|验签|signature|证书", w.remark or "")) for w in sig) > 0.9 * (
        len(sig) - 20)


def test_number_pool_exhaustion_is_visible_per_product() -> None:
    product = "联通大王卡29元"
    start = DAY + timedelta(hours=11)
    inc = NumberPoolExhausted(product, start, timedelta(hours=3))
    ws = _small(DAY + timedelta(hours=8), DAY + timedelta(hours=14), seed=3, incidents=[inc])
    base = _small(DAY + timedelta(hours=8), DAY + timedelta(hours=14), seed=3)
    lo, hi = start, start + timedelta(hours=3)
    hit = [w for w in _window(ws, lo, hi, product=product) if w.truth == "supply_shortage"]
    before = [w for w in _window(base, lo, hi, product=product) if w.truth == "supply_shortage"]
    assert len(hit) > 10 * max(1, len(before))
    assert all(w.stage == "carrier" for w in hit if w not in before)
    others = [w for w in _window(ws, lo, hi) if w.order.product != product]
    assert len(others) == len([w for w in _window(base, lo, hi) if w.order.product != product])


def test_regional_pause_cancels_every_order_of_the_province() -> None:
    start = DAY + timedelta(hours=12)
    pause = RegionalPause("新疆", start, timedelta(hours=2))
    ws = _small(DAY + timedelta(hours=8), DAY + timedelta(hours=15), seed=4, incidents=[pause])
    final: dict[int, OrderWrite] = {}
    for w in ws:
        final[w.id] = w
    created_in = [w for w in final.values()
                  if w.order.province == "新疆" and start <= w.order.created_at < start
                  + timedelta(hours=2)]
    assert created_in and all(w.cancelled and w.truth == "compliance" for w in created_in)
    in_flight = [w for w in final.values() if w.order.province == "新疆"
                 and w.order.created_at < start and w.updated_at >= start]
    assert in_flight and all(w.cancelled for w in in_flight)


def test_product_takedown_cancels_in_flight_and_stops_new_orders() -> None:
    product = "电信星卡19元"
    at = DAY + timedelta(hours=15)
    ws = _small(DAY + timedelta(hours=10), DAY + timedelta(hours=18), seed=6,
                incidents=[ProductTakedown(product, at)])
    assert not [w for w in ws if w.insert and w.order.product == product
                and w.order.created_at >= at]
    taken = [w for w in ws if w.cancelled and w.order.product == product and w.updated_at >= at
             and w.truth == "supply_shortage" and not w.repeat]
    assert len(taken) > 20
    assert all(w.updated_at <= at + timedelta(minutes=45) for w in taken)


def test_distributor_abuse_multiplies_volume_with_compliance_and_duplicates() -> None:
    who = distributor_id(700)
    start = DAY + timedelta(hours=13)
    abuse = DistributorAbuse(who, start, timedelta(hours=2), rate_per_min=3)
    ws = list(generate(start, start + timedelta(hours=2), seed=7, incidents=[abuse]))
    mine = [w for w in ws if w.insert and w.order.distributor_id == who]
    assert 250 < len(mine) < 470
    cancels = Counter(w.truth for w in ws if w.cancelled and not w.repeat
                      and w.order.distributor_id == who)
    assert (cancels["compliance"] + cancels["duplicate"]) / len(mine) > 0.7


def test_upstream_silence_holds_writes_then_flushes_them() -> None:
    start = DAY + timedelta(hours=15)
    quiet = UpstreamSilence("电信集团渠道", start, timedelta(hours=1))
    ws = _small(start - timedelta(hours=2), start + timedelta(hours=2), seed=8,
                incidents=[quiet])
    during = [w for w in ws if start <= w.commit_at < start + timedelta(hours=1)]
    assert during and not [w for w in during if w.order.upstream == "电信集团渠道"]
    flush = [w for w in ws if w.order.upstream == "电信集团渠道"
             and start + timedelta(hours=1) <= w.commit_at < start + timedelta(minutes=70)]
    assert len(flush) > 40


def test_policy_change_raises_the_carriers_compliance_rejections() -> None:
    start = DAY + timedelta(hours=10)
    ws = _small(DAY + timedelta(hours=6), DAY + timedelta(hours=14), seed=9,
                incidents=[PolicyChange("中国移动", start, share=0.3)])
    policy = [w for w in ws if w.cancelled and w.truth == "compliance" and w.updated_at >= start
              and w.order.carrier == "中国移动" and w.stage == "review"]
    assert len(policy) > 40
    assert all(w.order.carrier == "中国移动" for w in ws if w.cancelled and "新规" in (
        w.remark or ""))


def test_ops_bulk_cancel_is_excluded_truth_at_one_moment() -> None:
    who = distributor_id(3)
    at = DAY + timedelta(hours=16)
    ws = _small(DAY + timedelta(hours=8), DAY + timedelta(hours=17), seed=10, routine=False,
                incidents=[OpsBulkCancel(at, distributor=who)])
    bulk = [w for w in ws if w.truth == "exclude" and not w.repeat]
    assert len(bulk) > 8
    assert all(w.order.distributor_id == who for w in bulk)
    assert all(at <= w.updated_at <= at + timedelta(minutes=3) for w in bulk)
    assert all("批量撤单" in (w.remark or "") for w in bulk)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="carrier"):
        CarrierOutage("中国铁通", DAY, timedelta(hours=1))
    with pytest.raises(ValueError, match="province"):
        RegionalPause("台湾省", DAY, timedelta(hours=1))
    with pytest.raises(ValueError, match="end must be after start"):
        list(generate(DAY, DAY))


def test_aware_datetimes_are_read_as_shanghai_time() -> None:
    from zoneinfo import ZoneInfo

    utc = DAY.replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(ZoneInfo("UTC"))
    naive = [_key(w) for w in generate(DAY, DAY + timedelta(minutes=30), seed=1)]
    aware = [_key(w) for w in generate(utc, utc + timedelta(minutes=30), seed=1)]
    assert naive == aware


def test_writes_by_order_follow_the_lifecycle(one_day) -> None:
    order = ["已提交", "待审核", "已提运营商", "开卡中", "已发货", "已激活"]
    statuses: dict[int, list[str]] = defaultdict(list)
    for w in one_day:
        if not w.repeat:
            statuses[w.id].append(w.status)
    for seq in statuses.values():
        positive = [s for s in seq if s in order]
        assert positive == order[: len(positive)]
        assert all(s in order for s in seq[:-1])
