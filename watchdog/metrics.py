"""Metric definitions.

The registry is passed in (tests build their own). Counters that must survive restarts
exactly (cancellations, exclusions, rule hits, orders, repeats) live in the `Ledger`,
which exports the state database's committed totals on the leading replica.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from . import __version__
from .ledger import Ledger
from .store import CounterKey

CANCELLATIONS = "watchdog_cancellations"
EXCLUDED = "watchdog_excluded_cancellations"
RULE_HITS = "watchdog_rule_hits"
ORDERS = "watchdog_orders"
CANCELLATIONS_BY_DIMENSION = "watchdog_cancellations_by_dimension"
"""The `alone` dimensions, one series per (category, dimension, value); see labels.py."""
ORDERS_BY_DIMENSION = "watchdog_orders_by_dimension"
DUPLICATES = "watchdog_duplicate_rows"

POLL_STAGES = ("source", "classify", "state", "orders")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        dimension_labels: Sequence[str] = (),
        categories: Iterable[str] = (),
        count_orders: bool = False,
        exclude_rules: Iterable[str] = (),
        alone_dimensions: Sequence[str] = (),
    ) -> None:
        self.registry = registry
        dims = list(dimension_labels)
        self.dimension_labels = tuple(dims)
        r = registry
        label_names: dict[str, Sequence[str]] = {
            CANCELLATIONS: ["category", *dims], EXCLUDED: ["rule"], RULE_HITS: ["rule"],
            DUPLICATES: [],
        }
        self.alone_dimensions = tuple(alone_dimensions)
        if self.alone_dimensions:
            label_names[CANCELLATIONS_BY_DIMENSION] = ["category", "dimension", "value"]
        if count_orders:
            label_names[ORDERS] = dims
            if self.alone_dimensions:
                label_names[ORDERS_BY_DIMENSION] = ["dimension", "value"]
        zero = self._zero_series(categories, exclude_rules)
        zero.append((DUPLICATES, ()))
        self.ledger = Ledger(label_names, zero)
        registry.register(self.ledger)
        self.leader = Gauge(
            "watchdog_leader", "1 on the replica that polls and sends; 0 on standbys.",
            registry=r)
        self.source_up = Gauge(
            "watchdog_source_up", "1 when the last poll reached the order database.",
            registry=r)
        self.state_up = Gauge(
            "watchdog_state_up", "1 when the last commit reached the state database.",
            registry=r)
        self.last_success = Gauge(
            "watchdog_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that completed without error.", registry=r)
        self.poll_duration = Histogram(
            "watchdog_poll_duration_seconds", "Wall time of one poll cycle.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.poll_errors = Counter(
            "watchdog_poll_errors", "Failed poll stages.", ["stage"], registry=r)
        self.polls_skipped = Counter(
            "watchdog_polls_skipped",
            "Polls not started because the previous one was still running.", registry=r)
        self.cursor_lag = Gauge(
            "watchdog_cursor_lag_seconds",
            "Now minus the change timestamp of the newest row read.", registry=r)
        self.rows_read = Counter(
            "watchdog_source_rows_read", "Cancelled rows read from the order database "
            "(including re-reads).", registry=r)
        self.rows_skipped = Counter(
            "watchdog_source_rows_skipped", "Cancelled rows skipped because their change "
            "time could not be read (including re-reads; the log names the order ids).",
            registry=r)
        self.rules_info = Gauge(
            "watchdog_rules_info", "The loaded ruleset; value 1, version as label.",
            ["version"], registry=r)
        self.rules_reload_errors = Counter(
            "watchdog_rules_reload_errors", "Rule reloads refused because the new rules "
            "were invalid.", registry=r)
        Info("watchdog_build", "Build information.", registry=r).info(
            {"version": __version__, "python": platform.python_version()})

        for stage in POLL_STAGES:
            self.poll_errors.labels(stage=stage)

    def _zero_series(self, categories: Iterable[str],
                     exclude_rules: Iterable[str]) -> list[CounterKey]:
        blank = tuple((d, "") for d in self.dimension_labels)
        zero = [(CANCELLATIONS, tuple(sorted((("category", c), *blank)))) for c in categories]
        zero += [(EXCLUDED, (("rule", rule),)) for rule in exclude_rules]
        return zero

    def add_zero_series(self, categories: Iterable[str], exclude_rules: Iterable[str]) -> None:
        """Series at 0 for categories and exclude rules that a rules reload brought in,
        like those of the rules at start (a category's rate is 0, not absent)."""
        self.ledger.add_zero_series(self._zero_series(categories, exclude_rules))

    def add(self, counts: Mapping[CounterKey, int]) -> None:
        """Apply counter increments (as committed to the state database)."""
        self.ledger.add(counts)

    def set_rules_version(self, version: str) -> None:
        self.rules_info.clear()
        self.rules_info.labels(version=version).set(1)
