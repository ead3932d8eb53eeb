from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from watchdog.timeline import MAX_REASON_CHARS, as_text, current_reason, parse_time

SH = ZoneInfo("Asia/Shanghai")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_none_stays_none() -> None:
    assert current_reason(None, SH) == (None, None)


@pytest.mark.parametrize(
    "text",
    [
        "证件审核不通过",
        "",
        "   ",
        "-460",
        '{"code":500,"msg":"签名验证失败"}',
        "[not json",
        '[{"time": "2024-05-01 10:00:00", "content": "x"}',  # cut off
        "[1, 2, 3]",
        '["审核中", "已撤单"]',
        '"just a json string"',
        "<html><body>502 Bad Gateway</body></html>",
        "[" * 10_000 + "]" * 10_000,  # nesting bomb: json raises RecursionError
    ],
)
def test_non_timeline_texts_stay_verbatim(text: str) -> None:
    assert current_reason(text, SH) == (text, None)


def test_latest_entry_wins_and_its_naive_time_is_local() -> None:
    text = json.dumps(
        [
            {"time": "2024-05-01 10:00:00", "content": "已提交"},
            {"time": "2024-05-01 12:30:00", "content": "证件审核不通过"},
            {"time": "2024-05-01 11:00:00", "content": "待审核"},
        ],
        ensure_ascii=False,
    )
    assert current_reason(text, SH) == ("证件审核不通过", utc(2024, 5, 1, 4, 30))


def test_zone_comes_from_the_caller() -> None:
    text = '[{"time": "2024-05-01 12:00:00", "content": "x"}]'
    assert current_reason(text, ZoneInfo("UTC")) == ("x", utc(2024, 5, 1, 12))


def test_equal_times_prefer_the_later_entry() -> None:
    text = json.dumps(
        [
            {"time": "2024-05-01 10:00:00", "content": "first"},
            {"time": "2024-05-01 10:00:00", "content": "second"},
        ]
    )
    assert current_reason(text, SH)[0] == "second"


def test_other_keys_and_alternative_content_keys() -> None:
    text = json.dumps(
        [
            {"time": "2024-05-01 10:00:00", "msg": "号码预占失败", "operator": "sys"},
            {"time": "2024-05-01 09:00:00", "desc": "older"},
        ],
        ensure_ascii=False,
    )
    assert current_reason(text, SH) == ("号码预占失败", utc(2024, 5, 1, 2))


def test_entries_without_text_are_skipped() -> None:
    text = json.dumps(
        [
            {"time": "2024-05-01 10:00:00", "content": "客户取消"},
            {"time": "2024-05-01 11:00:00", "content": "   "},
            {"time": "2024-05-01 12:00:00"},
        ],
        ensure_ascii=False,
    )
    assert current_reason(text, SH) == ("客户取消", utc(2024, 5, 1, 2))


@pytest.mark.parametrize("text", ["[]", " [ ] ", '[{"time": "2024-05-01 10:00:00"}]', "[{}]"])
def test_timeline_without_any_text_has_no_reason(text: str) -> None:
    assert current_reason(text, SH) == (None, None)


def test_untimed_entries_fall_back_to_list_order() -> None:
    text = '[{"content": "a"}, {"content": "b", "time": "yesterday-ish"}]'
    assert current_reason(text, SH) == ("b", None)


def test_timed_entry_beats_untimed_one() -> None:
    text = '[{"content": "a", "time": "2024-05-01 10:00:00"}, {"content": "b"}]'
    assert current_reason(text, SH) == ("a", utc(2024, 5, 1, 2))


def test_non_string_content_is_rendered_as_json() -> None:
    text = '[{"time": "2024-05-01 10:00:00", "content": {"code": -460}}]'
    assert current_reason(text, SH)[0] == '{"code": -460}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1714528800, utc(2024, 5, 1, 2)),  # epoch seconds
        (1714528800123, utc(2024, 5, 1, 2, 0, 0, 123000)),  # epoch milliseconds
        ("1714528800", utc(2024, 5, 1, 2)),
        (1714528800.5, utc(2024, 5, 1, 2, 0, 0, 500000)),
        ("2024-05-01 10:00:00", utc(2024, 5, 1, 2)),
        ("2024-05-01T10:00:00.250000", utc(2024, 5, 1, 2, 0, 0, 250000)),
        ("2024-05-01T02:00:00Z", utc(2024, 5, 1, 2)),
        ("2024-05-01 10:00:00+08:00", utc(2024, 5, 1, 2)),
        ("2024/5/1 10:00", utc(2024, 5, 1, 2)),
        ("2024年05月01日 10:00:00", utc(2024, 5, 1, 2)),
        ("2024-05-01 10:00:00.1234567", utc(2024, 5, 1, 2, 0, 0, 123456)),
        ("2024-05-01", utc(2024, 4, 30, 16)),
        (-460, None),  # an error code, not a time
        (True, None),
        (None, None),
        ("", None),
        ("2024-13-45 10:00:00", None),
        ("刚刚", None),
        ([2024, 5, 1], None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value, SH) == expected


def test_number_time_in_timeline() -> None:
    text = '[{"time": 1714528800, "content": "a"}, {"time": 1714532400000, "content": "b"}]'
    assert current_reason(text, SH) == ("b", utc(2024, 5, 1, 3))


def test_huge_reason_is_truncated_not_rejected() -> None:
    text = "系统异常" * 300_000  # 1.2 M characters
    reason, when = current_reason(text, SH)
    assert when is None
    assert reason == text[:MAX_REASON_CHARS]


def test_huge_timeline_is_still_parsed_and_its_reason_truncated() -> None:
    entries = [{"time": "2024-05-01 10:00:00", "content": "x" * 1_000_000}]
    entries.append({"time": "2024-05-01 09:00:00", "content": "old"})
    reason, when = current_reason(json.dumps(entries), SH)
    assert reason == "x" * MAX_REASON_CHARS
    assert when == utc(2024, 5, 1, 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("abc", "abc"),
        (42, "42"),
        ("证件\x00号", "证件号"),
        ("已撤单".encode(), "已撤单"),
        ("审核不通过".encode("gbk"), "审核不通过"),
        (memoryview(b"ok"), "ok"),
        (bytearray(b"ok"), "ok"),
    ],
)
def test_as_text(value: object, expected: str | None) -> None:
    assert as_text(value) == expected


def test_as_text_never_raises_on_garbage_bytes() -> None:
    garbage = bytes(range(256)) * 4
    text = as_text(garbage)
    assert isinstance(text, str)
    assert "\x00" not in text
