"""Reason texts as stored in order tables: decoding, size limits and JSON timelines.

Pure functions, no I/O. Upstreams often keep the order history in the reason column as a
JSON list such as `[{"time": "2024-05-01 10:00:00", "content": "审核不通过"}, ...]`; the
entry with the latest time is the current reason and its time the best event time.
Anything that is not recognisably such a list (free text, an HTML page, a JSON error
body like `{"code": 500, "msg": "..."}`, malformed JSON) is kept verbatim.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MAX_REASON_CHARS = 65_536
"""Reasons are cut to this many characters before classification and storage. Real
reasons are a few hundred characters at most; the long tail is HTML pages and stack traces
whose first 64 Ki characters say everything a rule can match on."""

MAX_JSON_CHARS = 4 * 1024 * 1024
"""Texts longer than this are not parsed as JSON at all (bounds the parsing cost)."""

CONTENT_KEYS = ("content", "msg", "message", "remark", "desc", "description", "reason", "text")
"""Keys that may hold an entry's text, most specific first."""

TIME_KEYS = (
    "time", "create_time", "createTime", "created_at", "datetime", "date", "timestamp", "ts",
)

_DATE_TIME = re.compile(
    r"^\s*(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:[ T]+(\d{1,2})[:时](\d{1,2})(?:[:分](\d{1,2})(?:[.,](\d{1,9}))?秒?)?)?\s*$"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Epoch numbers outside 2001-09-09 .. 2286-11-20 are more likely ids or codes than times.
_EPOCH_SECONDS = (1e9, 1e10)
_EPOCH_MILLIS = (1e12, 1e13)


def as_text(value: Any) -> str | None:
    """A reason/dimension value from a database driver as text; never raises.

    Bytes are tried as UTF-8, then GB18030 (legacy Chinese databases), then decoded as
    UTF-8 with replacement characters. NUL characters are dropped because PostgreSQL text
    cannot hold them and the state database may be PostgreSQL.
    """
    if type(value) is str:  # the common case, first: this runs for every column of every row
        return value.replace("\x00", "") if "\x00" in value else value
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes | bytearray):
        text = _decode(bytes(value))
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    return text.replace("\x00", "") if "\x00" in text else text


def _decode(data: bytes) -> str:
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")  # pragma: no cover - gb18030 decodes most


def current_reason(text: str | None, zone: ZoneInfo) -> tuple[str | None, datetime | None]:
    """The current reason in `text` and, for a JSON timeline, the time of that entry.

    Returns `(reason, event_time)`; `event_time` is UTC-aware, or None when the text is not
    a timeline or the chosen entry has no usable time (the caller then uses the row's
    change time). Naive times in the timeline are read in `zone`. An empty timeline, or
    one whose entries all lack text, gives `(None, None)`. The reason is cut to
    `MAX_REASON_CHARS`.
    """
    if text is None:
        return None, None
    entries = _timeline_entries(text)
    if entries is None:
        return _truncate(text), None
    best: tuple[datetime, int] | None = None
    best_content: str | None = None
    last_content: str | None = None
    for index, entry in enumerate(entries):
        content = _entry_content(entry)
        if content is None:
            continue
        last_content = content
        when = _entry_time(entry, zone)
        if when is not None and (best is None or (when, index) >= best):
            best, best_content = (when, index), content
    if best is not None:
        return _truncate(best_content), best[0]
    # No entry has a usable time: the list order is the only history we have.
    return _truncate(last_content), None


def parse_time(value: Any, zone: ZoneInfo) -> datetime | None:
    """A timeline time (string, epoch seconds or milliseconds) as UTC-aware, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    if _NUMBER.fullmatch(value):
        return _from_epoch(float(value))
    parsed = _parse_iso(value) or _parse_loose(value)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _timeline_entries(text: str) -> list[dict[str, Any]] | None:
    """The entries if `text` is a JSON list of objects, else None."""
    stripped = text.strip()
    if not stripped.startswith("[") or len(stripped) > MAX_JSON_CHARS:
        return None
    try:
        body = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
        return None
    return body


def _entry_content(entry: dict[str, Any]) -> str | None:
    for key in CONTENT_KEYS:
        value = entry.get(key)
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if text.strip():
            return text
    return None


def _entry_time(entry: dict[str, Any], zone: ZoneInfo) -> datetime | None:
    for key in TIME_KEYS:
        if key in entry:
            when = parse_time(entry[key], zone)
            if when is not None:
                return when
    return None


def _from_epoch(number: float) -> datetime | None:
    if _EPOCH_MILLIS[0] <= number < _EPOCH_MILLIS[1]:
        number /= 1000
    elif not _EPOCH_SECONDS[0] <= number < _EPOCH_SECONDS[1]:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=number)


def _parse_iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _parse_loose(value: str) -> datetime | None:
    """`2024/5/1 9:03`, `2024年05月01日 10:00:00`, `2024-05-01 10:00:00.1234567`."""
    m = _DATE_TIME.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction = m.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day),
            int(hour or 0), int(minute or 0), int(second or 0), micros,
        )
    except ValueError:
        return None


def _truncate(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_REASON_CHARS:
        return text
    return text[:MAX_REASON_CHARS]
