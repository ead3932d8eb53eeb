"""`options.min_interval`: the least time between two requests to one URL.

apprise throttles per plugin instance and never before an instance's first request; a
channel builds a plugin instance per send, so that throttle never spaces two messages.
The pacer does: it remembers when the last request to each URL ended, and a request
with a `min_interval` starts only once that much time has passed since. Measured from
the end of the previous request, the spacing holds at the receiver too.

One pacer lives as long as the `Alerting` (a reload keeps it, so a reloaded channel
remembers its last send), and it waits in the channel's own delivery task: other
channels are never held up. Requests with no `min_interval` never wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Pacer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._last_end: dict[str, float] = {}

    @contextmanager
    def turn(self, url: str, min_interval: float) -> Iterator[None]:
        """Around one request to `url`: first wait until `min_interval` seconds have
        passed since the last request to it ended (requests to one URL with an interval
        are serialised, so two channels sharing a bot share its pace too)."""
        if min_interval <= 0:
            try:
                yield
            finally:
                self._last_end[url] = time.monotonic()
            return
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            last = self._last_end.get(url)
            if last is not None:
                wait = last + min_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            try:
                yield
            finally:
                self._last_end[url] = time.monotonic()
