"""Condition YAML -> Condition objects (keywords, regex, codes, fields, all/any/unless),
with every mistake reported as a Problem naming file, line, key and rule id."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import re2
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..yamlfile import Problem, dotted, locate
from .conditions import CODE_TOKEN, All, AnyOf, Codes, Condition, Field, Keywords, Regex, Unless
from .normalise import normalise

COND_KEYS = ("keywords", "regex", "codes", "code_prefixes", "fields", "all", "any", "unless")
RULE_KEYS = ("id", "category", "priority", "description", "enabled", *COND_KEYS)
FIELD_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le")


def _regex_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False  # the text is lower-cased; authors need not remember
    options.log_errors = False
    options.max_mem = 8 << 20
    return options


@dataclass
class ConditionReader:
    problems: list[Problem]
    sets: dict[str, list[str]] = field(default_factory=dict)
    """Keyword sets by name (declared before any rule is read)."""
    literals: dict[str, int] = field(default_factory=dict)
    """Every keyword of every rule, numbered for the one multi-pattern scan."""
    fields: set[str] = field(default_factory=set)
    """Fields the conditions read (besides the reason)."""
    _file: str = ""
    _tree: Any = None
    _rule_id: str | None = None
    """The id of the rule whose conditions are being compiled, for messages that name it."""

    # -- conditions ----------------------------------------------------------------

    def _condition(self, node: Any, path: tuple[Any, ...], top: bool = False) -> Condition | None:
        if not isinstance(node, CommentedMap):
            self._err(path, f"expected a condition mapping with one of {', '.join(COND_KEYS)}")
            return None
        unknown = [k for k in node if k not in (RULE_KEYS if top else COND_KEYS)]
        if not top:  # a rule's own unknown keys were reported by _rule
            for key in unknown:
                self._unknown_key((*path, key), key, COND_KEYS)
        parts: list[Condition | None] = []
        for key in COND_KEYS:
            if key not in node or key == "unless":
                continue
            value, kpath = node[key], (*path, key)
            if key == "keywords":
                parts.append(self._keywords(self._list(value, kpath), kpath))
            elif key == "regex":
                parts.append(self._regex(self._list(value, kpath), kpath))
            elif key in ("codes", "code_prefixes"):
                parts.append(self._codes(self._list(value, kpath), kpath, key == "code_prefixes"))
            elif key == "fields":
                parts.append(self._fields(value, kpath))
            else:
                items = self._list(value, kpath)
                if not items:
                    self._err(kpath, f"`{key}` needs at least one condition")
                children = tuple(self._condition(c, (*kpath, i)) for i, c in enumerate(items))
                if all(c is not None for c in children):
                    parts.append((All if key == "all" else AnyOf)(children))  # type: ignore[arg-type]
                else:
                    parts.append(None)
        if not parts:
            if not unknown:  # a misspelt condition key already explains it
                self._err(path, f"needs at least one condition ({', '.join(COND_KEYS[:-1])})")
            return None
        if any(p is None for p in parts):
            return None
        positive = parts[0] if len(parts) == 1 else All(tuple(parts))  # type: ignore[arg-type]
        if "unless" not in node:
            return positive
        veto = self._unless(node["unless"], (*path, "unless"))
        return Unless(positive, veto) if veto is not None else None  # type: ignore[arg-type]

    def _unless(self, value: Any, path: tuple[Any, ...]) -> Condition | None:
        # Shorthand: `unless: [非系统原因, 库存充足]` is `unless: {keywords: [...]}`.
        if isinstance(value, str | CommentedSeq):
            return self._keywords(self._list(value, path), path)
        return self._condition(value, path)

    def _keywords(self, items: list[Any], path: tuple[Any, ...]) -> Condition | None:
        words: list[tuple[str, int]] = []
        for i, item in enumerate(items):
            if not self._text(item, (*path, i)):
                continue
            raw = str(item)
            if raw.startswith("@"):
                if raw[1:] not in self.sets:
                    guess = difflib.get_close_matches(raw[1:], list(self.sets), n=1)
                    hint = f"; did you mean `@{guess[0]}`?" if guess else ""
                    self._err((*path, i), f"unknown keyword set `{raw}`{hint}")
                    continue
                expanded = self.sets[raw[1:]]
            else:
                expanded = [raw]
            for word in expanded:
                norm = normalise(str(word))
                if not norm:
                    self._err((*path, i), f"keyword {word!r} is empty after normalisation")
                    continue
                words.append((norm, self._literal(norm)))
        if not words:
            self._err(path, "needs at least one keyword")
            return None
        words = list(dict.fromkeys(words))
        return Keywords(tuple(words), frozenset(i for _, i in words))

    def _regex(self, items: list[Any], path: tuple[Any, ...]) -> Condition | None:
        patterns, compiled = [], []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                self._err_in_rule((*path, i), "expected a non-empty pattern (RE2 syntax)")
                continue
            try:
                compiled.append(re2.compile(item, _regex_options()))
                patterns.append(item)
            except Exception as exc:  # re2 raises its own error type with bytes args
                reason = exc.args[0] if exc.args else exc
                if isinstance(reason, bytes):
                    reason = reason.decode("utf-8", "replace")
                self._err_in_rule((*path, i), f"invalid or unsupported RE2 pattern: {reason} "
                                  "(RE2 has no look-around or back-references)")
        if not compiled:
            if items:
                return None
            self._err(path, "needs at least one pattern")
            return None
        return Regex(tuple(patterns), tuple(compiled))

    def _codes(self, items: list[Any], path: tuple[Any, ...], prefix: bool) -> Condition | None:
        codes: list[str] = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int):
                self._err((*path, i), "expected a code such as ESS-3006, E1003 or -460")
                continue
            code = normalise(str(item))
            if not code or (not prefix and not CODE_TOKEN.fullmatch(code)):
                self._err((*path, i), f"{item!r} is not a single code token; use keywords or "
                          "regex for text")
                continue
            codes.append(code)
        if not codes:
            if not items:
                self._err(path, "needs at least one code")
            return None
        ids = frozenset(self._literal(c) for c in codes)
        if prefix:
            return Codes(frozenset(), tuple(codes), ids)
        return Codes(frozenset(codes), (), ids)

    def _fields(self, node: Any, path: tuple[Any, ...]) -> Condition | None:
        if not isinstance(node, CommentedMap) or not node:
            self._err(path, "expected a mapping of field name -> value, list or {op: value}")
            return None
        conds: list[Condition] = []
        for name, spec in node.items():
            fpath = (*path, name)
            self.fields.add(str(name))
            explicit = isinstance(spec, CommentedMap)
            if explicit:
                ops = list(spec.items())
            elif isinstance(spec, CommentedSeq):
                ops = [("in", spec)]
            else:
                ops = [("eq", spec)]
            if not ops:
                self._err(fpath, "needs a comparison")
            for op, value in ops:
                cond = self._field_op(str(name), op, value, (*fpath, op) if explicit else fpath)
                if cond is not None:
                    conds.append(cond)
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else All(tuple(conds))

    def _field_op(self, name: str, op: Any, value: Any, path: tuple[Any, ...]) -> Condition | None:
        if op not in FIELD_OPS:
            self._unknown_key(path, op, FIELD_OPS)
            return None
        if op in ("in", "not_in"):
            if not isinstance(value, CommentedSeq) or not value:
                self._err(path, "expected a non-empty list of values")
                return None
            return Field(name, op, frozenset(normalise(str(v)) for v in value))
        if op in ("gt", "ge", "lt", "le"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._err(path, "expected a number")
                return None
            return Field(name, op, float(value))
        if value is None or isinstance(value, CommentedMap | CommentedSeq):
            self._err(path, "expected a single value")
            return None
        return Field(name, op, normalise(str(value)))

    # -- helpers -------------------------------------------------------------------

    def _literal(self, text: str) -> int:
        return self.literals.setdefault(text, len(self.literals))

    def _list(self, value: Any, path: tuple[Any, ...]) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, CommentedSeq | list):
            return list(value)
        if isinstance(value, CommentedMap):
            self._err(path, "expected a list")
            return []
        return [value]

    def _text(self, value: Any, path: tuple[Any, ...]) -> bool:
        if isinstance(value, str) and value.strip():
            return True
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True
        self._err(path, "expected non-empty text")
        return False

    def _line(self, path: tuple[Any, ...]) -> int | None:
        return locate(self._tree, path)

    def _err(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self._file, self._line(path), dotted(path), message))

    def _err_in_rule(self, path: tuple[Any, ...], message: str) -> None:
        """A problem inside a rule, naming the rule's id: `file:line: rule ID: key: message`
        (a regex is hard to find by position alone in a long file)."""
        key = dotted(path)
        if self._rule_id is not None:
            key = f"rule {self._rule_id}: {key}"
        self.problems.append(Problem(self._file, self._line(path), key, message))

    def _unknown_key(self, path: tuple[Any, ...], key: Any, allowed: Sequence[str]) -> None:
        guess = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        msg = f"unknown key `{key}`" + (
            f"; did you mean `{guess[0]}`?" if guess else f" (valid keys: {', '.join(allowed)})"
        )
        self._err(path, msg)
