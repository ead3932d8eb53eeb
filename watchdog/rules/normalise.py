"""Turning a raw reason text into the one spelling that rules are written against.

Reason texts are typed by people on phones and produced by a dozen upstream systems:
full-width letters (`ＢＳＳ`), traditional characters (`審核不通過`), emoji, `！！！`,
NUL bytes and stray surrogates all occur. Rules are matched against `normalise(text)`,
so a rule author writes one spelling: simplified, half-width, lower-case.

Speed matters (the classifier sees every cancellation, and replays see months of them),
so the expensive steps are avoided when they cannot change anything: one `str.translate`
does traditional -> simplified and full-width -> half-width together, and the full NFKC
pass only runs when a quick check says the text is not already in NFKC.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

MAX_CHARS = 4096
"""Longer texts (HTML pages, stack traces, 1 MB garbage) are cut to their head and tail:
an error page names itself near the top, a Python traceback at the bottom."""
_TAIL_CHARS = 1024
TEMPLATE_CHARS = 80


def _build_translation() -> dict[int, str | None]:
    """One table for every per-character step.

    Traditional -> simplified (opencc's character table; only one-to-one entries, and
    where opencc lists alternatives, `乾 -> 干 乾`, the first is its preferred reading),
    full-width ASCII -> ASCII, control characters -> space, and deletion of emoji,
    pictographs, variation selectors, zero-width characters, the replacement character
    left by lossy decoding and lone surrogates (which re2 and any UTF-8 encoder refuse).
    """
    table: dict[int, str | None] = {}
    try:
        import opencc

        path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
        for line in path.read_text(encoding="utf-8").splitlines():
            src, _, dst = line.partition("\t")
            target = dst.split(" ")[0] if dst else ""
            if len(src) == 1 and len(target) == 1 and src != target:
                table[ord(src)] = target
    except (ImportError, OSError):  # pragma: no cover - a broken install degrades, not fails
        pass
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII block
        table[code] = chr(code - 0xFEE0)
    for code in (*range(0x00, 0x20), *range(0x7F, 0xA1), 0x3000, 0x2028, 0x2029):
        table[code] = " "
    for lo, hi in _DROPPED:
        for code in range(lo, hi + 1):
            table[code] = None
    return table


_DROPPED = (
    (0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0xFE00, 0xFE0F),
    (0x200B, 0x200F), (0x2060, 0x206F), (0xFEFF, 0xFEFF), (0xFFFC, 0xFFFD),
    (0xD800, 0xDFFF), (0xE0000, 0xE007F),
)
_TRANSLATION = _build_translation()
_ASCII_CONTROLS = {c: " " for c in (*range(0x00, 0x20), 0x7F)}


def _build_bmp_table(translation: dict[int, str | None]) -> list[int | str | None]:
    """The same table as a list over the Basic Multilingual Plane, with lower-casing folded in.

    Why a list: `str.translate` looks every character up; in a dict a character without
    an entry raises and clears a KeyError inside CPython, which is most of its cost on
    Chinese text. A list holds an entry for every BMP character (itself, by default), so
    no lookup fails. Texts with characters beyond the BMP (emoji) take the dict path.
    """
    table: list[int | str | None] = list(range(0x10000))
    for code in range(0x10000):
        target = translation.get(code, chr(code))
        if target is None:
            table[code] = None
        elif (low := target.lower()) != chr(code):
            table[code] = low
    return table


_BMP_TABLE = _build_bmp_table(_TRANSLATION)
_BEYOND_BMP = re.compile("[\U00010000-\U0010FFFF]")

# Runs of the same punctuation mark (`!!!`, `。。`, `???`, `~~~`) become one; `*` is left
# alone because masked numbers (`138****1234`) are made of it.
PUNCTUATION = r"!?.,;:~\-=#_。，、！？…～·"
"""The marks people repeat and trail texts with, as the inside of a regex class."""
_REPEAT_PUNCT = re.compile(rf"([{PUNCTUATION}])\1+")
# A cheap pre-check: most texts have no two punctuation marks in a row, and searching a
# character class costs a third of the back-reference substitution.
_PUNCT_PAIR = re.compile(rf"[{PUNCTUATION}]{{2}}")

_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[\d*]{4}\d{4}(?!\d)")
_ID = re.compile(r"(?<![\d*])\d{3}[\d*]{11,14}[\dx](?![\d*x])")
_DIGITS = re.compile(r"\d+")
_STARS = re.compile(r"\*{2,}")


def clip(text: str) -> str:
    """Head and tail of an over-long text (see MAX_CHARS)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[: MAX_CHARS - _TAIL_CHARS] + " … " + text[-_TAIL_CHARS:]


def normalise(text: str | None) -> str:
    """NFKC, traditional -> simplified, lower-case, no emoji/controls, collapsed spacing."""
    if not text:
        return ""
    text = clip(text)
    if text.isascii():
        if not text.isprintable():
            text = text.translate(_ASCII_CONTROLS)
        text = text.lower()
    elif _BEYOND_BMP.search(text) is None:
        text = text.translate(_BMP_TABLE)  # t2s, full-width, controls, emoji, lower case
        if not unicodedata.is_normalized("NFKC", text):
            # NFKC can produce traditional forms from compatibility ideographs.
            text = unicodedata.normalize("NFKC", text).translate(_TRANSLATION).lower()
    else:
        text = text.translate(_TRANSLATION)
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text).translate(_TRANSLATION)
        text = text.lower()
    if _PUNCT_PAIR.search(text) is not None:
        text = _REPEAT_PUNCT.sub(r"\1", text)
    return " ".join(text.split())


def reason_template(text: str | None) -> str:
    """The shape of a reason, for grouping unknown reasons: numbers and personal tokens folded.

    `订单HK2025030112 客户13812345678超时` -> `订单hk# 客户<phone>超时`. The result carries no
    phone or ID number, so it may be logged and used as a metric label value.
    """
    norm = normalise(text)
    norm = _ID.sub("<id>", norm)
    norm = _PHONE.sub("<phone>", norm)
    norm = _DIGITS.sub("#", norm)
    # Masked runs (`138****1234` already folded above; stray `****` from other masking).
    norm = _STARS.sub("*", norm)
    return norm[:TEMPLATE_CHARS]
