"""Static checks of a compiled rule set, for `cancel-watchdog rules lint`.

Errors are mistakes that make a rule useless or harmful: a pattern that matches the empty
string (so it matches every text) and a rule that can never win because a rule with
higher precedence matches whenever it does. Warnings are worth a look but often
intended: a keyword used in two categories (precedence decides), a regex that is not
gated by keywords (it runs on every reason). Duplicate ids are refused by the loader and
reach the CLI as load errors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from .conditions import All, AnyOf, Condition, Keywords, Regex, Unless
from .engine import Rule, RuleSet

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    level: str
    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.rule}: {self.message}"


def lint(rules: RuleSet) -> list[Finding]:
    findings = [*_empty_patterns(rules), *_shadowed(rules), *_collisions(rules),
                *_ungated(rules)]
    return sorted(findings, key=lambda f: (f.level != ERROR, f.where, f.rule))


def _walk(cond: Condition) -> Iterator[Condition]:
    yield cond
    if isinstance(cond, All | AnyOf):
        for child in cond.children:
            yield from _walk(child)
    elif isinstance(cond, Unless):
        yield from _walk(cond.positive)
        yield from _walk(cond.veto)


def _empty_patterns(rules: RuleSet) -> Iterator[Finding]:
    for rule in rules.rules:
        for cond in _walk(rule.condition):
            if isinstance(cond, Regex):
                for pattern, compiled in zip(cond.patterns, cond.compiled, strict=True):
                    if compiled.search("") is not None:
                        yield Finding(ERROR, rule.where, rule.id,
                                      f"regex {pattern!r} matches the empty string, so it "
                                      "matches every text")


def _plain_keywords(cond: Condition) -> frozenset[int] | None:
    """Literal ids of a condition that is true exactly when one of them occurs."""
    if isinstance(cond, Keywords):
        return cond.ids
    if isinstance(cond, AnyOf):
        parts = [_plain_keywords(c) for c in cond.children]
        if all(p is not None for p in parts):
            return frozenset().union(*parts)  # type: ignore[arg-type]
    return None


def _shadowed(rules: RuleSet) -> Iterator[Finding]:
    """B can never win if a rule ranked before it is true whenever B is.

    Two sufficient tests, both cheap: an identical condition, or a plain keyword rule A
    whose keywords include every literal B cannot match without.
    """
    ranked = rules.precedence
    holders: dict[int, set[int]] = defaultdict(set)  # literal -> plain rules (by rank)
    plain: dict[int, frozenset[int]] = {}
    for pos, rule in enumerate(ranked):
        ids = _plain_keywords(rule.condition)
        if ids is not None:
            plain[pos] = ids
            for lit in ids:
                holders[lit].add(pos)
    seen_conditions: dict[str, int] = {}
    for pos, rule in enumerate(ranked):
        key = repr(rule.condition)
        first = seen_conditions.setdefault(key, pos)
        winner = first if first < pos else None
        gate = rule.condition.gate()
        if winner is None and gate:
            common = set.intersection(*(holders.get(lit, set()) for lit in gate))
            earlier = [p for p in common if p < pos]
            winner = min(earlier) if earlier else None
        if winner is not None:
            w = ranked[winner]
            yield Finding(ERROR, rule.where, rule.id,
                          f"can never win: `{w.id}` ({w.category}, priority {w.priority}, "
                          f"{w.where}) matches whenever it does and takes precedence")


def _collisions(rules: RuleSet) -> Iterator[Finding]:
    users: dict[str, dict[str, Rule]] = defaultdict(dict)  # keyword -> category -> rule
    for rule in rules.rules:
        for cond in _walk(rule.condition):
            if isinstance(cond, Keywords) and not _is_veto(rule.condition, cond):
                for word, _ in cond.words:
                    users[word].setdefault(rule.category, rule)
    for word, by_category in sorted(users.items()):
        if len(by_category) > 1:
            first, *others = by_category.values()
            for other in others:
                yield Finding(WARNING, other.where, other.id,
                              f"keyword {word!r} is also used by `{first.id}` "
                              f"({first.category}, {first.where}); precedence decides")


def _is_veto(root: Condition, target: Condition) -> bool:
    for cond in _walk(root):
        if isinstance(cond, Unless) and any(c is target for c in _walk(cond.veto)):
            return True
    return False


def _ungated(rules: RuleSet) -> Iterator[Finding]:
    for rule in rules.rules:
        if rule.condition.gate() is None and any(
            isinstance(c, Regex) for c in _walk(rule.condition)
        ):
            yield Finding(WARNING, rule.where, rule.id,
                          "regex without keywords runs on every reason; put it in `all:` "
                          "with keywords it needs, so it only runs when they occur")
