"""RuleFileWatcher: which file-system changes count, and when they are reported.

Modification times are set explicitly (os.utime) so that no test depends on the clock's
granularity or on how fast it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from watchdog.rules.watch import ReloadOnChange, RuleFileWatcher

SECOND = 1_000_000_000
T = 1_700_000_000 * SECOND  # a fixed past moment for file mtimes


def write(path: Path, text: str, mtime_ns: int = T) -> Path:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_nothing_changed_is_not_a_change(tmp_path):
    f = write(tmp_path / "a.yaml", "rules: []\n")
    w = RuleFileWatcher([f])
    assert not w.changed()
    assert not w.changed()


def test_an_edit_is_reported_once(tmp_path):
    f = write(tmp_path / "a.yaml", "rules: []\n")
    w = RuleFileWatcher([f])
    write(f, "rules: [] # edited\n", T + SECOND)
    assert w.changed()
    assert not w.changed()


def test_same_size_same_mtime_but_new_inode_is_a_change(tmp_path):
    # An atomic save (write a temp file, rename over) or a ConfigMap symlink swap.
    f = write(tmp_path / "a.yaml", "rules: [1]\n")
    w = RuleFileWatcher([f])
    tmp = write(tmp_path / "a.yaml.tmp", "rules: [2]\n")
    os.replace(tmp, f)
    assert w.changed()


def test_folder_files_added_removed_and_ignored(tmp_path):
    d = tmp_path / "rules.d"
    d.mkdir()
    write(d / "a.yaml", "rules: []\n")
    w = RuleFileWatcher([d])
    write(d / "notes.txt", "not a rule file")
    write(d / ".a.yaml.swp", "editor swap file")
    assert not w.changed()
    write(d / "b.yml", "rules: []\n")
    assert w.changed()
    (d / "a.yaml").unlink()
    assert w.changed()
    assert not w.changed()


def test_a_missing_path_appearing_or_vanishing_is_a_change(tmp_path):
    f = tmp_path / "site.yaml"
    w = RuleFileWatcher([f])
    write(f, "rules: []\n")
    assert w.changed()
    f.unlink()
    assert w.changed()


def test_a_change_still_being_written_waits_until_it_settles(tmp_path):
    f = write(tmp_path / "a.yaml", "rules: []\n")
    now = [T + 10 * SECOND]
    w = RuleFileWatcher([f], now_ns=lambda: now[0])
    write(f, "rules: [half", now[0])  # modified this very instant
    assert not w.changed()  # perhaps half written: wait
    write(f, "rules: [half, whole]\n", now[0])  # same tick, more bytes
    assert not w.changed()  # still moving
    assert w.changed()  # unchanged since the last look: settled
    assert not w.changed()


def test_an_old_enough_change_is_reported_at_once(tmp_path):
    f = write(tmp_path / "a.yaml", "rules: []\n")
    w = RuleFileWatcher([f], now_ns=lambda: T + 10 * SECOND)
    write(f, "rules: [x]\n", T + 5 * SECOND)
    assert w.changed()


def test_reload_on_change_reloads_only_on_change_and_force_always(tmp_path):
    f = write(tmp_path / "a.yaml", "rules: []\n")
    calls: list[int] = []
    job = ReloadOnChange(RuleFileWatcher([f]), lambda: calls.append(1))
    job()
    assert calls == []
    write(f, "rules: [x]\n", T + SECOND)
    job()
    job()
    assert calls == [1]
    job.force()
    assert calls == [1, 1]
