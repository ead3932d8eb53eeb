"""Rule files -> RuleSet, with every mistake reported as `file:line: key: message`.

Files are read in two passes: first every file's `categories` and `keyword_sets` (so a
user file may use a default keyword set, or a default-shaped rule may use a category a
user file adds), then the rules. Rules from user files replace default rules of the same
id; `enabled: false` removes one. Within the defaults, or within the user files, an id
may be used only once.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from ..model import CATEGORIES, EXCLUDE, UNKNOWN
from ..yamlfile import Problem, YamlFileError
from .condition_reader import RULE_KEYS, ConditionReader
from .conditions import All, Field
from .engine import CACHE_SIZE, RESERVED_RULE_IDS, Rule, RuleSet
from .normalise import normalise

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_ORDER = (
    "compliance",
    "system_fault",
    "supply_shortage",
    "duplicate",
    "operator_error",
    "customer_initiated",
)
TOP_KEYS = ("categories", "category_order", "keyword_sets", "rules", "code_maps")
CODE_MAP_KEYS = ("id", "upstream", "field", "priority", "codes")
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_PRIORITY = 1000


class RuleError(YamlFileError):
    """Rule files cannot be used; `.problems` lists every problem found."""


def load_rules(
    paths: Sequence[str | Path] = (),
    use_defaults: bool = True,
    cache_size: int = CACHE_SIZE,
) -> RuleSet:
    """Compile the default rules (unless `use_defaults=False`) and the given files/folders."""
    rules, problems = load_rules_partially(paths, use_defaults, cache_size)
    if problems:
        raise RuleError(problems)
    return rules


def load_rules_partially(
    paths: Sequence[str | Path] = (),
    use_defaults: bool = True,
    cache_size: int = CACHE_SIZE,
) -> tuple[RuleSet, list[Problem]]:
    """The rules that load, and every problem of those that do not.

    For `rules lint`, which reports load problems and the checks of the rest in one run.
    A rule with a problem is left out (a duplicate id keeps the first), as is a file that
    cannot be parsed; nothing else changes, so what lint says of the rest holds.
    """
    problems: list[Problem] = []
    default_files = sorted(DEFAULT_DIR.glob("*.yaml")) if use_defaults else []
    user_files = _expand(paths, problems)
    builder = _Builder(problems)
    docs = [(f, True, builder.read(f)) for f in default_files]
    docs += [(f, False, builder.read(f)) for f in user_files]
    for f, _, tree in docs:
        builder.declare(str(f), tree)
    for f, is_default, tree in docs:
        builder.compile(str(f), tree, is_default)
    return builder.build(cache_size, _version(default_files + user_files)), problems


def _expand(paths: Sequence[str | Path], problems: list[Problem]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml") and x.is_file())
        elif p.exists():
            out.append(p)
        else:
            problems.append(Problem(str(p), None, "", "no such rule file or directory"))
    return out


def _version(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with contextlib.suppress(OSError):
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class _Builder(ConditionReader):
    """Reads rule files (declarations, then rules and code maps) into a RuleSet; the
    conditions themselves are ConditionReader's."""

    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))
    order: tuple[str, ...] | None = None
    rules: dict[str, tuple[Rule, bool]] = field(default_factory=dict)  # id -> (rule, default)
    disabled: set[str] = field(default_factory=set)

    # -- pass 0 and 1: read, declare -----------------------------------------------

    def read(self, path: Path) -> Any:
        from ..yamlfile import load_yaml

        try:
            tree = load_yaml(path)
        except YamlFileError as exc:
            self.problems += exc.problems
            return None
        if tree is not None and not isinstance(tree, CommentedMap):
            self.problems.append(Problem(str(path), 1, "", "expected a mapping with `rules:`"))
            return None
        return tree

    def declare(self, file: str, tree: CommentedMap | None) -> None:
        if tree is None:
            return
        self._file, self._tree = file, tree
        for key in tree:
            if key not in TOP_KEYS:
                self._unknown_key((key,), key, TOP_KEYS)
        for i, name in enumerate(self._list(tree.get("categories"), ("categories",))):
            if not isinstance(name, str) or not _CATEGORY.match(name) or name == EXCLUDE:
                self._err(("categories", i), "a category is a lower-case name like `logistics`")
            elif name not in self.categories:
                self.categories.append(name)
        sets = tree.get("keyword_sets")
        if sets is not None and not isinstance(sets, CommentedMap):
            self._err(("keyword_sets",), "expected a mapping of name -> list of keywords")
        elif sets is not None:
            for name, words in sets.items():
                path = ("keyword_sets", name)
                if name in self.sets:
                    self._err(path, f"keyword set `{name}` is defined twice")
                self.sets[name] = [
                    w for i, w in enumerate(self._list(words, path)) if self._text(w, (*path, i))
                ]

    # -- pass 2: rules -------------------------------------------------------------

    def compile(self, file: str, tree: CommentedMap | None, is_default: bool) -> None:
        if tree is None:
            return
        self._file, self._tree = file, tree
        if "category_order" in tree:
            self._category_order(tree["category_order"])
        for i, node in enumerate(self._list(tree.get("rules"), ("rules",))):
            self._rule(node, ("rules", i), is_default)
        for i, node in enumerate(self._list(tree.get("code_maps"), ("code_maps",))):
            self._code_map(node, ("code_maps", i), is_default)

    def _category_order(self, node: Any) -> None:
        names = self._list(node, ("category_order",))
        seen: list[str] = []
        for i, name in enumerate(names):
            if name in (UNKNOWN, EXCLUDE):
                self._err(("category_order", i), f"`{name}` has a fixed place and is not listed")
            elif name not in self.categories:
                self._err(("category_order", i), self._unknown_category(name))
            elif name in seen:
                self._err(("category_order", i), f"`{name}` is listed twice")
            else:
                seen.append(name)
        self.order = tuple(seen)

    def _rule(self, node: Any, path: tuple[Any, ...], is_default: bool) -> None:
        if not isinstance(node, CommentedMap):
            self._err(path, "a rule is a mapping with id, category and conditions")
            return
        before = len(self.problems)
        for key in node:
            if key not in RULE_KEYS:
                self._unknown_key((*path, key), key, RULE_KEYS)
        rule_id = node.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            self._err((*path, "id") if "id" in node else path,
                      "every rule needs an `id` made of letters, digits and . _ : / -")
            return
        if rule_id in RESERVED_RULE_IDS:
            self._err((*path, "id"), f"`{rule_id}` is reserved for the engine's own verdicts; "
                      "choose another id")
            return
        enabled = node.get("enabled", True)
        if not isinstance(enabled, bool):
            self._err((*path, "enabled"), "expected true or false")
        if enabled is False:
            if rule_id in self.rules and self.rules[rule_id][1] and not is_default:
                del self.rules[rule_id]
            elif not is_default:
                self._err((*path, "id"), f"no default rule `{rule_id}` to disable")
            self.disabled.add(rule_id)
            return
        category = self._category(node, path)
        priority = self._priority(node.get("priority", 0), (*path, "priority"))
        description = node.get("description", "")
        if not isinstance(description, str):
            self._err((*path, "description"), "expected text")
        self._rule_id = rule_id
        try:
            cond = self._condition(node, path, top=True)
        finally:
            self._rule_id = None
        if len(self.problems) > before or cond is None or category is None:
            return
        rule = Rule(rule_id, category, cond, priority, self._file, self._line(path), description)
        self._add(rule, path, is_default)

    def _add(self, rule: Rule, path: tuple[Any, ...], is_default: bool) -> None:
        old = self.rules.get(rule.id)
        if old is not None and old[1] == is_default:
            self._err((*path, "id"), f"duplicate rule id `{rule.id}` (first defined at "
                      f"{old[0].where})")
            return
        if old is not None:
            del self.rules[rule.id]  # a user rule replaces the default of the same id
        self.rules[rule.id] = (rule, is_default)

    def _category(self, node: CommentedMap, path: tuple[Any, ...]) -> str | None:
        category = node.get("category")
        if category is None:
            self._err(path, "required key `category` is missing")
            return None
        if category != EXCLUDE and category not in self.categories:
            self._err((*path, "category"), self._unknown_category(category))
            return None
        return str(category)

    def _unknown_category(self, name: Any) -> str:
        known = [*self.categories, EXCLUDE]
        guess = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean `{guess[0]}`?" if guess else f" (known: {', '.join(known)})"
        return f"unknown category `{name}`{hint} New categories go in a `categories:` list."

    def _priority(self, value: Any, path: tuple[Any, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self._err(path, "expected a whole number")
            return 0
        if abs(value) > MAX_PRIORITY:
            self._err(path, f"priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
        return value

    def _code_map(self, node: Any, path: tuple[Any, ...], is_default: bool) -> None:
        if not isinstance(node, CommentedMap):
            self._err(path, "a code map is a mapping with upstream and codes")
            return
        for key in node:
            if key not in CODE_MAP_KEYS:
                self._unknown_key((*path, key), key, CODE_MAP_KEYS)
        upstreams = [u for i, u in enumerate(self._list(node.get("upstream"), (*path, "upstream")))
                     if self._text(u, (*path, "upstream", i))]
        if not upstreams:
            self._err(path, "required key `upstream` is missing")
            return
        field_name = node.get("field", "upstream")
        if not isinstance(field_name, str) or not field_name:
            self._err((*path, "field"), "expected a field name such as upstream")
            return
        priority = self._priority(node.get("priority", 0), (*path, "priority"))
        map_id = node.get("id", str(upstreams[0]))
        codes = node.get("codes")
        if not isinstance(codes, CommentedMap) or not codes:
            self._err((*path, "codes"), "expected a mapping of raw code -> category")
            return
        self.fields.add(field_name)
        where = Field(field_name, "in", frozenset(normalise(str(u)) for u in upstreams))
        for code, category in codes.items():
            cpath = (*path, "codes", code)
            if category != EXCLUDE and category not in self.categories:
                self._err(cpath, self._unknown_category(category))
                continue
            cond = self._codes([code], cpath, prefix=False)
            if cond is not None:
                rule = Rule(f"{map_id}:{code}", str(category), All((where, cond)), priority,
                            self._file, self._line(cpath), f"code map for {', '.join(upstreams)}")
                self._add(rule, cpath, is_default)

    # -- result --------------------------------------------------------------------

    def build(self, cache_size: int, version: str) -> RuleSet:
        order = list(self.order or DEFAULT_ORDER)
        order += [c for c in DEFAULT_ORDER if c not in order]
        order += [c for c in self.categories if c not in order and c != UNKNOWN]
        order.append(UNKNOWN)
        literals = tuple(sorted(self.literals, key=self.literals.__getitem__))
        return RuleSet(
            rules=tuple(rule for rule, _ in self.rules.values()),
            literals=literals,
            categories=tuple(order),
            category_order=tuple(order),
            version=version,
            field_names=tuple(sorted(self.fields)),
            cache_size=cache_size,
        )
