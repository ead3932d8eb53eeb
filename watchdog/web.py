"""The HTTP endpoint: /metrics, /healthz, /readyz on one port.

A small threaded WSGI server from the standard library, with prometheus-client's WSGI
app behind /metrics (it handles content negotiation and compression). With a web config
file (metrics.web_config_file, see webconfig.py) it serves TLS and asks for basic auth.

/healthz and /readyz stay open even with basic auth: probes (kubelet, Docker, load
balancers) rarely carry credentials, and they only say alive/ready. The reason a
replica is not ready is shown to authenticated clients only, as it may name hosts.
"""

from __future__ import annotations

import base64
import binascii
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app

from .config import Config
from .webconfig import BasicAuth, WebConfigError, WebSecurity

StartResponse = Callable[..., Any]
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
REQUEST_TIMEOUT_S = 30.0  # also bounds the TLS handshake: a stalled client frees its thread

log = structlog.get_logger("watchdog.web")


@dataclass
class Health:
    """Readiness as seen by the daemon: set after every poll, read by /readyz."""

    stale_after: float = 90.0
    last_ok: float | None = None
    last_error: str | None = None
    leader: bool = False
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
                why = self.last_error or "stalled"
                return False, f"last successful poll {age:.0f}s ago ({why})"
            return True, "ok"


def make_app(registry: CollectorRegistry, health: Health,
             security: WebSecurity | None = None) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        authorized = True
        if security is not None:
            web, auth = security.current()
            start_response = _with_headers(start_response, web.headers)
            if web.auth_required:
                authorized = _authorized(environ, auth)
                if not authorized and path not in OPEN_PATHS:
                    return _unauthorized(start_response)
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            ready, why = health.ready()
            if not authorized:
                why = "ok" if ready else "not ready"
            return _text(start_response, "200 OK" if ready else "503 Service Unavailable",
                         why + "\n")
        if path == "/":
            return _text(start_response, "200 OK",
                         "cancel-watchdog: /metrics /healthz /readyz\n")
        return _text(start_response, "404 Not Found", "not found\n")

    return app


def _authorized(environ: dict[str, Any], auth: BasicAuth) -> bool:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) and auth.check(user, password)


def _unauthorized(start_response: StartResponse) -> list[bytes]:
    data = b"Unauthorized\n"
    start_response("401 Unauthorized", [
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))),
        ("WWW-Authenticate", 'Basic realm="cancel-watchdog", charset="UTF-8"')])
    return [data]


def _with_headers(start_response: StartResponse, extra: Mapping[str, str]) -> StartResponse:
    if not extra:
        return start_response

    def wrapped(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, [*headers, *extra.items()], *exc_info)

    return wrapped


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))])
    return [data]


_PLAIN_HTTP_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n"
                      b"Client sent an HTTP request to an HTTPS server.\n")
_TLS_HANDSHAKE_RECORD = 0x16


def _speaks_plain_http(sock: Any) -> bool:
    """A client that sent `GET ...` instead of a TLS ClientHello (say, curl http://)."""
    first = sock.recv(1, socket.MSG_PEEK)
    return bool(first) and first[0] != _TLS_HANDSHAKE_RECORD and first.isalpha()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: Callable[[], ssl.SSLContext | None] | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, in the connection's own thread, not in accept():
        # one slow or hostile client must not block everybody else's scrape.
        context = self.tls() if self.tls else None
        if context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(REQUEST_TIMEOUT_S)
        try:
            if _speaks_plain_http(request):
                request.sendall(_PLAIN_HTTP_TO_TLS)
                return
            tls_socket = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("tls_handshake_failed", client=client_address[0], error=str(exc))
            return
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            self.shutdown_request(tls_socket)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http_connection_error", client=client_address[0], exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class HttpServer:
    def __init__(self, host: str, port: int, app: Callable[..., Iterable[bytes]],
                 security: WebSecurity | None = None) -> None:
        self._server = make_server(host, port, app, _ThreadingWSGIServer, _QuietHandler)
        if security is not None and security.tls_enabled:
            self._server.tls = lambda: security.current()[0].tls
        self.scheme = "https" if security is not None and security.tls_enabled else "http"
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


def web_security(cfg: Config) -> WebSecurity | None:
    """The configured web config, or None; raises WebConfigError naming file:line: key."""
    if not cfg.metrics.web_config_file:
        return None
    return WebSecurity(cfg.resolve(cfg.metrics.web_config_file), on_error=_reload_refused)


def _reload_refused(exc: WebConfigError) -> None:
    log.error("web_config_reload_refused", problems=[str(p) for p in exc.problems])


def start_http_server(cfg: Config, registry: CollectorRegistry, health: Health) -> HttpServer:
    """/metrics, /healthz and /readyz on metrics.listen, with TLS and auth if configured."""
    security = web_security(cfg)
    server = HttpServer(cfg.metrics.host, cfg.metrics.port,
                        make_app(registry, health, security), security)
    return server.start()
