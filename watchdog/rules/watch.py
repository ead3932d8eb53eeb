"""Noticing that rule files changed, so the daemon can reload them without a restart.

Stat polling rather than inotify: rule files live on local disks, NFS and Kubernetes
ConfigMap mounts (a symlink swap), and `stat` sees all of them the same way, with no
extra thread and no dependency. A file is fingerprinted by (mtime_ns, size, inode); a
configured folder by the fingerprints of its `*.yaml`/`*.yml` files, so adding, removing
or renaming a rule file counts as a change too. A missing path is part of the fingerprint
(the reload then reports it precisely).

A change is only reported once the files have settled: an editor or `cp` that is still
writing would otherwise make us load half a file and count a reload error. Settled means
the newest modification is at least `settle_ns` old, or the fingerprint has not moved
since the previous check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

RULE_SUFFIXES = (".yaml", ".yml")
SETTLE_NS = 1_000_000_000

Stamp = tuple[str, int, int, int] | tuple[str, None, None, None]
"""(path, mtime_ns, size, inode); the Nones mark a path that does not exist."""
Fingerprint = tuple[Stamp, ...]


def fingerprint(paths: Iterable[str | Path]) -> Fingerprint:
    """The stat fingerprint of rule files and folders, as the loader would expand them."""
    stamps: list[Stamp] = []
    for path in map(Path, paths):
        if path.is_dir():
            try:
                names = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES)
            except OSError:
                names = []
            stamps.append(_stamp(path))  # a folder that vanishes and comes back empty
            stamps.extend(_stamp(p) for p in names)
        else:
            stamps.append(_stamp(path))
    return tuple(stamps)


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()  # follows symlinks: a ConfigMap swap changes the inode
    except OSError:
        return (str(path), None, None, None)
    if path.is_dir():
        return (str(path), 0, 0, st.st_ino)  # a folder's own mtime moves with editor temp files
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


class RuleFileWatcher:
    """`changed()` is true once per settled change of the watched rule files.

    The fingerprint at construction is the baseline: build the watcher from the same
    paths, just before or after loading the rules it guards.
    """

    def __init__(self, paths: Sequence[str | Path], *, settle_ns: int = SETTLE_NS,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.paths = tuple(Path(p) for p in paths)
        self._settle_ns = settle_ns
        self._now_ns = now_ns
        self._applied = fingerprint(self.paths)
        self._pending: Fingerprint | None = None

    def changed(self) -> bool:
        current = fingerprint(self.paths)
        if current == self._applied:
            self._pending = None
            return False
        if current == self._pending or self._settled(current):
            self._applied, self._pending = current, None
            return True
        self._pending = current  # still being written, perhaps: look again next time
        return False

    def _settled(self, fp: Fingerprint) -> bool:
        newest = max((s[1] for s in fp if s[1] is not None), default=0)
        return self._now_ns() - newest >= self._settle_ns


class ReloadOnChange:
    """The scheduler job: reload when the files changed; `force()` for SIGHUP.

    Reloads never run concurrently (a SIGHUP during a file-triggered reload waits), so
    an older load cannot overwrite a newer one.
    """

    def __init__(self, watcher: RuleFileWatcher, reload: Callable[[], object]) -> None:
        self.watcher = watcher
        self._reload = reload
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self.watcher.changed():
            self.force()

    def force(self) -> None:
        with self._lock:
            self._reload()

