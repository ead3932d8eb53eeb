"""The rule set: one scan of the text, then only the rules that can match, then precedence.

Precedence among matching rules (documented in docs/rules.md):
1. a rule of category `exclude` outranks everything;
2. higher `priority` wins;
3. at equal priority the category order decides (compliance > system_fault >
   supply_shortage > duplicate > operator_error > customer_initiated > added categories >
   unknown, configurable with `category_order`);
4. at equal category, the rule loaded first wins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs

from ..model import EXCLUDE, UNKNOWN, Verdict
from .conditions import Condition, Keywords, Subject
from .normalise import normalise

CACHE_SIZE = 65_536
CACHE_MAX_TEXT = 512
"""Only short texts are cached: they are the ones that repeat, and a cache of 1 MB keys
would be a memory leak with extra steps."""
ENGINE_ERROR_RULE = "unknown.engine_error"
NO_MATCH_RULE = "unknown.no_match"
"""The rule id of a reason no rule matched: a named fallback, so that per-rule metrics
(`watchdog_rule_hits_total{rule}`) never carry an empty label."""
RESERVED_RULE_IDS = frozenset({ENGINE_ERROR_RULE, NO_MATCH_RULE})


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    condition: Condition
    priority: int = 0
    file: str = ""
    line: int | None = None
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class MatchedRule:
    id: str
    category: str
    priority: int
    where: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a reason got its category (for `rules test` and for people)."""

    text: str | None
    normalised: str
    matches: tuple[MatchedRule, ...]  # winner first
    winner: str  # rule id, NO_MATCH_RULE if nothing matched
    category: str


_EMPTY_FIELDS: Mapping[str, str] = {}


