"""Hot reload of rule files, through the same job the daemon schedules.

A real order database (SQLite file) and state database; the rule file is edited between
polls. A valid edit applies at the next poll and moves `watchdog_rules_info{version}`; an
invalid one keeps the running rules and counts `watchdog_rules_reload_errors_total`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from tests.integration.orderdb import insert, orders_table, row
from watchdog.config import Config
from watchdog.daemon import reload_rules
from watchdog.rules.watch import ReloadOnChange, RuleFileWatcher
from watchdog.wiring import Parts, assemble, rule_paths

T0 = datetime(2026, 11, 25, 10, 0, 0)  # naive Asia/Shanghai
NOW = datetime(2026, 11, 25, 2, 30, 0, tzinfo=UTC)
MTIME = 1_700_000_000 * 1_000_000_000

RULE = """
rules:
  - id: site.crm_outage
    category: {category}
    priority: 50
    keywords: [星云crm]
"""


def write_rules(path: Path, text: str, step: int) -> None:
    path.write_text(text, encoding="utf-8")
    # A distinct, settled modification time per edit: no dependence on clock granularity.
    os.utime(path, ns=(MTIME + step * 10**9, MTIME + step * 10**9))


def sample(parts: Parts, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in parts.registry.collect()
            for s in f.samples if s.name == name}


def rules_version(parts: Parts) -> str:
    (labels,) = [k for k, v in sample(parts, "watchdog_rules_info").items() if v == 1]
    return dict(labels)["version"]


def reload_errors(parts: Parts) -> float:
    return sample(parts, "watchdog_rules_reload_errors_total")[()]


@pytest.fixture
def setup(tmp_path):
    orders_url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(orders_url)
    table = orders_table("orders")
    table.metadata.create_all(engine)
    rules_file = tmp_path / "site-rules.yaml"
    write_rules(rules_file, RULE.format(category="system_fault"), 0)
    cfg = Config.model_validate({
        # One row per page, so that a poll can span several pages.
        "source": {"url": orders_url, "table": "orders", "cancelled_statuses": ["已撤单"],
                   "batch_size": 1},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "rules": {"paths": [str(rules_file)]},
    })
    parts = assemble(cfg, CollectorRegistry())
    job = ReloadOnChange(RuleFileWatcher(rule_paths(cfg)), lambda: reload_rules(parts))
    yield parts, job, rules_file, engine, table
    parts.close()
    engine.dispose()


def categories_of_new_rows(parts: Parts, engine, table, first_id: int, now: datetime):
    insert(engine, table, [row(first_id, T0 + timedelta(seconds=first_id),
                               remark="星云CRM返回：请求被拒绝")])
    return parts.pipeline.poll(now).by_category


def test_valid_edit_applies_at_next_poll_invalid_edit_keeps_running_rules(setup):
    parts, job, rules_file, engine, table = setup
    v1 = rules_version(parts)
    assert categories_of_new_rows(parts, engine, table, 1, NOW) == {"system_fault": 1}

    job()  # nothing changed: no reload
    assert rules_version(parts) == v1

    write_rules(rules_file, RULE.format(category="compliance"), 1)
    job()
    v2 = rules_version(parts)
    assert v2 != v1
    assert categories_of_new_rows(parts, engine, table, 2, NOW) == {"compliance": 1}
    assert reload_errors(parts) == 0

    write_rules(rules_file, RULE.format(category="complience"), 2)  # typo: unknown category
    job()
    assert reload_errors(parts) == 1
    assert rules_version(parts) == v2
    assert categories_of_new_rows(parts, engine, table, 3, NOW) == {"compliance": 1}

    write_rules(rules_file, "rules: [", 3)  # broken YAML
    job()
    assert reload_errors(parts) == 2
    assert rules_version(parts) == v2

    rules_file.unlink()
    job()
    assert reload_errors(parts) == 3
    assert rules_version(parts) == v2


def test_forced_reload_of_unchanged_files_keeps_the_running_ruleset(setup):
    parts, job, _, _, _ = setup
    running = parts.pipeline.rules
    job.force()  # SIGHUP without an edit
    assert parts.pipeline.rules is running  # same object: its cache stays warm
    assert reload_errors(parts) == 0


def test_a_reload_during_a_poll_applies_from_the_next_poll(setup):
    parts, job, rules_file, engine, table = setup
    insert(engine, table, [row(i, T0 + timedelta(seconds=i), remark="星云CRM返回：请求被拒绝")
                           for i in range(1, 4)])
    source = parts.pipeline.source
    original = source.fetch_cancellations
    edited = []

    def fetch_then_edit(after, limit):
        rows = original(after, limit)
        if rows and not edited:
            write_rules(rules_file, RULE.format(category="compliance"), 1)
            job()  # the reload lands between the first and second page
            edited.append(True)
        return rows

    source.fetch_cancellations = fetch_then_edit  # type: ignore[method-assign]
    try:
        assert parts.pipeline.poll(NOW).by_category == {"system_fault": 3}
    finally:
        source.fetch_cancellations = original  # type: ignore[method-assign]
    assert edited
    assert categories_of_new_rows(parts, engine, table, 10, NOW) == {"compliance": 1}


LOGISTICS = """
categories: [logistics]
rules:
  - id: site.lost_parcel
    category: logistics
    priority: 50
    keywords: [丢件]
  - id: site.drill
    category: exclude
    keywords: [演练单]
"""


def cancellations(parts: Parts) -> dict[str, float]:
    return {dict(k)["category"]: v
            for k, v in sample(parts, "watchdog_cancellations_total").items()}


def test_a_category_added_by_a_reload_gets_its_zero_series(setup):
    parts, job, rules_file, engine, table = setup
    parts.take_lead(NOW)
    before = cancellations(parts)
    assert before and set(before.values()) == {0.0}
    assert "logistics" not in before

    write_rules(rules_file, LOGISTICS, 1)
    job()
    after = cancellations(parts)
    assert after["logistics"] == 0.0  # exists before the first lost parcel
    assert set(after) == set(before) | {"logistics"}
    excluded = {dict(k)["rule"]: v
                for k, v in sample(parts, "watchdog_excluded_cancellations_total").items()}
    assert excluded["site.drill"] == 0.0

    # and the next leader (a takeover after a step-down) exports it too
    parts.step_down()
    assert cancellations(parts) == {}
    parts.take_lead(NOW)
    assert cancellations(parts)["logistics"] == 0.0

    insert(engine, table, [row(1, T0, remark="快递丢件")])
    assert parts.pipeline.poll(NOW).by_category == {"logistics": 1}
    assert cancellations(parts)["logistics"] == 1.0
