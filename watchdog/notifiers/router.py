"""The route tree: which channels an alert goes to, and with which grouping timings.

Pure: compiled once from the config, then `match(labels)` for every alert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ..alerts.config import AlertingConfig, RouteConfig


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    """Position in the tree ("root", "root.0", "root.0.1"): part of every group key."""
    match: Mapping[str, str]
    match_re: Mapping[str, re.Pattern[str]]
    channels: tuple[str, ...]
    fallback: str | None
    cont: bool
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    children: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match.items()) and all(
            p.fullmatch(labels.get(k, "")) for k, p in self.match_re.items()
        )

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        return {k: labels[k] for k in self.group_by if k in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        body = json.dumps(sorted(self.group_labels(labels).items()), ensure_ascii=False,
                          separators=(",", ":"))
        return f"{self.id}:{body}"


@dataclass(frozen=True, slots=True)
class Routing:
    root: Route
    by_id: Mapping[str, Route]

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Every route that handles `labels` (several with `continue: true`)."""
        found = _walk(self.root, labels)
        return found or [self.root]


def _walk(node: Route, labels: Mapping[str, str]) -> list[Route]:
    out: list[Route] = []
    for child in node.children:
        if not child.matches(labels):
            continue
        out.extend(_walk(child, labels) or [child])
        if not child.cont:
            break
    return out


def compile_routes(alerting: AlertingConfig, routes: Sequence[RouteConfig]) -> Routing:
    by_id: dict[str, Route] = {}

    def build(cfg: RouteConfig | None, parent: Route | None, rid: str) -> Route:
        base = parent
        channels = tuple(cfg.channels) if cfg and cfg.channels else (
            base.channels if base else tuple(alerting.default_channels))
        children_cfg = (cfg.routes if cfg else list(routes))
        node = Route(
            id=rid,
            match=dict(cfg.match) if cfg else {},
            match_re={k: re.compile(v) for k, v in cfg.match_re.items()} if cfg else {},
            channels=channels,
            fallback=(cfg.fallback if cfg and cfg.fallback else
                      base.fallback if base else alerting.fallback),
            cont=bool(cfg and cfg.continue_),
            group_by=tuple(cfg.group_by) if cfg and cfg.group_by is not None else (
                base.group_by if base else tuple(alerting.group_by)),
            group_wait=_pick(cfg, base, alerting, "group_wait"),
            group_interval=_pick(cfg, base, alerting, "group_interval"),
            repeat_interval=_pick(cfg, base, alerting, "repeat_interval"),
        )
        kids = tuple(build(c, node, f"{rid}.{i}") for i, c in enumerate(children_cfg))
        node = Route(**{**{f: getattr(node, f) for f in Route.__slots__}, "children": kids})
        by_id[rid] = node
        return node

    root = build(None, None, "root")
    return Routing(root, by_id)


def _pick(cfg: RouteConfig | None, parent: Route | None, alerting: AlertingConfig,
          name: str) -> timedelta:
    own = getattr(cfg, name) if cfg else None
    if own is not None:
        return own
    return getattr(parent, name) if parent else getattr(alerting, name)
