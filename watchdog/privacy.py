"""Masking of personal data and secrets before anything leaves the process.

Carrier reason texts embed ID numbers, phones, names and addresses verbatim, and config
URLs carry passwords and webhook tokens. Everything here is pure and linear-time: every
pattern either starts at a character the preceding one cannot continue (look-behind
anchors) or uses possessive quantifiers, so hostile input cannot trigger backtracking.
Masking is idempotent: a masked text has no digit run, e-mail or label value left that a
second pass would change.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = [
    "keyed_hash",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_text",
    "mask_url",
]

# Anything personal needs a digit, an "@" or a label separator; most log strings have
# none of them and skip all other passes.
_MAYBE_PERSONAL = re.compile(r"[0-9@:：=]")

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])(?P<local>[A-Za-z0-9._%+\-]++)@"
    r"(?P<domain>[A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)+)"
)

# One pass over digit shapes. Alternatives are tried in order at each start position, and
# a start is only allowed where no digit precedes, so a digit run is examined once.
_DIGITS = re.compile(
    r"(?<![0-9])(?:"
    # Mobile with optional country prefix and space/dash separators: +86 138-1234-5678.
    r"(?P<cc>(?:\(\+?86\)|(?:\+|00)?86)[ \-]?)?"
    r"(?P<m1>1[3-9][0-9])[ \-]?(?P<m2>[0-9]{4})[ \-]?(?P<m3>[0-9]{4})(?![0-9])"
    # Landline written with an area-code separator: 010-12345678, (0755)1234567.
    r"|(?P<area>\(0[1-9][0-9]{1,2}\)[ \-]?|0[1-9][0-9]{1,2}[ \-])(?P<local>[0-9]{7,8})(?![0-9])"
    # Bank card written in groups of four: 6222 0200 1234 5678 [901].
    r"|(?P<card>[0-9]{4}(?:[ \-][0-9]{4}){3}(?:[ \-]?[0-9]{1,3})?)(?![0-9])"
    # 18-digit ID with X checksum.
    r"|(?P<idx>[0-9]{17}[Xx])"
    # Any other long digit run; classified by length in _mask_digit_run.
    r"|(?P<run>[0-9]{11,}+)"
    r")"
)

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Label separators seen in reason texts: "姓名:", "姓名：", "name=", JSON '"name": "', "姓名【".
_SEP = r"[\"']?[ \t]*+(?:[:：=]|【)[ \t]*+[\"']?"

# Longest labels first so 收货人 wins over a shorter prefix.
_NAME_LABELS = (
    "客户姓名|用户姓名|真实姓名|收货人|收件人|联系人|开户人|持卡人|申请人|入网人|机主|姓名|客户"
)
_NAME = re.compile(
    rf"(?P<label>(?:{_NAME_LABELS}"
    r"|(?<![A-Za-z])(?i:(?:real_?|full_?|customer_?|receiver_?|contact_?|user_?)?name"
    r"|consignee|receiver))"
    rf"{_SEP})"
    # Latin names must be capitalised and end at a word boundary, so log texts such as
    # "job name: poll_orders" keep their identifiers.
    rf"(?P<value>[{_CJK}][{_CJK}·•]{{0,15}}+"
    r"|[A-Z][A-Za-z]*+(?:[ .'\-][A-Za-z]++){0,4}(?![\w]))"
)

_HAS_CJK = re.compile(f"[{_CJK}]")
_ADDRESS_LABELS = "收货地址|收件地址|详细地址|家庭地址|联系地址|通讯地址|地址|住址"
# A value runs to the next delimiter; further space-separated words belong to it unless
# they are the next label (they end in a separator).
_VALUE_STOP = r"\s,，;；。\"'】\]}|<>"
_ADDRESS = re.compile(
    rf"(?P<label>(?:{_ADDRESS_LABELS}|(?<![A-Za-z])(?i:address|addr)){_SEP})"
    rf"(?P<value>[^{_VALUE_STOP}]++(?:[ \t]++[^{_VALUE_STOP}:：=]++(?![:：=]))*+)"
)
# Province / city / district prefix kept by the Chinese convention.
_ADMIN_PREFIX = re.compile(
    r"(?:[^\s省市区县]{1,8}?(?:省|自治区)\s*)?"
    r"(?:[^\s省市区县]{1,10}?(?:市|自治州|地区|盟)\s*)?"
    # District names may start with 市 (青岛市市南区).
    r"(?:[^\s省区县]{1,10}?(?:区|县|市|旗))?"
)

_NON_DIGIT = re.compile(r"[^0-9Xx*]")
_COUNTRY_PREFIX = re.compile(r"^(?:\+|00)?86(?=1[3-9*])")


def _keep_ends(value: str, head: int, tail: int) -> str:
    """Replace all but the first ``head`` and last ``tail`` characters with ``*``."""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def _mask_digit_run(run: str) -> str:
    n = len(run)
    if n == 11 and run[0] == "1" and run[1] in "3456789":
        return _keep_ends(run, 3, 4)
    if n in (11, 12) and run[0] == "0":
        return _keep_ends(run, 4, 4)  # landline without separator: 075512345678
    if n in (15, 18):
        return _keep_ends(run, 3, 4)  # resident ID, old and new
    if n >= 16:
        # Bank cards are 16-19 digits; longer runs are IDs and phones written back to back
        # more often than genuine identifiers, which are hex or shorter.
        return _keep_ends(run, 4, 4)
    # 12-14 digits are millisecond timestamps and compact date-time order numbers.
    return run


def _mask_grouped_card(card: str) -> str:
    digits = sum(c.isdigit() for c in card)
    out: list[str] = []
    seen = 0
    for c in card:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= 4 or seen > digits - 4 else "*")
        else:
            out.append(c)
    return "".join(out)


def _replace_digits(m: re.Match[str]) -> str:
    if m.group("m1") is not None:
        return (m.group("cc") or "") + m.group("m1") + "****" + m.group("m3")
    if m.group("local") is not None:
        return m.group("area") + _keep_ends(m.group("local"), 0, 4)
    if m.group("card") is not None:
        return _mask_grouped_card(m.group("card"))
    if m.group("idx") is not None:
        return _keep_ends(m.group("idx"), 3, 4)
    return _mask_digit_run(m.group("run"))


def _replace_email(m: re.Match[str]) -> str:
    return m.group("local")[0] + "***@" + m.group("domain")


def _replace_name(m: re.Match[str]) -> str:
    return m.group("label") + mask_name(m.group("value"))


def _replace_address(m: re.Match[str]) -> str:
    value = m.group("value")
    # Postal addresses here are Chinese; "地址: 10.0.0.1:3306" or "address: https://..."
    # are network addresses that operators need to see.
    if not _HAS_CJK.search(value):
        return m.group(0)
    return m.group("label") + mask_address(value)


def mask_text(text: str) -> str:
    """Mask phones, IDs, bank cards, e-mails, labelled names and addresses in free text."""
    if not text or not _MAYBE_PERSONAL.search(text):
        return text
    if "@" in text:
        text = _EMAIL.sub(_replace_email, text)
    # Labels before digits: an address's house number disappears with the address.
    text = _ADDRESS.sub(_replace_address, text)
    text = _NAME.sub(_replace_name, text)
    return _DIGITS.sub(_replace_digits, text)


def mask_phone(value: str) -> str:
    """``+86 138-1234-5678`` -> ``138****5678``; landlines keep area code and last 4."""
    compact = _NON_DIGIT.sub("", value)
    compact = _COUNTRY_PREFIX.sub("", compact)
    if not compact:
        return "*" * len(value.strip())
    if len(compact) >= 10:
        return _keep_ends(compact, 4 if compact[0] == "0" else 3, 4)
    return _keep_ends(compact, 0, 4)


def mask_id_number(value: str) -> str:
    """``110101199003071234`` -> ``110***********1234``."""
    compact = "".join(value.split())
    if len(compact) >= 8:
        return _keep_ends(compact, 3, 4)
    return "*" * len(compact)


def mask_name(value: str) -> str:
    """Keep the first character (the surname's): ``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧***``."""
    value = value.strip()
    if len(value) <= 1:
        return value
    return value[0] + "".join(c if c in " ·•.'-" else "*" for c in value[1:])


def mask_address(value: str) -> str:
    """Keep province, city and district.

    ``广东省深圳市南山区科技园1号`` -> ``广东省深圳市南山区****``.
    """
    value = value.strip()
    m = _ADMIN_PREFIX.match(value)
    prefix = m.group(0) if m else ""
    if len(prefix) == len(value):
        return value
    return prefix + "****"


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value`` (hex, 16 chars) to correlate records without exposing them.

    A plain hash would not do: there are few enough ID numbers and phones to hash them all.
    """
    if not key:
        raise ValueError("keyed_hash needs a non-empty key")
    data = value.encode("utf-8", "surrogatepass")
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


# --- URLs -----------------------------------------------------------------------------

_SECRET_PARAM = re.compile(
    r"token|secret|passw|pwd|sign|key|auth|credential|session|cookie|ticket|code", re.I
)
# Path segments that look like tokens (webhook ids, bot tokens): long and alphanumeric mixed.
_TOKENISH = re.compile(r"(?=[^/]*[0-9])(?=[^/]*[A-Za-z])[A-Za-z0-9_:\-.=%]{16,}+")
_MASK = "***"

# Set while we ask apprise to parse a URL: apprise logs the raw URL and token when it
# cannot parse one, and those records must not reach any handler.
_PARSING_WITH_APPRISE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "watchdog_parsing_with_apprise", default=False
)


class _DropWhileParsing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _PARSING_WITH_APPRISE.get()


def _silence_apprise_while_parsing() -> None:
    # The filter sits on apprise's own logger so it works with or without our logging set-up.
    apprise_logger = logging.getLogger("apprise")
    if not any(isinstance(f, _DropWhileParsing) for f in apprise_logger.filters):
        apprise_logger.addFilter(_DropWhileParsing())


def _mask_generic_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return _MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _pw = userinfo.partition(":")
        netloc = f"{user}:{_MASK}@{host}" if has_password else f"{userinfo}@{host}"
    path = "/".join(
        _MASK if _TOKENISH.fullmatch(seg) else seg for seg in parts.path.split("/")
    )
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='-_.')}={_MASK if _SECRET_PARAM.search(k) else quote(v, safe='-_.,*')}"
            for k, v in pairs
        )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def _apprise_private_url(url: str, scheme: str) -> str | None:
    """Apprise's own privacy rendering, or None when the scheme is not apprise's."""
    import apprise  # heavy (loads ~200 plugins): only when a URL is masked

    # NotificationManager is a singleton registry of every plugin's schemes.
    if scheme not in apprise.NotificationManager():
        return None
    _silence_apprise_while_parsing()
    token = _PARSING_WITH_APPRISE.set(True)
    try:
        plugin = apprise.Apprise.instantiate(url)
        rendered = plugin.url(privacy=True) if plugin is not None else None
    except Exception:
        rendered = None
    finally:
        _PARSING_WITH_APPRISE.reset(token)
    # An apprise URL it cannot parse may still be all token: hide everything after the scheme.
    return rendered or f"{scheme}://{_MASK}"


def mask_url(url: str) -> str:
    """Hide passwords, tokens and webhook secrets in a URL (apprise URLs included)."""
    scheme, sep, _rest = url.partition("://")
    if not sep:
        return mask_text(url)
    scheme = scheme.lower()
    rendered = _apprise_private_url(url, scheme)
    # Apprise keeps custom headers (json://...?-X-Token=...) verbatim: mask those too.
    return _mask_generic_url(rendered if rendered is not None else url)
