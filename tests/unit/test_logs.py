from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import structlog

from watchdog.logs import Redactor, configure_logging, get_logger, redact

SECRET = "env-secret-Value-42"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _json_lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _configure(**kwargs: object) -> io.StringIO:
    buf = io.StringIO()
    configure_logging(**{"level": "debug", "fmt": "json", "stream": buf, **kwargs})  # type: ignore[arg-type]
    return buf


def test_json_lines_carry_context_vars_and_utc_timestamps() -> None:
    buf = _configure()
    log = get_logger("watchdog.test")
    structlog.contextvars.bind_contextvars(poll_id="poll-7")
    log.info("polled", rows=3)
    log.warning("second")
    events = _json_lines(buf)
    assert [e["event"] for e in events] == ["polled", "second"]
    assert all(e["poll_id"] == "poll-7" for e in events)
    assert events[0]["rows"] == 3
    assert events[0]["level"] == "info"
    assert events[0]["logger"] == "watchdog.test"
    assert str(events[0]["timestamp"]).endswith("Z")


def test_auto_format_on_a_non_terminal_stream_is_json() -> None:
    buf = _configure(fmt="auto")
    get_logger("x").info("hello")
    assert _json_lines(buf)[0]["event"] == "hello"


def test_structlog_event_and_fields_are_masked() -> None:
    buf = _configure()
    get_logger("x").info(
        "客户手机13812345678无法接通",
        order={"remark": "证件号码【110101199003071234】", "tags": ["收货人:张三"]},
        dsn="postgresql://ro:dbpass123@db/orders",
        note="see postgresql://ro:dbpass123@db/orders今天",
    )
    out = buf.getvalue()
    event = _json_lines(buf)[0]
    assert event["event"] == "客户手机138****5678无法接通"
    assert event["order"] == {"remark": "证件号码【110***********1234】", "tags": ["收货人:张*"]}
    assert "dbpass123" not in out
    assert "13812345678" not in out


def test_stdlib_logger_goes_through_redaction() -> None:
    buf = _configure()
    logging.getLogger("apscheduler.scheduler").warning("job for %s failed", "13912345678")
    event = _json_lines(buf)[0]
    assert event["event"] == "job for 139****5678 failed"
    assert event["logger"] == "apscheduler.scheduler"
    assert event["level"] == "warning"


def test_registered_secret_never_appears() -> None:
    buf = _configure(secrets=[SECRET, "wor", "pw5x"])
    log = get_logger("x")
    log.info(f"connecting with {SECRET}", nested={"list": [f"x{SECRET}y"]})
    logging.getLogger("apprise").error("token %s rejected", SECRET)
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("send failed")
    out = buf.getvalue()
    assert SECRET not in out
    assert out.count("***") >= 4
    # Below the minimum length a "secret" would blank out ordinary words.
    log.info("a short word, pw5x")
    assert _json_lines(buf)[-1]["event"] == "a short word, ***"


def test_sensitive_keys_are_masked_whatever_their_value() -> None:
    buf = _configure()
    get_logger("x").info(
        "request",
        password="hunter2",
        api_key="k1",
        headers={"Authorization": "Bearer abc", "Accept": "json"},
        accessToken="t",
        dedupe_key="order-1:已撤单",
        missing_token=None,
    )
    event = _json_lines(buf)[0]
    assert event["password"] == "***"
    assert event["api_key"] == "***"
    assert event["headers"] == {"Authorization": "***", "Accept": "json"}
    assert event["accessToken"] == "***"
    assert event["dedupe_key"] == "order-1:已撤单"
    assert event["missing_token"] is None


def _explode(phone: str) -> None:
    local_marker = "LOCAL-MARKER-do-not-log"
    raise ValueError(f"bad phone {phone} ({len(local_marker)})")


