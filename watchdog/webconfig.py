"""The web config file: TLS and basic auth for /metrics, in the Prometheus exporter format.

Operators already write these files for node_exporter and Prometheus itself (the
exporter-toolkit format, checked by `promtool check web-config`), so we read the same
keys instead of inventing ours:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Keys we cannot honour (cipher suites, curve preferences, client SAN allow-lists) are
refused rather than ignored: silently dropping a security setting is worse than an error.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from .config import Config, Strict, validation_problems
from .yamlfile import Problem, YamlFileError, interpolate, load_yaml, locate

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
ClientAuth = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# Checked for unknown users too, so a wrong user name costs as much time as a wrong password.
_DUMMY_HASH = b"$2b$10$s6MB0Ds/9.sFXDEVDvFrm.qqYDKF8MJgnACVWJut9KfoaR2F.kKoi"
_BCRYPT_MAX_BYTES = 72  # bcrypt ignores (newer releases refuse) anything longer


class WebConfigError(YamlFileError):
    """The web config file cannot be used."""


def _bcrypt_hash(value: str) -> str:
    if not value.startswith(_BCRYPT_PREFIXES) or len(value) != 60:
        # The value is likely a plain password: never echo it.
        raise ValueError(
            "not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]


class TlsServerConfig(Strict):
    cert_file: str = Field(description="PEM certificate (chain) served to clients.")
    key_file: str = Field(description="PEM private key of cert_file.")
    client_auth_type: ClientAuth = Field(
        default="NoClientCert", description="Whether clients must present a certificate.")
    client_ca_file: str | None = Field(
        default=None, description="CA bundle that client certificates must chain to.")
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion | None = None

    @model_validator(mode="after")
    def _client_ca(self) -> TlsServerConfig:
        if self.client_auth_type != "NoClientCert" and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class HttpServerConfig(Strict):
    http2: bool = Field(default=True, description="Accepted for compatibility; the "
                        "endpoint speaks HTTP/1.1, which is all Prometheus needs.")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="Extra response headers.")


class WebConfigModel(Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, BcryptHash] = Field(
        default_factory=dict, description="User name -> bcrypt hash of the password.")

    @field_validator("basic_auth_users")
    @classmethod
    def _user_names(cls, users: dict[str, str]) -> dict[str, str]:
        for user in users:
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} must be non-empty and without ':'")
        return users


@dataclass(frozen=True)
class WebConfig:
    """A loaded, usable web config: a TLS context (or None) and the users."""

    path: Path
    tls: ssl.SSLContext | None
    users: Mapping[str, bytes]
    headers: Mapping[str, str]
    watched: tuple[tuple[Path, float], ...]
    """Files it was built from, with their mtimes: a change means reload."""

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def changed(self) -> bool:
        for file, mtime in self.watched:
            try:
                if file.stat().st_mtime != mtime:
                    return True
            except OSError:
                return True
        return False


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check the file; every problem names the file, line and key."""
    path = Path(path)
    try:
        tree = load_yaml(path)
        data = interpolate(tree, str(path)) if tree is not None else {}
    except YamlFileError as exc:
        raise WebConfigError(exc.problems) from exc
    if not isinstance(data, dict):
        raise WebConfigError([Problem(str(path), 1, "", "expected a mapping at the top level")])
    try:
        model = WebConfigModel.model_validate(data)
    except ValidationError as exc:
        raise WebConfigError(validation_problems(exc, tree, str(path), WebConfigModel)) from exc

    watched = [path]
    tls = None
    if model.tls_server_config is not None:
        tls, files = _tls_context(model.tls_server_config, path, tree)
        watched += files
    return WebConfig(
        path=path, tls=tls,
        users={u: h.encode() for u, h in model.basic_auth_users.items()},
        headers=dict(model.http_server_config.headers),
        watched=tuple((f, f.stat().st_mtime) for f in watched),
    )


