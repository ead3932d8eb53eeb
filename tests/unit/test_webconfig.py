"""The web config file: exporter-toolkit keys, precise errors, bcrypt checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.webcerts import bcrypt_hash
from watchdog.webconfig import BasicAuth, WebConfigError, WebSecurity, load_web_config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    return [str(p) for p in info.value.problems]


def test_basic_auth_users_are_loaded(tmp_path: Path) -> None:
    h = bcrypt_hash("s3cret")
    cfg = load_web_config(write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: '{h}'\n"))
    assert cfg.auth_required and cfg.tls is None
    assert cfg.users == {"prom": h.encode()}


def test_empty_file_means_no_tls_and_no_auth(tmp_path: Path) -> None:
    cfg = load_web_config(write(tmp_path / "web.yml", "# nothing yet\n"))
    assert not cfg.auth_required and cfg.tls is None


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "basic_auth_users: {}\ntls_server_confg:\n  a: 1\n")
    assert problems(path) == [
        f"{path}:2: tls_server_confg: unknown key; did you mean `tls_server_config`?"]


def test_unsupported_tls_setting_is_refused_not_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: a\n  key_file: b\n"
                 "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:4: tls_server_config.cipher_suites: unknown key")


def test_plain_password_instead_of_hash_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "basic_auth_users:\n  ok: '" + bcrypt_hash("x")
                 + "'\n  prom: hunter2\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:3: basic_auth_users.prom: ")
    assert "not a bcrypt hash" in problem and "hunter2" not in problem


def test_missing_certificate_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml",
                 "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    assert problems(path) == [
        f"{path}:2: tls_server_config.cert_file: {tmp_path / 'nope.crt'}: no such file"]


def test_certificate_that_is_not_pem_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "bad.crt", "not a certificate\n")
    write(tmp_path / "bad.key", "not a key\n")
    path = write(tmp_path / "web.yml",
                 "tls_server_config:\n  cert_file: bad.crt\n  key_file: bad.key\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:2: tls_server_config.cert_file: cannot use ")


def test_client_auth_without_ca_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: a\n  key_file: b\n"
                 "  client_auth_type: RequireAndVerifyClientCert\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:1: tls_server_config: ")
    assert "needs client_ca_file" in problem


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "basic_auth_users:\n  prom: [unclosed\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:") and "invalid YAML" in problem


def test_basic_auth_accepts_only_the_right_password() -> None:
    auth = BasicAuth({"prom": bcrypt_hash("right").encode()})
    assert auth.check("prom", "right")
    assert auth.check("prom", "right")  # second time from the cache
    assert not auth.check("prom", "wrong")
    assert not auth.check("other", "right")
    assert not auth.check("prom", "")


def test_password_longer_than_bcrypt_reads_is_refused() -> None:
    # bcrypt only looks at 72 bytes: a longer password must not match on its prefix.
    password = "x" * 72
    auth = BasicAuth({"prom": bcrypt_hash(password).encode()})
    assert auth.check("prom", password)
    assert not auth.check("prom", password + "anything")


def test_htpasswd_style_2y_hashes_work() -> None:
    hashed = bcrypt_hash("pw").replace("$2b$", "$2y$", 1)
    assert BasicAuth({"prom": hashed.encode()}).check("prom", "pw")


def test_edits_apply_and_a_broken_edit_keeps_the_old_config(tmp_path: Path) -> None:
    errors: list[WebConfigError] = []
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: '{bcrypt_hash('one')}'\n")
    security = WebSecurity(path, on_error=errors.append)
    assert security.current()[1].check("prom", "one")

    write(path, f"basic_auth_users:\n  prom: '{bcrypt_hash('two')}'\n")
    _bump_mtime(path)
    _, auth = security.current()
    assert auth.check("prom", "two") and not auth.check("prom", "one")

    write(path, "basic_auth_users:\n  prom: plain\n")
    _bump_mtime(path)
    _, auth = security.current()
    assert auth.check("prom", "two")
    security.current()
    assert len(errors) == 1, "a refused edit is reported once, not on every request"
    assert "basic_auth_users.prom" in str(errors[0])


def _bump_mtime(path: Path) -> None:
    # File systems with coarse timestamps could hide a quick rewrite; make it visible.
    st = path.stat()
    import os
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
