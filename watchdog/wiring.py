"""Builds the parts a config describes and connects them; no behaviour of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from .config import Config
from .labels import LabelPolicy
from .metrics import Metrics
from .model import EXCLUDE
from .pipeline import Pipeline
from .rules import RuleSet, load_rules
from .source import OrderSource
from .store import StateStore


@dataclass
class Parts:
    cfg: Config
    registry: CollectorRegistry
    metrics: Metrics
    store: StateStore
    source: OrderSource
    pipeline: Pipeline

    def take_lead(self) -> None:
        """Become the replica that counts: export the committed totals from now on."""
        self.metrics.ledger.activate(self.store.counters())
        self.metrics.leader.set(1)

    def step_down(self) -> None:
        self.metrics.ledger.deactivate()
        self.metrics.leader.set(0)

    def close(self) -> None:
        self.source.close()
        self.store.close()


def rule_paths(cfg: Config) -> list[Path]:
    return [cfg.resolve(p) for p in cfg.rules.paths]


def load_configured_rules(cfg: Config) -> RuleSet:
    return load_rules(rule_paths(cfg), use_defaults=cfg.rules.use_defaults)


def assemble(cfg: Config, registry: CollectorRegistry | None = None,
             rules: RuleSet | None = None) -> Parts:
    """Open the state database, load rules, prepare the source and the metrics.

    The counters start exporting when this replica leads (`Parts.take_lead`).

    Raises RuleError / StateError for problems the user must fix; the order database is
    not contacted here (it may be down at start; the first poll reports that).
    """
    registry = registry or CollectorRegistry()
    rules = rules or load_configured_rules(cfg)
    store = StateStore.open(cfg.state.url)
    labels = LabelPolicy(cfg.source.dimensions, store.admitted_labels())
    excludes = [r.id for r in rules.rules if r.category == EXCLUDE]
    metrics = Metrics(registry, labels.names, rules.categories, cfg.source.count_orders,
                      excludes)
    metrics.set_rules_version(rules.version)
    source = OrderSource.from_config(cfg.source)
    pipeline = Pipeline(source, store, rules, metrics, labels, cfg.source)
    return Parts(cfg, registry, metrics, store, source, pipeline)
