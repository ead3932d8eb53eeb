"""The HTTP endpoint: /metrics, /healthz, /readyz on one port.

A small threaded WSGI server from the standard library, with prometheus-client's WSGI
app behind /metrics (it handles content negotiation and compression).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]


@dataclass
class Health:
    """Readiness as seen by the daemon: set after every poll, read by /readyz."""

    stale_after: float = 90.0
    last_ok: float | None = None
    last_error: str | None = None
    leader: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self) -> None:
        with self._lock:
            self.last_ok, self.last_error = time.monotonic(), None

    def failed(self, error: str) -> None:
        with self._lock:
            self.last_error = error

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            if not self.leader:
                return True, "standby"
            if self.last_ok is None:
                return False, self.last_error or "no successful poll yet"
            age = time.monotonic() - self.last_ok
            if age > self.stale_after:
                return False, f"last successful poll {age:.0f}s ago ({self.last_error or 'stalled'})"
            return True, "ok"


def make_app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            ready, why = health.ready()
            return _text(start_response, "200 OK" if ready else "503 Service Unavailable",
                         why + "\n")
        if path == "/":
            return _text(start_response, "200 OK",
                         "cancel-watchdog: /metrics /healthz /readyz\n")
        return _text(start_response, "404 Not Found", "not found\n")

    return app


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))])
    return [data]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class HttpServer:
    def __init__(self, host: str, port: int, app: Callable[..., Iterable[bytes]]) -> None:
        self._server = make_server(host, port, app, _ThreadingWSGIServer, _QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
