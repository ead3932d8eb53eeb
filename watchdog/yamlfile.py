"""Loading YAML with positions, `${VAR}` interpolation and safe limits.

Config and rule files are both edited by people under time pressure, so every error
must point at a file, a line and a key. ruamel.yaml keeps the line of every mapping key
and sequence item; `locate` walks a validation error's path back to that line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """One user-facing problem in a YAML file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class YamlFileError(Exception):
    """A file could not be used; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file into ruamel's position-carrying containers.

    Aliases are refused: config and rules never need them, and refusing them rules out
    "billion laughs" expansion.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlFileError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise YamlFileError([Problem(str(path), None, "", "file is larger than 4 MiB")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlFileError([Problem(str(path), None, "", "file is not valid UTF-8")]) from exc
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        _refuse_aliases(yaml, text, str(path))
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(x for x in (exc.context, exc.problem) if x)
        raise YamlFileError([Problem(str(path), line, "", f"invalid YAML: {msg}")]) from exc
    except YAMLError as exc:
        raise YamlFileError([Problem(str(path), None, "", f"invalid YAML: {exc}")]) from exc


def _refuse_aliases(yaml: YAML, text: str, file: str) -> None:
    from ruamel.yaml.events import AliasEvent

    for event in yaml.parse(text):
        if isinstance(event, AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else None
            raise YamlFileError(
                [Problem(file, line, "", "YAML aliases (*name) are not allowed; repeat the value")]
            )


def interpolate(
    node: Any, file: str, env: Mapping[str, str] | None = None, used: set[str] | None = None,
    problems: list[Problem] | None = None,
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string scalar, keeping positions.

    Returns plain dicts/lists; problems (unset variables without a default) are raised
    together, or, if a `problems` list is given, appended to it (the unset variable then
    reads as an empty string) so that the caller can report them with others. The values
    taken from the environment are added to `used`, so that logging can redact them:
    secrets come in this way.
    """
    env = os.environ if env is None else env
    collect = problems is not None
    problems = problems if problems is not None else []

    def sub(value: str, path: tuple[Any, ...], line: int | None) -> str:
        def one(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                if used is not None:
                    used.add(env[name])
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(file, line, dotted(path), f"environment variable {name} is not set "
                        f"(set it, or write ${{{name}:-default}})")
            )
            return ""

        return _VAR.sub(one, value)

    def walk(n: Any, path: tuple[Any, ...], line: int | None) -> Any:
        if isinstance(n, CommentedMap):
            out = {}
            for k, v in n.items():
                out[str(k)] = walk(v, (*path, str(k)), line_of(n, k) or line)
            return out
        if isinstance(n, CommentedSeq):
            return [walk(v, (*path, i), line_of(n, i) or line) for i, v in enumerate(n)]
        if isinstance(n, str):
            return sub(str(n), path, line)
        return n

    result = walk(node, (), None)
    if problems and not collect:
        raise YamlFileError(problems)
    return result


def line_of(container: Any, key: Any) -> int | None:
    """1-based line of a mapping key or sequence item, if ruamel recorded it."""
    try:
        if isinstance(container, CommentedMap):
            return container.lc.key(key)[0] + 1
        if isinstance(container, CommentedSeq):
            return container.lc.item(key)[0] + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return None


def locate(root: Any, path: Sequence[Any]) -> int | None:
    """Line of the deepest element of `path` that exists in the parsed tree."""
    node, line = root, None
    for part in path:
        in_map = isinstance(node, CommentedMap) and part in node
        in_seq = isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
        if in_map or in_seq:
            line = line_of(node, part) or line
            node = node[part]
        else:
            break
    return line


def dotted(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
