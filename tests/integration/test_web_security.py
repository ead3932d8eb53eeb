"""The HTTP endpoint with a web config: basic auth and TLS on a real socket."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from tests.webcerts import bcrypt_hash, get, self_signed_cert
from watchdog.web import Health, HttpServer, make_app
from watchdog.webconfig import WebSecurity


def serve(web_config: Path | None) -> HttpServer:
    registry = CollectorRegistry()
    Counter("watchdog_test_things", "A counter only this test has.", registry=registry).inc()
    security = WebSecurity(web_config) if web_config else None
    health = Health(leader=True)
    health.failed("source: connection refused by db.internal:5432")
    return HttpServer("127.0.0.1", 0, make_app(registry, health, security), security).start()


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[HttpServer]:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('right horse')}'\n"
                   "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    server = serve(web)
    yield server
    server.stop()


def test_right_password_gets_metrics(auth_server: HttpServer) -> None:
    status, headers, body = get(f"http://127.0.0.1:{auth_server.port}/metrics",
                                "prometheus", "right horse")
    assert status == 200
    assert "watchdog_test_things_total 1.0" in body
    assert headers["X-Frame-Options"] == "deny"


@pytest.mark.parametrize(("user", "password"), [
    ("prometheus", "wrong horse"), ("prometheus", ""), ("nobody", "right horse"), (None, None)])
def test_wrong_or_missing_credentials_get_401(auth_server: HttpServer, user: str | None,
                                              password: str | None) -> None:
    status, headers, body = get(f"http://127.0.0.1:{auth_server.port}/metrics", user, password)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert "watchdog_test_things" not in body


def test_malformed_authorization_header_gets_401(auth_server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", auth_server.port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nAuthorization: Basic %%%not-base64\r\n\r\n")
        reply = s.makefile("rb").readline()
    assert reply.split()[1] == b"401"


def test_probes_stay_open_but_hide_the_reason(auth_server: HttpServer) -> None:
    base = f"http://127.0.0.1:{auth_server.port}"
    assert get(f"{base}/healthz")[0] == 200
    status, _, body = get(f"{base}/readyz")
    assert (status, body) == (503, "not ready\n")
    status, _, body = get(f"{base}/readyz", "prometheus", "right horse")
    assert status == 503 and "db.internal" in body


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HttpServer, Path]]:
    cert, _ = self_signed_cert(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                   f"basic_auth_users:\n  prometheus: '{bcrypt_hash('pw')}'\n")
    server = serve(web)
    yield server, cert
    server.stop()


def test_tls_with_self_signed_certificate(tls_server: tuple[HttpServer, Path]) -> None:
    server, cert = tls_server
    assert server.scheme == "https"
    url = f"https://127.0.0.1:{server.port}/metrics"
    status, _, body = get(url, "prometheus", "pw", cafile=cert)
    assert status == 200 and "watchdog_test_things_total" in body
    assert get(url, "prometheus", "nope", cafile=cert)[0] == 401


def test_tls_certificate_is_verified_by_clients(tls_server: tuple[HttpServer, Path]) -> None:
    server, _ = tls_server
    with pytest.raises(OSError) as info:  # URLError wraps SSLCertVerificationError
        get(f"https://127.0.0.1:{server.port}/healthz")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_plain_http_to_the_tls_port_gets_no_metrics(tls_server: tuple[HttpServer, Path]) -> None:
    server, cert = tls_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        reply = s.makefile("rb").read()
    # Like Go's servers (Prometheus, the exporters): a readable hint, never data.
    assert reply.startswith(b"HTTP/1.0 400 Bad Request")
    assert b"HTTP request to an HTTPS server" in reply and b"watchdog_test_things" not in reply
    # A failed handshake does not take the server down.
    assert get(f"https://127.0.0.1:{server.port}/healthz", cafile=cert)[0] == 200


def test_a_stalled_handshake_does_not_block_other_clients(
        tls_server: tuple[HttpServer, Path]) -> None:
    server, cert = tls_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):
        # Connected but silent: the server waits for its ClientHello in that
        # connection's thread, so this request is served meanwhile.
        assert get(f"https://127.0.0.1:{server.port}/healthz", cafile=cert)[0] == 200


def test_tls_refuses_old_protocol_versions(tls_server: tuple[HttpServer, Path]) -> None:
    server, cert = tls_server
    context = ssl.create_default_context(cafile=str(cert))
    with pytest.warns(DeprecationWarning):  # Python itself discourages TLS 1.1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_no_web_config_means_plain_open_http() -> None:
    server = serve(None)
    try:
        assert server.scheme == "http"
        assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
    finally:
        server.stop()


def test_run_refuses_an_invalid_web_config_with_file_line_and_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from watchdog.cli import main

    (tmp_path / "web.yml").write_text("basic_auth_users:\n  prometheus: hunter2\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"source:\n  url: sqlite:///{tmp_path / 'orders.db'}\n"
        f"state:\n  url: sqlite:///{tmp_path / 'state.db'}\n"
        "metrics:\n  listen: 127.0.0.1:0\n  web_config_file: web.yml\n")
    result = CliRunner().invoke(main, ["run", "-c", str(config)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'web.yml'}:2: basic_auth_users.prometheus: not a bcrypt hash" \
        in result.output
    assert "hunter2" not in result.output
    assert not (tmp_path / "state.db").exists(), "nothing starts with a broken web config"
