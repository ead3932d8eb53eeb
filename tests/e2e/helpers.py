"""Helpers for tests that run the watchdog as a process."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_samples(port: int) -> Iterator[tuple[str, dict[str, str], float]]:
    """Samples on /metrics; nothing while the endpoint is not up (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield s.name, s.labels, s.value


def signal_a_worker_thread(pid: int, signum: int) -> None:
    """Send `signum` to one of `pid`'s threads other than its main one (Linux tgkill).

    The kernel picks the receiving thread of a process-wide signal itself; this makes
    the case a daemon must survive (its handler runs only in the main thread) certain.
    """
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert tids, f"process {pid} runs no thread besides its main one"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tids[0], signum) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             log: Path | None = None) -> None:
    """Poll `condition` until true; fail with the daemon's log tail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


class WebhookReceiver:
    """A local webhook endpoint that keeps every JSON payload with its arrival time."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        got, lock = self.got, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.time()
                with lock:
                    got.append((at, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p for _, p in self.got]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
