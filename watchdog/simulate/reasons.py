"""Rendering reason texts and remarks: templates, random parts, noise, JSON timelines."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from random import Random

from .catalog import CARRIER_SHORT, CARRIER_SYSTEM, EXPRESS
from .clock import format_sim
from .reason_texts import (
    NOISE_NOTES,
    NULL_MARKER,
    PREFIXES,
    STATUS_NOTES,
    SUFFIXES,
    TEMPLATES,
    TRADITIONAL,
)
from .sampling import pick, weighted_index
from .world import Draft

PREFIX_PROBABILITY = 0.15
SUFFIX_PROBABILITY = 0.04
TRADITIONAL_PROBABILITY = 0.02
FULL_WIDTH_PROBABILITY = 0.02
NOISE_ENTRY_PROBABILITY = 0.1

_TEMPLATE_CUM: dict[str, tuple[list[str], list[float]]] = {
    kind: ([t for _, t in entries], list(itertools.accumulate(w for w, _ in entries)))
    for kind, entries in TEMPLATES.items()
}
_TRADITIONAL_TABLE = str.maketrans(TRADITIONAL)
_FULL_WIDTH_TABLE = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


class _Fields(dict[str, str]):
    """Placeholder values for one order, computed only when a template asks for them."""

    def __init__(self, rng: Random, draft: Draft, other_no: str | None) -> None:
        super().__init__()
        self.rng = rng
        self.draft = draft
        self.other_no = other_no
        self.express: tuple[str, str] | None = None

    def __missing__(self, key: str) -> str:
        value = self._make(key)
        self[key] = value
        return value

    def _make(self, key: str) -> str:
        rng, o = self.rng, self.draft.order
        match key:
            case "id":
                return o.id_number
            case "phone":
                return o.phone
            case "name":
                return o.customer_name
            case "age":
                return str(self.draft.person.age)
            case "order_no":
                return o.order_no
            case "other_no":
                return self.other_no or _random_order_no(rng, o.created_at)
            case "cs":
                return CARRIER_SHORT[o.carrier]
            case "sys":
                return CARRIER_SYSTEM[o.carrier]
            case "product" | "province" | "city" | "upstream":
                return str(getattr(o, key))
            case "n":
                return str(rng.randrange(2, 400))
            case "ms":
                return str(rng.randrange(10_000, 60_001))
            case "trace":
                return f"{rng.getrandbits(64):016x}"
            case "express":
                return self._express()[0]
            case "waybill":
                return f"{self._express()[1]}{rng.randrange(10**12):012d}"
        raise KeyError(key)

    def _express(self) -> tuple[str, str]:
        # one courier per order, whichever placeholder asks first
        if self.express is None:
            self.express = self.rng.choice(EXPRESS)
        return self.express


class ReasonWriter:
    """Turns a reason kind into a text, and a plan into remark values, for one order."""

    def __init__(self, rng: Random, draft: Draft, other_no: str | None = None) -> None:
        self.rng = rng
        self.draft = draft
        self.fields = _Fields(rng, draft, other_no)
        self.entries: list[str] = []
        """Timeline entries, each already serialized (the remark is rewritten on every step)."""
        self.last_at = draft.created

    def reason(self, kind: str) -> str | None:
        """A reason text of this kind; None stands for SQL NULL."""
        rng = self.rng
        texts, cum = _TEMPLATE_CUM[kind]
        template = texts[weighted_index(rng, cum)]
        if template == NULL_MARKER:
            return None
        text = template.format_map(self.fields)
        if kind in ("opaque", "test", "bulk") or text[:1] in "<{" or "\n" in text:
            return text  # raw payloads and markers are stored verbatim
        if rng.random() < PREFIX_PROBABILITY:
            text = rng.choice(PREFIXES).format_map(self.fields) + text
        if rng.random() < SUFFIX_PROBABILITY:
            text += rng.choice(SUFFIXES)
        if rng.random() < TRADITIONAL_PROBABILITY:
            text = text.translate(_TRADITIONAL_TABLE)
        if rng.random() < FULL_WIDTH_PROBABILITY:
            text = text.translate(_FULL_WIDTH_TABLE)
        return text

    def remark(self, at: int, status: str, reason: str | None, negative: bool) -> str | None:
        """The remark column after a step: a growing JSON timeline or a plain reason."""
        if not self.draft.timeline:
            return reason if negative else None
        if negative:
            if self.entries and self.rng.random() < NOISE_ENTRY_PROBABILITY:
                # an earlier alarming entry that is not the reason: a trap for readers that
                # take the first entry instead of the last
                between = self.last_at + max(1, (at - self.last_at) // 2)
                self._add(between, self.rng.choice(NOISE_NOTES))
            self._add(at, reason or "")
        else:
            self._add(at, pick(self.rng, STATUS_NOTES[status]).format_map(self.fields))
        return "[" + ", ".join(self.entries) + "]"

    def _add(self, at: int, content: str) -> None:
        text = json.dumps(content, ensure_ascii=False)
        self.entries.append(f'{{"time": "{format_sim(at)}", "content": {text}}}')
        self.last_at = at



def _random_order_no(rng: Random, day: datetime) -> str:
    """An order number of the same shape as ours, for a duplicate we did not generate."""
    return f"HK{day:%y%m%d}{rng.randrange(10**11):011d}"