def _tls_context(tc: TlsServerConfig, path: Path, tree: Any) -> tuple[ssl.SSLContext, list[Path]]:
    def resolve(key: str, value: str) -> Path:
        p = Path(value)
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise _problem(path, tree, key, f"{p}: no such file")
        return p

    cert = resolve("cert_file", tc.cert_file)
    key = resolve("key_file", tc.key_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tc.min_version]
    if tc.max_version:
        ctx.maximum_version = TLS_VERSIONS[tc.max_version]
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise _problem(path, tree, "cert_file",
                       f"cannot use {cert} with {key}: {exc}") from exc
    files = [cert, key]
    if tc.client_ca_file:
        ca = resolve("client_ca_file", tc.client_ca_file)
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise _problem(path, tree, "client_ca_file", f"cannot use {ca}: {exc}") from exc
        ctx.verify_mode = (ssl.CERT_REQUIRED if tc.client_auth_type == "RequireAndVerifyClientCert"
                           else ssl.CERT_OPTIONAL)
        files.append(ca)
    return ctx, files


def _problem(path: Path, tree: Any, key: str, message: str) -> WebConfigError:
    loc = ("tls_server_config", key)
    return WebConfigError([Problem(str(path), locate(tree, loc), ".".join(loc), message)])


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    bcrypt is slow by design (tens of ms per check); Prometheus scrapes with the same
    credentials every few seconds, so successful checks are remembered by a digest of
    (user, password, hash). Failures are not cached: guessing stays expensive.
    """

    def __init__(self, users: Mapping[str, bytes], max_cached: int = 64) -> None:
        self._users = dict(users)
        self._ok: set[bytes] = set()
        self._max = max_cached
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        pw = password.encode()
        digest = hashlib.sha256(b"\0".join((user.encode(), pw, hashed or b""))).digest()
        with self._lock:
            if hashed is not None and digest in self._ok:
                return True
        ok = (bcrypt.checkpw(pw[:_BCRYPT_MAX_BYTES], hashed or _DUMMY_HASH)
              and hashed is not None and len(pw) <= _BCRYPT_MAX_BYTES)
        if ok:
            with self._lock:
                if len(self._ok) >= self._max:
                    self._ok.clear()
                self._ok.add(digest)
        return ok


class WebSecurity:
    """The web config in force, reloaded when the file or its certificates change.

    Like the exporters, edits (a new password, a renewed certificate) apply to the next
    connection without a restart. A broken edit is logged once and the previous config
    stays in force: a typo must not open the endpoint or take it down. Turning TLS on or
    off needs a restart, since clients would otherwise silently switch protocol.
    """

    def __init__(self, path: str | Path, on_error: Any = None) -> None:
        self.path = Path(path)
        self._config = load_web_config(self.path)
        self._auth = BasicAuth(self._config.users)
        self._refused: tuple[tuple[Path, float], ...] | None = None
        self._on_error = on_error
        self._lock = threading.Lock()

    @property
    def tls_enabled(self) -> bool:
        return self._config.tls is not None

    def current(self) -> tuple[WebConfig, BasicAuth]:
        with self._lock:
            if self._config.changed():
                self._reload()
            return self._config, self._auth

    def _reload(self) -> None:
        signature = _signature(self._config.watched)
        if signature == self._refused:
            return
        try:
            fresh = load_web_config(self.path)
            if (fresh.tls is None) != (self._config.tls is None):
                raise WebConfigError([Problem(str(self.path), None, "tls_server_config",
                                              "turning TLS on or off needs a restart")])
        except WebConfigError as exc:
            self._refused = signature
            if self._on_error:
                self._on_error(exc)
            return
        self._config, self._auth, self._refused = fresh, BasicAuth(fresh.users), None


def _signature(watched: tuple[tuple[Path, float], ...]) -> tuple[tuple[Path, float], ...]:
    out = []
    for file, _ in watched:
        try:
            out.append((file, file.stat().st_mtime))
        except OSError:
            out.append((file, -1.0))
    return tuple(out)


def web_config_problems(cfg: Config) -> list[str]:
    """Problems of the configured web config file, for `check` and start-up."""
    if not cfg.metrics.web_config_file:
        return []
    try:
        load_web_config(cfg.resolve(cfg.metrics.web_config_file))
    except WebConfigError as exc:
        return [str(p) for p in exc.problems]
    return []
