"""Builds the parts a config describes and connects them; no behaviour of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from .config import Config
from .detect.stage import DetectStage, open_stage
from .labels import LabelPolicy
from .metrics import Metrics
from .model import EXCLUDE
from .pipeline import Pipeline
from .rules import RuleSet, load_rules
from .source import OrderSource
from .store import StateStore

if TYPE_CHECKING:
    from .notifiers.worker import Alerting


@dataclass
class Parts:
    cfg: Config
    registry: CollectorRegistry
    metrics: Metrics
    store: StateStore
    source: OrderSource
    pipeline: Pipeline
    alerting: Alerting | None = None
    """Alert lifecycle and delivery (the daemon and `run --once`; not replay)."""
    stage: DetectStage | None = None
    """Detection, opened from the saved state when this replica takes the lead."""

    def take_lead(self, now: datetime) -> None:
        """Become the replica that counts and detects, from the committed state."""
        # A standby's view is as old as its start: take the leader's over.
        self.pipeline.labels.admitted = self.store.admitted_labels()
        self.metrics.ledger.activate(self.store.counters())
        if self.alerting is not None:
            self.stage = open_stage(self.cfg, self.store, now)
        self.metrics.leader.set(1)

    def step_down(self) -> None:
        self.metrics.ledger.deactivate()
        self.stage = None
        self.metrics.leader.set(0)

    def close(self, now: datetime | None = None) -> None:
        """Save the detector state (with `now`), then close everything. Every step runs
        even if one before it raised; the error is raised at the end."""
        with contextlib.ExitStack() as closing:  # callbacks run last-in, first-out
            closing.callback(self.store.close)
            closing.callback(self.source.close)
            if self.alerting is not None:
                closing.callback(self.alerting.close)
            if self.stage is not None and now is not None:
                closing.callback(self.stage.save, now)


def rule_paths(cfg: Config) -> list[Path]:
    return [cfg.resolve(p) for p in cfg.rules.paths]


def load_configured_rules(cfg: Config) -> RuleSet:
    return load_rules(rule_paths(cfg), use_defaults=cfg.rules.use_defaults)


def exclude_rule_ids(rules: RuleSet) -> list[str]:
    """The rules whose outcome is `exclude`: each has its series of excluded cancellations."""
    return [r.id for r in rules.rules if r.category == EXCLUDE]


def assemble(cfg: Config, registry: CollectorRegistry | None = None,
             rules: RuleSet | None = None, *, monitor: bool = False,
             clock: Callable[[], datetime] | None = None) -> Parts:
    """Open the state database, load rules, prepare the source and the metrics.

    The counters start exporting when this replica leads (`Parts.take_lead`). With
    `monitor`, detection and alerting are set up too (channels are checked now: a bad
    apprise URL raises ChannelSetupError).

    Raises RuleError / StateError for problems the user must fix; the order database is
    not contacted here (it may be down at start; the first poll reports that).
    """
    registry = registry or CollectorRegistry()
    rules = rules or load_configured_rules(cfg)
    store = StateStore.open(cfg.state.url, cfg.state.lease_interval)
    labels = LabelPolicy(cfg.source.dimensions, store.admitted_labels())
    metrics = Metrics(registry, labels.names, rules.categories, cfg.source.count_orders,
                      exclude_rule_ids(rules), labels.alone)
    metrics.set_rules_version(rules.version)
    source = OrderSource.from_config(cfg.source)
    pipeline = Pipeline(source, store, rules, metrics, labels, cfg.source)
    parts = Parts(cfg, registry, metrics, store, source, pipeline)
    if monitor:
        from .notifiers.worker import build_alerting

        extra = {"clock": clock} if clock else {}
        parts.alerting = build_alerting(cfg, store.engine, registry, **extra)
    return parts
