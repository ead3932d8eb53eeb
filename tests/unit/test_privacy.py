from __future__ import annotations

import random
import re

import pytest

from watchdog.privacy import (
    keyed_hash,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
    mask_url,
)

# --- free text: positive cases -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "【全网一证多号】校验: 证件号码【110101199003071234】实名制开户的数量已达到最大值",
            "【全网一证多号】校验: 证件号码【110***********1234】实名制开户的数量已达到最大值",
        ),
        ("客户手机13812345678无法接通", "客户手机138****5678无法接通"),
        ("收货人:张三,电话:+86 138-1234-5678", "收货人:张*,电话:+86 138****5678"),
        ("tel 8613812345678", "tel 86138****5678"),
        ("tel 008613812345678", "tel 0086138****5678"),
        ("tel 138 1234 5678.", "tel 138****5678."),
        ("(+86)13812345678", "(+86)138****5678"),
        ("证件11010119900307123X已占用", "证件110***********123X已占用"),
        ("证件11010119900307123x已占用", "证件110***********123x已占用"),
        ("旧证件110101900307123", "旧证件110********7123"),
        ("卡号6222020012345678901", "卡号6222***********8901"),
        ("卡号6222 0200 1234 5678", "卡号6222 **** **** 5678"),
        # Identifiers written back to back form one long run; it is masked whole.
        ("证件110101199003071234110101199003075678", "证件1101****************************5678"),
        ("座机010-12345678", "座机010-****5678"),
        ("座机(0755)1234567", "座机(0755)***4567"),
        ("座机075512345678", "座机0755****5678"),
        ("mail zhang.san@example.com now", "mail z***@example.com now"),
        ("QQ邮箱13812345678@qq.com", "QQ邮箱1***@qq.com"),
        ("姓名:张三", "姓名:张*"),
        (
            "姓名【张三】与证件号【110101199003071234】不匹配",
            "姓名【张*】与证件号【110***********1234】不匹配",
        ),
        ("收货地址【广东省深圳市南山区科技园1号】", "收货地址【广东省深圳市南山区****】"),
        ("姓名：欧阳娜娜，", "姓名：欧***，"),
        ("客户: 李四 已取消", "客户: 李* 已取消"),
        ('{"name": "王五", "x": 1}', '{"name": "王*", "x": 1}'),
        ("customer_name=Zhang San;", "customer_name=Z**** ***;"),
        ("地址:广东省深圳市南山区科技园xx路1号", "地址:广东省深圳市南山区****"),
        (
            "收货地址：北京市朝阳区建国路88号 电话:13812345678",
            "收货地址：北京市朝阳区**** 电话:138****5678",
        ),
        ("地址:科技园xx路1号", "地址:****"),
    ],
)
def test_mask_text_masks(text: str, expected: str) -> None:
    assert mask_text(text) == expected


# --- free text: things that must survive untouched ------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ESS-3006 接口超时",
        "E1003",
        "错误码-460",
        "2026-11-25 10:01:02 审核不通过",
        "2026-11-25T10:01:02.123456Z",
        "首充29元",
        "订单号1234567890",
        "订单号 20261125100102",  # 14 digits: timestamp-like order numbers stay
        "毫秒时间1764036062000",
        "客户主动取消",
        "地址: 10.0.0.1:3306",
        "filename: report.csv",
        "job name: poll_orders",
        "name=default",
        "非系统原因，客户主动取消",
        "",
        "号码10012345678",  # not a mobile prefix
    ],
)
def test_mask_text_leaves_codes_alone(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "【全网一证多号】证件号码【110101199003071234】手机13812345678",
        "收货人:张三,电话:+86 138-1234-5678,地址:广东省深圳市南山区科技园xx路1号",
        "mail a@example.com, 卡6222 0200 1234 5678 901, 座机(010)12345678",
        'json {"name":"欧阳娜娜","addr":"上海市浦东新区张江路1号","id":"11010119900307123x"}',
    ],
)
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert once != text
    assert mask_text(once) == once


def test_mask_text_survives_hostile_characters() -> None:
    text = "a\x00b 😀 \ud800 13812345678 \udfff"
    assert mask_text(text) == "a\x00b 😀 \ud800 138****5678 \udfff"


@pytest.mark.parametrize(
    "chunk",
    ["1", "a", "1 ", "a@", "@a.", "地址:", "姓名:张", "138-", "0755-", "6222 ", "x" * 50 + "@"],
)
def test_mask_text_completes_on_one_megabyte(chunk: str) -> None:
    # Quadratic patterns would take hours here; the test only has to finish.
    text = chunk * (1_000_000 // len(chunk))
    assert isinstance(mask_text(text), str)


def _random_id(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(17))
    return rng.choice("123456789") + body[1:] + rng.choice("0123456789Xx")


def _random_phone(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


_FILLER = "已撤单审核不通过客户证件号码手机【】：，。校验失败号卡运营商系统超时 E-"


def test_no_phone_or_id_survives_in_random_text() -> None:
    rng = random.Random(20261125)
    for _ in range(2000):
        pieces: list[str] = []
        secrets: list[str] = []
        for _ in range(rng.randint(1, 4)):
            pieces.append("".join(rng.choice(_FILLER) for _ in range(rng.randint(0, 6))))
            value = _random_id(rng) if rng.random() < 0.5 else _random_phone(rng)
            if rng.random() < 0.3 and len(value) == 11:
                value = rng.choice(["+86 ", "86", "+86-"]) + value
            secrets.append(value)
            pieces.append(value)
        text = "".join(pieces)
        masked = mask_text(text)
        for value in secrets:
            assert value not in masked, (text, masked)
        assert not re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", masked), (text, masked)
        assert not re.search(r"(?<![0-9])[0-9]{17}[0-9Xx]", masked), (text, masked)
        assert mask_text(masked) == masked


# --- structured fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("0755-12345678", "0755****5678"),
        ("1234567", "***4567"),
        ("138****5678", "138****5678"),
        ("", ""),
    ],
)
def test_mask_phone(raw: str, expected: str) -> None:
    assert mask_phone(raw) == expected


