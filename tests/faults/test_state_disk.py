"""The state database on a full disk, then on a read-only file system.

The SQLite state file lives on a tiny tmpfs mounted for the test (root only: as root,
file permissions cannot make a file read-only; elsewhere the test skips). A poll that
cannot commit fails at the `state` stage with a message naming the database, the cursor
stays at the last commit, and once the disk is writable again the next poll counts
exactly what was missed.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.orderstream import Platform
from watchdog.config import load_config
from watchdog.pipeline import PollFailed
from watchdog.state_schema import events_table, seen_table
from watchdog.wiring import assemble

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tiny file system for the state database needs root")


@pytest.fixture
def tiny_fs(tmp_path):
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def snapshot(state_url: str) -> tuple[object, int, int]:
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        cursor = conn.execute(sa.text("SELECT changed_at, order_id FROM watchdog_cursor")).all()
        events = conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar()
        keys = conn.execute(sa.select(sa.func.count()).select_from(seen_table)).scalar()
    engine.dispose()
    return cursor, events, keys


def config(tmp_path: Path, orders_url: str, state_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
source:
  url: {orders_url}
  cancelled_statuses: [已撤单, 审核不通过]
  batch_size: 50
state:
  url: {state_url}
""", encoding="utf-8")
    return path


def counted(parts) -> Counter[str]:
    """The committed totals that /metrics exports (seeded from them at every start)."""
    totals: Counter[str] = Counter()
    for (name, labels), n in parts.store.counters().items():
        if name == "watchdog_cancellations":
            totals[dict(labels)["category"]] += n
        elif name == "watchdog_excluded_cancellations":
            totals["exclude"] += n
    return +totals


def value(parts, name: str, **labels: str) -> float:
    v = parts.registry.get_sample_value(name, labels or None)
    return v or 0.0


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_state_on_a_full_or_read_only_disk(tmp_path, tiny_fs, fault):
    orders_url = f"sqlite:///{tmp_path / 'orders.db'}"
    state_url = f"sqlite:///{tiny_fs / 'state.db'}"
    platform = Platform(orders_url, "orders")
    parts = assemble(load_config(config(tmp_path, orders_url, state_url)))
    try:
        for _ in range(5):
            platform.round(40)
        assert parts.pipeline.poll(datetime.now(UTC)).caught_up
        before = snapshot(state_url)
        assert before[1] == len(platform.truth)

        # Rows arrive with long reasons while the disk is full or read-only.
        for _ in range(10):
            platform.round(40)
        ballast = tiny_fs / "ballast"
        if fault == "full":
            # Fill what is left (a write of any size then fails with ENOSPC).
            with ballast.open("wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        else:
            # A file system cannot turn read-only under open writers; ours reconnect.
            parts.store.engine.dispose()
            remount(tiny_fs, "ro")
        for _ in range(3):  # the daemon retries: every attempt fails the same way
            with pytest.raises(PollFailed) as failed:
                parts.pipeline.poll(datetime.now(UTC))
            assert failed.value.stage == "state"
        message = str(failed.value.cause)
        # SQLite's own words: "database or disk is full", "unable to open database file"
        assert ("is full" if fault == "full" else "database") in message, message
        assert value(parts, "watchdog_state_up") == 0
        assert value(parts, "watchdog_poll_errors_total", stage="state") == 3
        if fault == "read-only":
            remount(tiny_fs, "rw")
        ballast.unlink(missing_ok=True)
        assert snapshot(state_url) == before  # nothing advanced past uncommitted work

        while not parts.pipeline.poll(datetime.now(UTC)).caught_up:
            pass
        assert value(parts, "watchdog_state_up") == 1
        assert counted(parts) == platform.expected()
        _, events, keys = snapshot(state_url)
        assert events == keys == len(platform.truth)
    finally:
        parts.close()
        platform.drop()
