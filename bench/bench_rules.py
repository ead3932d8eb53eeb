"""Rule engine throughput, scaling and memory.

    .venv/bin/python bench/bench_rules.py            # full run (about a minute)
    .venv/bin/python bench/bench_rules.py --quick    # smaller samples

Measures, on one core:
1. reasons/second with the default rules, uncached (cache disabled) and cached, on two
   streams: `varied` (every text carries random IDs, phones and order numbers, so almost
   nothing repeats) and `realistic` (templates repeat as they do in production; about a
   third carry numbers);
2. 50 vs 1,000 generated rules (target: 1,000 at most 2x slower);
3. the engine vs a naive loop trying each rule's regex in turn (same 1,000 rules);
4. memory of a compiled 1,000-rule set (tracemalloc for Python objects, RSS growth for
   everything incl. the automaton's native memory; target < 50 MB).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import re2

from watchdog.rules import RuleSet, load_rules, normalise

TEMPLATES = [
    "客户主动撤单", "客户要求取消", "客户拒收。。", "客户说不要了😂", "系统自动撤单：超时未激活",
    "订单超时未支付已关闭", "非系统原因，客户主动取消", "快递员联系客户{n}次无人接听",
    "一证五号超限", "【全网一证多号】校验: 证件号码【{id}】实名制开户的数量已达到最大值【5个】",
    "审核不通过：年龄不符", "審核不通過：年齡不符", "收货地址属于高风险地区，暂不发货",
    "涉诈风险用户",
    "该客户有号码有往月欠费，不能再次使用该证件办理开户业务，欠费号码{phone}，金额{n}元",
    "实名认证未通过", "姓名与身份证号码不一致", "地址不详（请补充门牌号）", "手机号格式不正确",
    "身份证号码错误：{id}", "收件人电话{phone}非申请人本人", "信息填写不完整",
    "重复下单", "与订单HK2025{n}重复", "该用户已存在待审核订单", "Duplicate of order #A{n}",
    "号码资源不足", "【联通】cBSS返回：号码预占失败", "卡板库存不足", "京东快递暂停该区域揽派",
    "E2001 库存不足", "所选号码{phone}已被占用", "BSS接口超时", "CRM返回：系统繁忙，请稍后再试",
    "cURL error 28: Operation timed out after {n} milliseconds", "签名验证失败",
    '{{"code":500,"msg":"服务器内部错误","data":null}}',
    "校验【全网一证多号】出现异常，请联系系统管理员！",
    "运营商返回：[ESS-3006]【全网一证多号】校验不通过；另：收货地址校验未通过(ADDR_INVALID)",
    "java.net.SocketTimeoutException: Read timed out\n"
    "\tat com.x.OrderClient.submit(OrderClient.java:{n})",
    "推送测试", "批量撤单", "见备注", "None", "", "E1003", "已取消", "运营商撤单",
    "客户下午打电话说之前看到的是19元月租100G，收到短信发现是29元，觉得被骗了，要求撤单，"
    "客户电话{phone}，订单{n}，有问题找我",
]


def _id(rng: random.Random) -> str:
    return f"{rng.randint(110000, 659000)}{rng.randint(1960, 2006)}{rng.randint(101, 1228):04d}" \
           f"{rng.randint(100, 999)}{rng.choice('0123456789X')}"


def _fill(template: str, rng: random.Random) -> str:
    phone = f"1{rng.choice('3589')}{rng.randint(0, 10**9 - 1):09d}"
    return template.format(id=_id(rng), phone=phone, n=rng.randint(1, 10**8))


def varied_stream(n: int, seed: int = 1) -> list[str]:
    """Every text unique: a template plus random numbers, in a random position."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = _fill(rng.choice(TEMPLATES), rng)
        out.append(f"{text} 订单{rng.randint(10**9, 10**10)}" if rng.random() < 0.7
                   else f"[{rng.randint(1, 10**6)}] {text}")
    return out


def realistic_stream(n: int, seed: int = 2) -> list[str]:
    """Templates repeat; only those with placeholders get fresh numbers."""
    rng = random.Random(seed)
    return [_fill(rng.choice(TEMPLATES), rng) for _ in range(n)]


