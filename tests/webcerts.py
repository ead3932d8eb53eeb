"""Test helpers for the HTTP endpoint's TLS and basic auth: certificates, hashes, requests."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest


def bcrypt_hash(password: str) -> str:
    # Cost 4 (the minimum) keeps tests fast; production hashes use 10 or more.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def self_signed_cert(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


def get(url: str, user: str | None = None, password: str | None = None,
        cafile: Path | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()
