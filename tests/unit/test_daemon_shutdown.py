"""The order in which a stopping daemon lets go, and that one failing step stops none.

A standby that takes over loads the detector state the leader saved: the save has to
happen before the lease is released, or the standby may load stale baselines.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from structlog.testing import capture_logs

from watchdog.daemon import shut_down

NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)


class Recorder:
    def __init__(self, fail: str | None = None, holds_lease: bool = True) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.holds_lease = holds_lease

    def __call__(self, name: str, result: object = None):
        def action(*_: object) -> object:
            self.calls.append(name)
            if name == self.fail:
                raise OSError(f"{name}: the state database went away")
            return result
        return action


def parts_and_lease(rec: Recorder, leading_parts: bool = True):
    stage = SimpleNamespace(save=rec("save_detector"))
    alerting = SimpleNamespace(finish=rec("final_delivery"))
    parts = SimpleNamespace(stage=stage if leading_parts else None,
                            alerting=alerting, close=rec("close"))
    lease = SimpleNamespace(try_acquire=rec("still_leader", rec.holds_lease),
                            release=rec("release_lease"))
    return parts, lease


def test_the_leader_saves_and_delivers_before_it_releases_the_lease():
    rec = Recorder()
    parts, lease = parts_and_lease(rec)
    assert shut_down(parts, lease, True, rec("stop_http"), NOW)
    assert rec.calls == ["still_leader", "save_detector", "final_delivery",
                         "release_lease", "stop_http", "close"]


def test_a_failed_save_is_logged_and_everything_else_still_runs():
    rec = Recorder(fail="save_detector")
    parts, lease = parts_and_lease(rec)
    with capture_logs() as logs:
        assert not shut_down(parts, lease, True, rec("stop_http"), NOW)
    assert rec.calls == ["still_leader", "save_detector", "final_delivery",
                         "release_lease", "stop_http", "close"]
    assert [e["step"] for e in logs if e["event"] == "shutdown_step_failed"] == [
        "save_detector"]


def test_a_failed_release_still_closes_the_port_and_the_connections():
    rec = Recorder(fail="release_lease")
    parts, lease = parts_and_lease(rec)
    assert not shut_down(parts, lease, True, rec("stop_http"), NOW)
    assert rec.calls[-2:] == ["stop_http", "close"]


def test_a_replica_that_lost_the_lease_does_not_overwrite_the_saved_state():
    rec = Recorder(holds_lease=False)
    parts, lease = parts_and_lease(rec)
    assert shut_down(parts, lease, True, rec("stop_http"), NOW)
    assert "save_detector" not in rec.calls


def test_a_standby_neither_saves_nor_delivers():
    rec = Recorder()
    parts, lease = parts_and_lease(rec, leading_parts=False)
    assert shut_down(parts, lease, False, rec("stop_http"), NOW)
    assert rec.calls == ["release_lease", "stop_http", "close"]