def test_mask_id_number() -> None:
    assert mask_id_number("110101199003071234") == "110***********1234"
    assert mask_id_number("110101900307123") == "110********7123"
    assert mask_id_number("110***********1234") == "110***********1234"
    assert mask_id_number("12345") == "*****"


def test_mask_name() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("迪丽热巴·迪力木拉提") == "迪***·*****"
    assert mask_name("张*") == "张*"
    assert mask_name("") == ""


def test_mask_address() -> None:
    assert mask_address("广东省深圳市南山区科技园xx路1号") == "广东省深圳市南山区****"
    assert mask_address("新疆维吾尔自治区乌鲁木齐市天山区xx路") == (
        "新疆维吾尔自治区乌鲁木齐市天山区****"
    )
    assert mask_address("上海市浦东新区张江路1号") == "上海市浦东新区****"
    assert mask_address("山东省青岛市市南区滨江大道182号") == "山东省青岛市市南区****"
    assert mask_address("广东省东莞市南城街道光明街654号") == "广东省东莞市****"
    assert mask_address("广东省深圳市") == "广东省深圳市"
    assert mask_address("广东省深圳市南山区****") == "广东省深圳市南山区****"


def test_keyed_hash_is_keyed_and_stable() -> None:
    a = keyed_hash("110101199003071234", b"key-one")
    assert a == keyed_hash("110101199003071234", b"key-one")
    assert len(a) == 16
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a != keyed_hash("110101199003071234", b"key-two")
    assert a != keyed_hash("110101199003071235", b"key-one")
    with pytest.raises(ValueError):
        keyed_hash("x", b"")


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://user:pw-Secret1@host/db", ["pw-Secret1"]),
        ("mysql+pymysql://ro:s3cr3tPass@db:3306/orders?charset=utf8mb4", ["s3cr3tPass"]),
        ("dingtalk://TOKEN1234567abc/SECRET98765xyz", ["TOKEN1234567abc", "SECRET98765xyz"]),
        ("wecombot://KEY12345678abcdef", ["KEY12345678abcdef"]),
        ("tgram://123456789:ABCdefGhIJKlmnOPQ/123456", ["ABCdefGhIJKlmnOPQ"]),
        (
            "slack://T1ABCDEFG/B1ABCDEFG/C1ABCDEFGabcdefghijklmnop",
            ["T1ABCDEFG", "B1ABCDEFG", "C1ABCDEFGabcdefghijklmnop"],
        ),
        ("mailtos://user:pass1234word@smtp.example.com", ["pass1234word"]),
        ("json://host.example.com/path?token=abcdef123456", ["abcdef123456"]),
        ("jsons://user:pw12345678@host/path?-X-Token=hdrsecret99", ["pw12345678", "hdrsecret99"]),
        ("tgram://notparseable/123", ["notparseable"]),
        ("https://oapi.dingtalk.com/robot/send?access_token=abc123def456", ["abc123def456"]),
        ("https://example.com/hook?sign=sig123456&timestamp=1", ["sig123456"]),
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXabc123", ["XXXXXXXXXXXXabc123"]),
    ],
)
def test_mask_url_hides_secrets(url: str, secrets: list[str]) -> None:
    masked = mask_url(url)
    for secret in secrets:
        assert secret not in masked, masked
    assert masked.split("://", 1)[0] == url.split("://", 1)[0]


def test_mask_url_keeps_what_operators_need() -> None:
    assert mask_url("postgresql://user:pw@host/db") == "postgresql://user:***@host/db"
    assert mask_url("https://example.com/hook?sign=abc&timestamp=1") == (
        "https://example.com/hook?sign=***&timestamp=1"
    )
    assert "smtp.example.com" in mask_url("mailtos://user:pass1234word@smtp.example.com")
    assert "host.example.com" in mask_url("json://host.example.com/path?token=abc")


def test_mask_url_plain_url_is_idempotent() -> None:
    once = mask_url("postgresql://user:pw@host/db?password=x&sslmode=require")
    assert once == "postgresql://user:***@host/db?password=***&sslmode=require"
    assert mask_url(once) == once


def test_mask_url_does_not_let_apprise_log_the_token(caplog: pytest.LogCaptureFixture) -> None:
    # Apprise logs the raw URL when it cannot parse it.
    with caplog.at_level("DEBUG"):
        mask_url("tgram://leakytoken123/456")
        mask_url("dingtalk://!!leaky!!/sec")
    assert "leaky" not in caplog.text