class RuleSet:
    """Compiled rules. Immutable after construction; `classify` is pure and thread-safe."""

    __slots__ = (
        "_automaton",
        "_by_literal",
        "_cached",
        "_field_names",
        "_rank",
        "_sure",
        "_ungated",
        "categories",
        "category_order",
        "literals",
        "rules",
        "version",
    )

    def __init__(
        self,
        rules: tuple[Rule, ...],
        literals: tuple[str, ...],
        categories: tuple[str, ...],
        category_order: tuple[str, ...],
        version: str,
        field_names: tuple[str, ...],
        cache_size: int = CACHE_SIZE,
    ):
        self.rules = rules
        self.literals = literals
        """Every keyword, code and code prefix; a condition's literal ids index this."""
        self.categories = categories
        self.category_order = category_order
        self.version = version
        self._field_names = field_names
        cat_rank = {c: i for i, c in enumerate(category_order)}
        ordered = sorted(
            range(len(rules)),
            key=lambda i: (
                rules[i].category != EXCLUDE,
                -rules[i].priority,
                cat_rank.get(rules[i].category, len(cat_rank)),
                i,
            ),
        )
        # Rules are kept in precedence order internally so that matches come out sorted.
        self._rank = tuple(rules[i] for i in ordered)
        by_literal: dict[int, list[int]] = {}
        ungated: list[int] = []
        for pos, rule in enumerate(self._rank):
            gate = rule.condition.gate()
            if gate is None:
                ungated.append(pos)
            else:
                for lit in gate:
                    by_literal.setdefault(lit, []).append(pos)
        self._by_literal = {k: tuple(v) for k, v in by_literal.items()}
        self._ungated = tuple(ungated)
        self._sure = frozenset(
            pos for pos, rule in enumerate(self._rank) if isinstance(rule.condition, Keywords))
        self._automaton = _automaton(literals)
        self._cached = (
            functools.lru_cache(maxsize=cache_size)(self._decide) if cache_size else self._decide
        )

    # -- classification -------------------------------------------------------------

    def classify(self, reason: str | None, fields: Mapping[str, str] | None = None) -> Verdict:
        """The category of one reason text; never raises."""
        try:
            reason = _as_text(reason)
            key = self._field_key(fields)
            if len(reason) <= CACHE_MAX_TEXT:
                return self._cached(reason, key)
            return self._decide(reason, key)
        except Exception:  # a hostile text must not stop the pipeline; see tests
            return Verdict(UNKNOWN, ENGINE_ERROR_RULE, (ENGINE_ERROR_RULE,))

    def explain(self, reason: str | None, fields: Mapping[str, str] | None = None) -> Explanation:
        text = _as_text(reason)
        subject = self._subject(text, self._field_key(fields))
        matches = tuple(
            MatchedRule(r.id, r.category, r.priority, r.where, tuple(r.condition.evidence(subject)))
            for r in self._matching(subject)
        )
        winner = matches[0] if matches else None
        return Explanation(
            text=reason,
            normalised=subject.text,
            matches=matches,
            winner=winner.id if winner else NO_MATCH_RULE,
            category=winner.category if winner else UNKNOWN,
        )

    @property
    def precedence(self) -> tuple[Rule, ...]:
        """Every rule, the one that wins a tie first."""
        return self._rank

    def cache_info(self) -> Any:
        return getattr(self._cached, "cache_info", lambda: None)()

    # -- internals ------------------------------------------------------------------

    def _field_key(self, fields: Mapping[str, str] | None) -> tuple[str | None, ...]:
        """Only the fields some rule looks at, normalised: the cache key stays small."""
        if not fields or not self._field_names:
            return ()
        out = []
        for name in self._field_names:
            value = fields.get(name)
            out.append(None if value is None else normalise(_as_text(value)))
        return tuple(out)

    def _subject(self, text: str, key: tuple[str | None, ...]) -> Subject:
        norm = normalise(text)
        found = self._automaton.found(norm) if norm else set()
        fields = (
            {n: v for n, v in zip(self._field_names, key, strict=True) if v is not None}
            if key
            else _EMPTY_FIELDS
        )
        return Subject(norm, found, fields)

    def _matching(self, s: Subject) -> list[Rule]:
        candidates: set[int] = set(self._ungated)
        by_literal = self._by_literal
        for lit in s.found:
            if lit in by_literal:
                candidates.update(by_literal[lit])
        rank, sure = self._rank, self._sure
        # A rule that is a plain keyword list matches whenever it is a candidate.
        return [rank[i] for i in sorted(candidates) if i in sure or rank[i].condition.test(s)]

    def _decide(self, text: str, key: tuple[str | None, ...]) -> Verdict:
        matched = self._matching(self._subject(text, key))
        if not matched:
            return Verdict(UNKNOWN, NO_MATCH_RULE, ())
        return Verdict(matched[0].category, matched[0].id, tuple([r.id for r in matched]))


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _automaton(literals: tuple[str, ...]) -> _Automaton | _EmptyAutomaton:
    return _Automaton(literals) if literals else _EmptyAutomaton()


class _Automaton:
    """Every literal of every rule in one Aho-Corasick automaton (ahocorasick_rs).

    Why this library: pyahocorasick's trie walk pays a search among the root's ~1,000
    children for every character that starts no literal, which is most characters of a
    Chinese text; ahocorasick_rs' contiguous NFA uses a dense root, and scanned the
    benchmark's texts twice as fast. (Its full DFA is no faster here and takes about
    twice the memory: ~15 MB for 1,000 rules.)
    """

    __slots__ = ("_ac",)

    def __init__(self, literals: tuple[str, ...]) -> None:
        self._ac = ahocorasick_rs.AhoCorasick(
            literals, implementation=ahocorasick_rs.Implementation.ContiguousNFA)

    def found(self, text: str) -> set[int]:
        """Ids (positions in `literals`) of every literal occurring in the text."""
        return {i for i, _, _ in self._ac.find_matches_as_indexes(text, overlapping=True)}


class _EmptyAutomaton:
    """ahocorasick_rs wants at least one pattern."""

    def found(self, text: str) -> set[int]:
        return set()
