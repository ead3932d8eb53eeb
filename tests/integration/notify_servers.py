"""Real local servers standing in for notification endpoints.

`HttpReceiver` plays DingTalk/WeCom/Feishu/webhook endpoints on loopback: it records every
request and answers with whatever the test's `respond` function returns (status, body,
optional hold event); it can go down (connections refused) and come back on the same
port. `SmtpServer` is aiosmtpd with optional STARTTLS/SSL and AUTH. `Alertmanager` runs
the real binary from Debian's prometheus-alertmanager package.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
ALERTMANAGER_PACKAGE = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `cond` until truthy, failing after a bounded deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    """When the request was read (time.monotonic)."""

    def json(self) -> Any:
        return json.loads(self.body)


Respond = Callable[[Received], tuple[int, Any]]


def ok_json(_: Received) -> tuple[int, Any]:
    return 200, {"errcode": 0, "errmsg": "ok"}


@dataclass
class HttpReceiver:
    respond: Respond = ok_json
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    """When set to an Event, each request waits for it before answering."""
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                req = Received("POST", parts.path, parse_qs(parts.query), dict(self.headers),
                               body)
                receiver.received.append(req)
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status, doc = receiver.respond(req)
                data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def count(self, path: str | None = None) -> int:
        return sum(1 for r in self.received if path is None or r.path == path)


# --- SMTP ---------------------------------------------------------------------------------

def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@dataclass
class SmtpServer:
    tls_dir: Path | None = None
    mode: str = "plain"
    """plain, starttls (AUTH required, only after STARTTLS) or ssl (implicit TLS)."""
    user: str = "alerts"
    password: str = "s3cret-pass"
    port: int = field(default_factory=free_port)
    messages: list[Any] = field(default_factory=list)
    auths: list[str] = field(default_factory=list)
    _controller: Any = None

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        server = self

        class Handler:
            async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
                server.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        def authenticator(srv: Any, session: Any, envelope: Any, mechanism: str,
                          data: Any) -> Any:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == server.user
                  and data.password.decode() == server.password)
            if ok:
                server.auths.append(mechanism)
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {}
        if self.mode in ("starttls", "ssl"):
            assert self.tls_dir is not None
            cert, key = self_signed_cert(self.tls_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert), str(key))
            if self.mode == "starttls":
                kwargs.update(tls_context=ctx, require_starttls=True,
                              authenticator=authenticator, auth_required=True)
            else:
                kwargs.update(ssl_context=ctx, authenticator=authenticator,
                              auth_required=True, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


# --- Alertmanager -------------------------------------------------------------------------

def alertmanager_binary() -> str:
    path = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if path is None:
        msg = (f"needs the Alertmanager binary (Debian package {ALERTMANAGER_PACKAGE}: "
               f"apt-get install -y {ALERTMANAGER_PACKAGE})")
        if IN_CI:
            pytest.fail(msg + "; under CI=true a missing binary is a failure")
        pytest.skip(msg)
    return path


@dataclass
class Alertmanager:
    workdir: Path
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        binary = alertmanager_binary()
        cfg = self.workdir / "alertmanager.yml"
        # A receiver with no integrations: we only look at the alerts Alertmanager holds.
        cfg.write_text("route:\n  receiver: blackhole\n  group_wait: 1s\n"
                       "receivers:\n  - name: blackhole\n")
        storage = self.workdir / "am-data"
        storage.mkdir(exist_ok=True)
        log = open(self.workdir / "alertmanager.log", "wb")  # noqa: SIM115 - owned by the process
        self._proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.path={storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 30, "Alertmanager to be ready")
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError((self.workdir / "alertmanager.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
