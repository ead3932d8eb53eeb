"""Hostile and broken input: it is counted (or refused with a clear message), never crashes
the daemon, and personal data never leaves the process unmasked."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from tests.faults.inprocess import committed, parts_for, poll_until_caught_up
from tests.orderstream import ID_NUMBER, PHONE, Platform, local_now
from watchdog.config import ConfigError, load_config
from watchdog.rules import RuleError, load_rules
from watchdog.state_schema import events_table

OTHER_ID = "44030619851231002X"
OTHER_PHONE = "15999887766"
HOSTILE: dict[int, str | bytes] = {
    1: "客户主动取消" * 100_000,                                   # 600k chars, ~1.8 MB
    2: b"\xff\xfe\xc3\x28 \xe4\xb8\xad invalid utf-8 \x80\x80",  # not UTF-8 at all
    3: "签名验证\x00失败\x00",                                     # NUL bytes
    4: "客户说不要了😂😂🙏🏻 🇨🇳",                                      # emoji, flags, modifiers
    5: "'; DROP TABLE orders; -- \" OR 1=1 /* ${jndi:ldap://x} {{7*7}} %s%n",
    6: f"【全网一证多号】校验: 证件号码【{OTHER_ID}】数量已达到最大值【5个】，"
       f"客户电话{OTHER_PHONE}，身份证{ID_NUMBER}，手机 {PHONE}",
    7: f'[{{"time": "2026-01-01 10:00:00", "content": "已提交"}}, '
       f'{{"time": "2026-01-01 10:05:00", "content": "实名认证未通过 {OTHER_ID} {OTHER_PHONE}"}}]',
    8: "<html><body><h1>502 Bad Gateway</h1>" + "<p>nginx</p>" * 20_000 + "</body></html>",
    9: "\u202e\u200b\ufeff审核不通过\u0007\u001b[31m",               # bidi, zero-width, ANSI
}
SECRETS = (ID_NUMBER, PHONE, OTHER_ID, OTHER_PHONE)


def test_hostile_reasons_are_counted_and_personal_data_stays_masked(tmp_path):
    url = f"sqlite:///{tmp_path / 'orders.db'}"  # SQLite stores bytes as they come
    platform = Platform(url, "orders")
    stamp = local_now() - timedelta(minutes=2)
    platform.insert([platform.row(i, "已撤单", reason, stamp, carrier="中国联通",
                                  distributor_id=PHONE) for i, reason in HOSTILE.items()])
    config_extra = "  initial_lookback: 1h\n"
    parts = parts_for(tmp_path, url, "orders", source_extra=config_extra)
    try:
        poll_until_caught_up(parts)
        assert sum(committed(parts).values()) == len(HOSTILE)  # every row counted
        metrics_text = generate_latest(parts.registry).decode()
        with parts.store.engine.connect() as conn:
            events = conn.execute(sa.select(events_table)).all()
    finally:
        parts.close()
    by_id = {e.order_id: e for e in events}
    assert set(by_id) == {str(i) for i in HOSTILE}
    assert by_id["4"].category == "customer_initiated"
    assert by_id["6"].category == "compliance"
    assert by_id["3"].category == "system_fault"  # NULs dropped: 签名验证失败
    for e in events:  # samples kept for alerts are short and masked
        assert e.reason is None or len(e.reason) <= 300
        assert "\x00" not in (e.reason or "")
        assert not any(s in (e.reason or "") for s in SECRETS), e.reason
    assert not any(s in metrics_text for s in SECRETS)

    # The CLI, logging at debug level: its output and logs carry no raw ID or phone.
    config = tmp_path / "config.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "-c", str(config), "--once",
         "--log-level", "debug"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rules = subprocess.run(
        [sys.executable, "-m", "watchdog", "rules", "test", "--format", "jsonl", "-"],
        input="\n".join(str(HOSTILE[i]) for i in (6, 7)), capture_output=True, text=True,
        timeout=120)
    assert rules.returncode == 0, rules.stderr[-3000:]
    for output in (done.stdout, done.stderr, rules.stdout, rules.stderr):
        assert not any(s in output for s in SECRETS), output[-3000:]
    platform.drop()


CATASTROPHIC = """
rules:
  - id: site.backtracking
    category: system_fault
    priority: 100
    regex: ['(a+)+$', '(x+x+)+y', '^(\\w+\\s?)*$']
"""


def test_a_catastrophic_regex_runs_in_linear_time(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text(CATASTROPHIC, encoding="utf-8")
    rules = load_rules([path])
    # Exponential for a backtracking engine (decades at this length); RE2 is linear.
    # pytest-timeout bounds the test; no timing is asserted.
    assert rules.classify("a" * 100_000 + "b").category == "unknown"  # the slow non-match
    assert rules.classify("x" * 50_000).category == "unknown"
    assert rules.classify("a" * 100_000).category == "system_fault"
    assert rules.classify("客户主动取消").category == "customer_initiated"


BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
rules: [*g]
"""


def test_yaml_bombs_are_refused_in_rules_and_config(tmp_path):
    rule_file = tmp_path / "bomb.yaml"
    rule_file.write_text(BOMB, encoding="utf-8")
    with pytest.raises(RuleError) as rule_error:
        load_rules([rule_file])
    assert "aliases" in str(rule_error.value.problems[0])
    assert "bomb.yaml:3" in str(rule_error.value.problems[0])

    config = tmp_path / "config.yaml"
    config.write_text("source: &s {url: 'sqlite:///x.db'}\nstate: {url: *s}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as config_error:
        load_config(config)
    assert "aliases" in str(config_error.value.problems[0])


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    rule_file = tmp_path / "typo.yaml"
    rule_file.write_text("rules:\n  - id: x.y\n    category: compliance\n    keywrods: [a]\n",
                         encoding="utf-8")
    with pytest.raises(RuleError) as rule_error:
        load_rules([rule_file])
    assert "keywrods" in str(rule_error.value.problems)
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  url: sqlite:///x.db\n  tabel: orders\n", encoding="utf-8")
    with pytest.raises(ConfigError) as config_error:
        load_config(config)
    problem = str(config_error.value.problems[0])
    assert "config.yaml:3" in problem and "tabel" in problem and "did you mean `table`" in problem


@pytest.mark.parametrize(("table", "column", "expected"), [
    ("no_such_orders", "updated_at", "no_such_orders"),
    ("orders", "updatedat", "updatedat"),
])
def test_config_naming_a_missing_table_or_column(tmp_path, table, column, expected):
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    Platform(url, "orders").engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
source:
  url: {url}
  table: {table}
  columns: {{changed_at: {column}}}
state:
  url: sqlite:///{tmp_path / 'state.db'}
""", encoding="utf-8")
    check = subprocess.run([sys.executable, "-m", "watchdog", "check", "-c", str(config)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 2
    assert expected in check.stderr and "Traceback" not in check.stderr, check.stderr
    once = subprocess.run([sys.executable, "-m", "watchdog", "run", "-c", str(config), "--once"],
                          capture_output=True, text=True, timeout=120)
    assert once.returncode == 1
    assert "poll failed at source" in once.stderr and expected in once.stderr
    assert "Traceback" not in once.stderr, once.stderr
