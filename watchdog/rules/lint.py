"""Static checks of a compiled rule set, for `cancel-watchdog rules lint`.

Errors are mistakes that make a rule useless or harmful: a pattern that matches the empty
string (so it matches every text) and a rule that can never win because a rule with
higher precedence matches whenever it does (reported only when certain). Warnings are
worth a look but often intended: a keyword used in two categories, or one category's
keyword inside another's (precedence decides), a regex that is not gated by keywords (it
runs on every reason). Duplicate ids are refused by the loader and reach the CLI as load
errors, next to the findings on the rules that did load.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import ahocorasick_rs

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
    """B can never win if, whenever B matches, a rule ranked before it matches too.

    Sufficient tests, all certain:
    - an identical condition ranked before B;
    - B cannot match without one of its gate literals (keywords, codes) occurring in the
      text, and every gate literal contains a keyword of a plain keyword rule ranked
      before B (a rule that is nothing but keywords: no unless, fields or regex can stop
      it from matching). Containment includes equality: `一证五号` covers `一证五号超限`.
    """
    ranked = rules.precedence
    literals = rules.literals
    plain: list[tuple[int, Rule]] = []  # (rank, rule) of plain keyword rules
    words: list[str] = []  # their keywords, for one automaton
    owners: list[int] = []  # the position in `plain` of each keyword's rule
    for pos, rule in enumerate(ranked):
        ids = _plain_keywords(rule.condition)
        if ids is not None:
            for lit in sorted(ids):
                words.append(literals[lit])
                owners.append(len(plain))
            plain.append((pos, rule))
    automaton = ahocorasick_rs.AhoCorasick(words) if words else None
    covering: dict[int, set[int]] = {}  # literal -> ranks of plain rules it implies

    def covered_by(lit: int) -> set[int]:
        if lit not in covering:
            found = automaton.find_matches_as_indexes(literals[lit], overlapping=True) \
                if automaton is not None else []
            covering[lit] = {plain[owners[i]][0] for i, _, _ in found}
        return covering[lit]

    seen_conditions: dict[str, int] = {}
    for pos, rule in enumerate(ranked):
        key = repr(rule.condition)
        first = seen_conditions.setdefault(key, pos)
        if first < pos:
            yield _never_wins(rule, [ranked[first]])
            continue
        gate = rule.condition.gate()
        if not gate:
            continue
        earlier = [{p for p in covered_by(lit) if p < pos} for lit in sorted(gate)]
        if not all(earlier):
            continue
        common = set.intersection(*earlier)
        if common:
            yield _never_wins(rule, [ranked[min(common)]])
        else:  # each literal is covered, but by different rules
            yield _never_wins(rule, [ranked[p] for p in sorted({min(e) for e in earlier})])


def _never_wins(rule: Rule, winners: list[Rule]) -> Finding:
    def show(w: Rule) -> str:
        return f"`{w.id}` ({w.category}, priority {w.priority}, {w.where})"

    if len(winners) == 1:
        return Finding(ERROR, rule.where, rule.id,
                       f"can never win: {show(winners[0])} matches whenever it does and "
                       "takes precedence")
    return Finding(ERROR, rule.where, rule.id,
                   "can never win: whenever it matches, one of "
                   + ", ".join(show(w) for w in winners) + " matches too and takes precedence")


def _collisions(rules: RuleSet) -> Iterator[Finding]:
    """Keywords shared by two categories, or one category's keyword inside another's.

    Either way a text can match both, and precedence decides; the warning names both
    rules and which one takes precedence, so that the author can check it is meant.
    """
    users: dict[str, dict[str, Rule]] = defaultdict(dict)  # keyword -> category -> rule
    for rule in rules.rules:
        for word in _positive_keywords(rule):
            users[word].setdefault(rule.category, rule)
    for word, by_category in sorted(users.items()):
        if len(by_category) > 1:
            first, *others = by_category.values()
            for other in others:
                yield Finding(WARNING, other.where, other.id,
                              f"keyword {word!r} is also used by `{first.id}` "
                              f"({first.category}, {first.where}); precedence decides")
    yield from _contained_keywords(rules, users)


def _contained_keywords(rules: RuleSet,
                        users: dict[str, dict[str, Rule]]) -> Iterator[Finding]:
    """A keyword containing another category's keyword: a text with the longer one also
    matches the rule of the shorter one, and precedence decides between them.

    Only shorter keywords that make their rule match on their own (but for an `unless`)
    count: a word that is one part of an `all:` (`系统` next to `异常`) says little.
    One warning per pair of rules, on the rule with the longer keyword.
    """
    sufficient: dict[str, list[Rule]] = defaultdict(list)  # keyword -> rules it triggers
    for rule in rules.rules:
        cond = rule.condition.positive if isinstance(rule.condition, Unless) else rule.condition
        for lit in sorted(_plain_keywords(cond) or ()):
            sufficient[rules.literals[lit]].append(rule)
    shorts = sorted(sufficient)
    if not shorts:
        return
    automaton = ahocorasick_rs.AhoCorasick(shorts)
    rank = {rule.id: pos for pos, rule in enumerate(rules.precedence)}
    by_id = {rule.id: rule for rule in rules.rules}
    pairs: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for long_word, by_category in users.items():
        for i, _, _ in automaton.find_matches_as_indexes(long_word, overlapping=True):
            short_word = shorts[i]
            if short_word == long_word:
                continue  # the same keyword: reported above
            for long_rule in by_category.values():
                for short_rule in sufficient[short_word]:
                    if short_rule.category != long_rule.category:
                        pairs[(long_rule.id, short_rule.id)].add((long_word, short_word))
    for (long_id, short_id), found in sorted(pairs.items()):
        long_rule, short_rule = by_id[long_id], by_id[short_id]
        shown = ", ".join(f"{lw!r} contains {sw!r}" for lw, sw in sorted(found)[:3])
        if len(found) > 3:
            shown += f" (and {len(found) - 3} more)"
        first = long_rule if rank[long_id] < rank[short_id] else short_rule
        yield Finding(WARNING, long_rule.where, long_rule.id,
                      f"keyword {shown} of `{short_rule.id}` ({short_rule.category}, "
                      f"{short_rule.where}); when both match, `{first.id}` takes precedence")


def _positive_keywords(rule: Rule) -> Iterator[str]:
    """The rule's keywords outside `unless` (a veto keyword makes the rule not match)."""
    for cond in _walk(rule.condition):
        if isinstance(cond, Keywords) and not _is_veto(rule.condition, cond):
            for word, _ in cond.words:
                yield word


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
