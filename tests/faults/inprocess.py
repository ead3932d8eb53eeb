"""In-process helpers: the production parts (wiring.assemble) on a config written here."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from watchdog.config import load_config
from watchdog.wiring import Parts, assemble


def parts_for(tmp_path: Path, orders_url: str, table: str, source_extra: str = "",
              rules: str = "", batch_size: int = 50, max_batches: int = 20) -> Parts:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
source:
  url: {orders_url}
  table: {table}
  cancelled_statuses: [已撤单, 审核不通过]
  dimensions:
    carrier: {{column: carrier}}
    distributor: {{column: distributor_id, label: false}}
  batch_size: {batch_size}
  max_batches_per_poll: {max_batches}
{source_extra}
state:
  url: sqlite:///{tmp_path / 'state.db'}
{rules}
""", encoding="utf-8")
    parts = assemble(load_config(path))
    parts.metrics.ledger.activate(parts.store.counters())  # as a leader does
    return parts


def poll_until_caught_up(parts: Parts, now: datetime | None = None, limit: int = 100) -> int:
    """Polls until caught up; returns how many polls it took."""
    for n in range(1, limit + 1):
        if parts.pipeline.poll(now or datetime.now(UTC)).caught_up:
            return n
    raise AssertionError(f"not caught up after {limit} polls")


def committed(parts: Parts) -> Counter[str]:
    """Committed totals per category (what /metrics exports)."""
    totals: Counter[str] = Counter()
    for (name, labels), n in parts.store.counters().items():
        if name == "watchdog_cancellations":
            totals[dict(labels)["category"]] += n
        elif name == "watchdog_excluded_cancellations":
            totals["exclude"] += n
    return +totals