def test_json_traceback_has_frames_but_no_locals() -> None:
    buf = _configure()
    try:
        _explode("13812345678")
    except ValueError:
        get_logger("x").exception("poll failed")
    out = buf.getvalue()
    event = _json_lines(buf)[0]
    (exc,) = event["exception"]  # type: ignore[misc]
    assert exc["exc_type"] == "ValueError"
    assert exc["exc_value"] == "bad phone 138****5678 (23)"
    assert [f["name"] for f in exc["frames"]][-1] == "_explode"
    assert all("locals" not in f for f in exc["frames"])
    assert "LOCAL-MARKER" not in out
    assert "13812345678" not in out


def test_stdlib_exception_is_rendered_and_masked() -> None:
    buf = _configure()
    try:
        _explode("13812345678")
    except ValueError:
        logging.getLogger("sqlalchemy.pool").exception("checkout failed")
    event = _json_lines(buf)[0]
    assert event["exception"][0]["exc_value"] == "bad phone 138****5678 (23)"  # type: ignore[index]


def test_console_format_is_readable_with_plain_traceback() -> None:
    buf = _configure(fmt="console")
    try:
        _explode("13812345678")
    except ValueError:
        get_logger("watchdog.pipeline").exception("poll failed", phone="13812345678")
    out = buf.getvalue()
    assert "poll failed" in out
    assert "Traceback (most recent call last)" in out
    assert "phone=138****5678" in out
    assert "13812345678" not in out
    assert "LOCAL-MARKER" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_configuring_twice_replaces_the_output() -> None:
    first = _configure()
    second = _configure()
    get_logger("x").info("once")
    logging.getLogger("other").warning("twice?")
    assert first.getvalue() == ""
    assert [e["event"] for e in _json_lines(second)] == ["once", "twice?"]


def test_library_loggers_are_capped() -> None:
    buf = _configure(level="debug")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")
    logging.getLogger("apscheduler.scheduler").debug("wakeup")
    logging.getLogger("apscheduler.scheduler").info("job added")
    get_logger("watchdog.x").debug("ours at debug")
    assert [e["event"] for e in _json_lines(buf)] == ["job added", "ours at debug"]


def test_level_filters_our_own_events() -> None:
    buf = _configure(level="warning")
    log = get_logger("watchdog.x")
    log.info("quiet")
    log.error("loud")
    assert [e["event"] for e in _json_lines(buf)] == ["loud"]


def test_bad_level_or_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("chatty", "json", stream=io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", stream=io.StringIO())


def test_lone_surrogates_do_not_lose_the_event() -> None:
    buf = _configure()
    get_logger("x").info("broken \ud800 bytes 13812345678")
    event = _json_lines(buf)[0]
    assert str(event["event"]).startswith("broken ")
    assert "138****5678" in str(event["event"])


def test_apprise_url_in_a_message_is_masked() -> None:
    buf = _configure()
    get_logger("x").info("sending via tgram://123456789:ABCdefGhIJKlmnOPQ/123456 now")
    logging.getLogger("apprise").warning("Unparseable URL tgram://leakytoken9/1")
    out = buf.getvalue()
    assert "ABCdefGhIJKlmnOPQ" not in out
    assert "leakytoken9" not in out
    assert len(_json_lines(buf)) == 2


@dataclass(frozen=True)
class _Row:
    phone: str


def test_redact_processor_directly() -> None:
    redactor = Redactor(secrets=["s3cret-value"])
    out = redactor(
        None,
        "info",
        {
            "event": "x s3cret-value",
            "row": _Row("13812345678"),
            "pair": ("13812345678", 5),
            "13812345678": "key is personal too",
            "ok": True,
        },
    )
    assert out == {
        "event": "x ***",
        "row": "_Row(phone='138****5678')",
        "pair": ["138****5678", 5],
        "138****5678": "key is personal too",
        "ok": True,
    }
    assert redact(None, "info", {"event": "收货人:张三"}) == {"event": "收货人:张*"}
