"""`rules coverage` end to end: a real order database, a state database filled by the
pipeline, then the command re-classifying both with an edited rule set."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from tests.integration.orderdb import insert, orders_table, row
from watchdog.cli import main
from watchdog.config import load_config
from watchdog.wiring import assemble

NOW = datetime.now(UTC).replace(microsecond=0)
LOCAL = NOW.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)

REASONS = (
    ["星云CRM返回：请求被拒绝"] * 3
    + ["客户主动取消"] * 2
    + ["一证五号超限", "推送测试"]
    + ["状态码 X7731，联系人 13812345678", "状态码 X1200，联系人 13998765432"]
)
SITE_RULE = """
rules:
  - id: site.xingyun_crm
    category: system_fault
    keywords: [星云crm]
"""


@pytest.fixture
def deployment(tmp_path):
    orders_url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = sa.create_engine(orders_url)
    table = orders_table("orders")
    table.metadata.create_all(engine)
    insert(engine, table, [row(i, LOCAL - timedelta(hours=1, seconds=i), remark=r,
                               carrier="中国联通")
                           for i, r in enumerate(REASONS, 1)])
    engine.dispose()
    cfg_path = tmp_path / "watchdog.yaml"
    cfg_path.write_text(f"""
source:
  url: {orders_url}
  table: orders
  cancelled_statuses: [已撤单]
  dimensions:
    carrier: {{column: carrier}}
state:
  url: sqlite:///{tmp_path / 'state.db'}
""", encoding="utf-8")
    (tmp_path / "site.yaml").write_text(SITE_RULE, encoding="utf-8")
    return cfg_path, tmp_path / "site.yaml"


def fill_state(cfg_path):
    parts = assemble(load_config(cfg_path), CollectorRegistry())
    try:
        assert parts.pipeline.poll(NOW).new == len(REASONS)
    finally:
        parts.close()


def run(*args: str):
    return CliRunner().invoke(main, ["rules", "coverage", *args])


def jsonl(output: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in output.splitlines():
        obj = json.loads(line)
        out.setdefault(obj.pop("type"), []).append(obj)
    return out


def test_stored_events_reclassified_with_new_rules(deployment):
    cfg_path, site = deployment
    fill_state(cfg_path)
    r = run("-c", str(cfg_path), "--rules", str(site), "--format", "jsonl")
    assert r.exit_code == 0, r.output
    got = jsonl(r.output)
    (summary,) = got["summary"]
    assert summary["total"] == len(REASONS)
    assert summary["compared"] == len(REASONS)
    assert got["change"] == [{"from": "unknown", "to": "system_fault", "count": 3}]
    cats = {c["category"]: c for c in got["category"]}
    assert cats["system_fault"]["count"] == 3 and cats["system_fault"]["recorded"] == 0
    assert cats["unknown"]["count"] == 2 and cats["unknown"]["recorded"] == 5
    assert cats["exclude"]["count"] == 1
    assert cats["customer_initiated"]["share"] == pytest.approx(2 / 8)
    # Both remaining unknowns fold to one template, with no phone number in it.
    (template,) = got["unknown_template"]
    assert template["count"] == 2
    assert "<phone>" in template["template"] or "*" in template["template"]
    assert "13812345678" not in r.output and "5678" not in r.output


def test_table_output_and_range(deployment):
    cfg_path, site = deployment
    fill_state(cfg_path)
    r = run("-c", str(cfg_path), "--rules", str(site))
    assert r.exit_code == 0, r.output
    assert "state database (reasons masked, first 300 characters)" in r.output
    assert re.search(r"^  unknown +system_fault +3$", r.output, re.M), r.output
    assert "changes: 3 of 9" in r.output
    assert "13812345678" not in r.output
    # A range that holds nothing.
    r = run("-c", str(cfg_path), "--since", "60d", "--until", "30d")
    assert r.exit_code == 0, r.output
    assert "0 cancellations" in r.output


def test_from_source_reads_full_reasons_and_compares_with_state(deployment):
    cfg_path, site = deployment
    fill_state(cfg_path)
    r = run("-c", str(cfg_path), "--rules", str(site), "--from-source", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    got = jsonl(r.output)
    assert got["summary"][0]["total"] == len(REASONS)
    assert got["change"] == [{"from": "unknown", "to": "system_fault", "count": 3}]


def test_from_source_without_state_has_nothing_to_compare(deployment):
    cfg_path, _ = deployment
    r = run("-c", str(cfg_path), "--from-source")
    assert r.exit_code == 0, r.output
    assert "changes: no recorded classification to compare with" in r.output
    assert not (cfg_path.parent / "state.db").exists()  # a report creates nothing


def test_missing_state_and_bad_range_are_usage_errors(deployment):
    cfg_path, _ = deployment
    r = run("-c", str(cfg_path))
    assert r.exit_code == 2 and "no state database" in r.output
    r = run("-c", str(cfg_path), "--since", "yesterday-ish")
    assert r.exit_code == 2
    r = run("-c", str(cfg_path), "--since", "1d", "--until", "2d")
    assert r.exit_code == 2 and "is not before" in r.output