def rate(classify: Callable[[str], object], texts: Sequence[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for t in texts:
            classify(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


CHARS = ("审核号码客户订单系统资源库存超时异常失败取消重复地址姓名证件实名风险运营商快递配送"
         "激活支付套餐产品接口网络")


def generated_rules(n: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    cats = ["compliance", "system_fault", "supply_shortage", "duplicate", "operator_error",
            "customer_initiated"]
    lines = ["rules:"]
    for i in range(n):
        words = {"".join(rng.choice(CHARS) for _ in range(rng.randint(3, 5)))
                 for _ in range(rng.randint(3, 6))}
        lines.append(f"  - id: gen.{i}")
        lines.append(f"    category: {rng.choice(cats)}")
        lines.append(f"    priority: {rng.randint(0, 3)}")
        if i % 10 == 0:  # some rules combine keywords with a regex, as real ones do
            first = sorted(words)[0]
            lines.append("    all:")
            lines.append(f"      - keywords: [{', '.join(sorted(words))}]")
            lines.append(f"      - regex: ['{first}.{{0,20}}\\d+']")
        else:
            lines.append(f"    keywords: [{', '.join(sorted(words))}]")
    return "\n".join(lines) + "\n"


def load_generated(n: int, tmp: Path, cache_size: int = 0) -> RuleSet:
    path = tmp / f"gen-{n}.yaml"
    path.write_text(generated_rules(n), encoding="utf-8")
    return load_rules([path], use_defaults=False, cache_size=cache_size)


def naive(rules: RuleSet) -> Callable[[str], str]:
    """The obvious implementation: one regex per rule, tried in precedence order."""
    options = re2.Options()
    options.log_errors = False
    compiled = []
    for rule in rules.precedence:
        words = _keywords(rule.condition)
        compiled.append((rule.category, re2.compile("|".join(map(re2.escape, words)), options)))

    def classify(text: str) -> str:
        norm = normalise(text)
        for category, regex in compiled:
            if regex.search(norm):
                return category
        return "unknown"

    return classify


def _keywords(cond: object) -> list[str]:
    words = [w for w, _ in getattr(cond, "words", ())]
    for child in getattr(cond, "children", ()):
        words += _keywords(child)
    return words


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    varied, realistic = varied_stream(n), realistic_stream(n)
    print(f"python {sys.version.split()[0]}, {platform.machine()}, {n:,} texts per stream")

    print("\n## default rules")
    for name, texts in (("varied", varied), ("realistic", realistic)):
        uncached = rate(load_rules(cache_size=0).classify, texts)
        rs = load_rules()
        rs.classify("warm")
        cached = rate(rs.classify, texts, repeat=1)  # first pass: cold cache, honest hits
        info = rs.cache_info()
        hit = info.hits / max(info.hits + info.misses, 1)
        print(f"{name:10s} uncached {uncached:10,.0f}/s   cached (1st pass, hit rate "
              f"{hit:4.0%}) {cached:10,.0f}/s")

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("\n## generated rules (uncached, varied stream)")
        r50, r1000 = load_generated(50, tmp), load_generated(1000, tmp)
        s50, s1000 = rate(r50.classify, varied), rate(r1000.classify, varied)
        print(f"50 rules   {s50:10,.0f}/s")
        print(f"1000 rules {s1000:10,.0f}/s   slowdown x{s50 / s1000:.2f} (target <= 2)")

        naive_rate = rate(naive(r1000), varied[: n // 10], repeat=1)
        print(f"naive loop {naive_rate:10,.0f}/s   engine is x{s1000 / naive_rate:.1f} faster")

        load_generated(10, tmp)  # imports and first-use allocations out of the way
        gc.collect()
        rss_before = _rss_mb()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        held = load_generated(1000, tmp, cache_size=0)
        after = tracemalloc.take_snapshot()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        gc.collect()
        rss = _rss_mb() - rss_before
        size = sum(s.size_diff for s in after.compare_to(before, "filename"))
        # tracemalloc sees Python objects only; the automaton lives in Rust memory, which
        # the resident set size shows.
        print(f"\n## memory, 1000 rules: Python objects retained {size / 2**20:.1f} MB "
              f"(peak while loading {peak / 2**20:.1f} MB); process RSS grew {rss:.1f} MB "
              f"(target < 50 MB; {len(held.rules)} rules)")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux
        return float("nan")


if __name__ == "__main__":
    main()
