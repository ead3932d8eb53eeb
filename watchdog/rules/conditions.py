"""The condition types a rule is built from, and the subject they look at.

Every condition answers `test(subject)` and, for `rules test`, `evidence(subject)` (what
made it true). Keyword and code conditions never scan the text themselves: the rule set
scans it once with one Aho-Corasick automaton of every literal and hands the ids of the
literals it found to the conditions (`Subject.found`). `gate()` tells the rule set which
literals a condition cannot be true without, so rules whose literals are absent are not
evaluated at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# A code is a token: letters/digits joined by `-` or `.`, with an optional leading minus
# (`-460`) when the minus is not part of a longer token (`abc-460` is one token).
CODE_TOKEN = re.compile(r"(?<![a-z0-9_])-?[a-z0-9_]+(?:[-.][a-z0-9_]+)*")


class Subject:
    """One normalised reason and its fields, as the conditions see it."""

    __slots__ = ("_tokens", "fields", "found", "text")

    def __init__(self, text: str, found: frozenset[int] | set[int], fields: Mapping[str, str]):
        self.text = text
        self.found = found
        self.fields = fields
        self._tokens: frozenset[str] | None = None

    @property
    def tokens(self) -> frozenset[str]:
        """Code-like tokens of the text, computed only if a code condition asks."""
        if self._tokens is None:
            self._tokens = frozenset(CODE_TOKEN.findall(self.text))
        return self._tokens


class Condition(Protocol):
    def test(self, s: Subject) -> bool: ...

    def evidence(self, s: Subject) -> list[str]: ...

    def gate(self) -> frozenset[int] | None: ...


@dataclass(frozen=True, slots=True)
class Keywords:
    """True if any keyword occurs in the normalised text (substring)."""

    words: tuple[tuple[str, int], ...]  # (normalised keyword, literal id)
    ids: frozenset[int]

    def test(self, s: Subject) -> bool:
        return not self.ids.isdisjoint(s.found)

    def evidence(self, s: Subject) -> list[str]:
        return [f"keyword {w!r}" for w, i in self.words if i in s.found]

    def gate(self) -> frozenset[int] | None:
        return self.ids


@dataclass(frozen=True, slots=True)
class Regex:
    """True if any RE2 pattern matches the normalised text (case-insensitive)."""

    patterns: tuple[str, ...]
    compiled: tuple[Any, ...]

    def test(self, s: Subject) -> bool:
        return any(r.search(s.text) is not None for r in self.compiled)

    def evidence(self, s: Subject) -> list[str]:
        out = []
        for p, r in zip(self.patterns, self.compiled, strict=True):
            m = r.search(s.text)
            if m is not None:
                out.append(f"regex {p!r} matched {m.group(0)[:60]!r}")
        return out

    def gate(self) -> frozenset[int] | None:
        return None


@dataclass(frozen=True, slots=True)
class Codes:
    """True if a token of the text equals one of `codes` or starts with one of `prefixes`."""

    codes: frozenset[str]
    prefixes: tuple[str, ...]
    ids: frozenset[int]  # the codes and prefixes as literals: a cheap pre-check

    def test(self, s: Subject) -> bool:
        if self.ids.isdisjoint(s.found):
            return False
        return bool(self._hits(s))

    def _hits(self, s: Subject) -> list[str]:
        return sorted(
            t for t in s.tokens if t in self.codes or t.startswith(self.prefixes)
        ) if self.prefixes else sorted(self.codes & s.tokens)

    def evidence(self, s: Subject) -> list[str]:
        return [f"code {t!r}" for t in self._hits(s)]

    def gate(self) -> frozenset[int] | None:
        return self.ids


_NUMERIC_OPS = {"gt", "ge", "lt", "le"}
FIELD_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le")


@dataclass(frozen=True, slots=True)
class Field:
    """A comparison on another column. A missing field makes every comparison false."""

    name: str
    op: str
    value: Any  # normalised str, frozenset of str, or float

    def test(self, s: Subject) -> bool:
        actual = s.fields.get(self.name)
        if actual is None:
            return False
        op = self.op
        if op == "eq":
            return actual == self.value
        if op == "ne":
            return actual != self.value
        if op == "in":
            return actual in self.value
        if op == "not_in":
            return actual not in self.value
        try:
            number = float(actual)
        except ValueError:
            return False
        if number != number:  # NaN compares false with everything; say so explicitly
            return False
        return {
            "gt": number > self.value,
            "ge": number >= self.value,
            "lt": number < self.value,
            "le": number <= self.value,
        }[op]

    def evidence(self, s: Subject) -> list[str]:
        return [f"field {self.name} {self.op} {_show(self.value)}"]

    def gate(self) -> frozenset[int] | None:
        return None


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted(value)) + "]"
    return f"{value:g}" if isinstance(value, float) else repr(value)


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Condition, ...]

    def test(self, s: Subject) -> bool:
        for c in self.children:  # noqa: SIM110 - a loop: no generator per call (hot path)
            if not c.test(s):
                return False
        return True

    def evidence(self, s: Subject) -> list[str]:
        return [e for c in self.children for e in c.evidence(s)]

    def gate(self) -> frozenset[int] | None:
        # Any one gated child is a necessary condition; the smallest prunes best.
        gates = [g for c in self.children if (g := c.gate()) is not None]
        return min(gates, key=len) if gates else None


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]

    def test(self, s: Subject) -> bool:
        for c in self.children:  # noqa: SIM110 - as in All.test
            if c.test(s):
                return True
        return False

    def evidence(self, s: Subject) -> list[str]:
        return [e for c in self.children if c.test(s) for e in c.evidence(s)]

    def gate(self) -> frozenset[int] | None:
        gates = [c.gate() for c in self.children]
        if any(g is None for g in gates):
            return None
        return frozenset().union(*gates)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Unless:
    """`positive` holds and `veto` does not: negations and traps (`非系统原因`)."""

    positive: Condition
    veto: Condition

    def test(self, s: Subject) -> bool:
        return self.positive.test(s) and not self.veto.test(s)

    def evidence(self, s: Subject) -> list[str]:
        return self.positive.evidence(s)

    def gate(self) -> frozenset[int] | None:
        return self.positive.gate()
