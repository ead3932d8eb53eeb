"""Metric definitions.

The registry is passed in (tests build their own). Counters that must survive restarts
exactly (cancellations, exclusions, rule hits, orders) are mirrored in the state
database's counter table, written in the same transaction as the events, and seeded from
it at start: /metrics then equals the ground truth even after a crash.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from . import __version__
from .store import CounterKey

CANCELLATIONS = "watchdog_cancellations"
EXCLUDED = "watchdog_excluded_cancellations"
RULE_HITS = "watchdog_rule_hits"
ORDERS = "watchdog_orders"
DUPLICATES = "watchdog_duplicate_rows"

POLL_STAGES = ("source", "classify", "state", "orders")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        dimension_labels: Sequence[str] = (),
        categories: Iterable[str] = (),
        count_orders: bool = False,
    ) -> None:
        self.registry = registry
        dims = list(dimension_labels)
        self.dimension_labels = tuple(dims)
        r = registry
        self.cancellations = Counter(
            CANCELLATIONS, "Cancelled orders counted once per (order, status), by category "
            "and dimension.", ["category", *dims], registry=r)
        self.excluded = Counter(
            EXCLUDED, "Cancellations excluded from monitoring (test orders, ops bulk actions).",
            ["rule"], registry=r)
        self.rule_hits = Counter(
            RULE_HITS, "Cancellations by the rule that decided their category.", ["rule"],
            registry=r)
        self.duplicates = Counter(
            DUPLICATES, "Rows skipped because their (order, status) was already counted "
            "(callback retries, look-back overlap).", registry=r)
        self.orders = Counter(
            ORDERS, "Newly created orders, by dimension.", dims, registry=r
        ) if count_orders else None
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
        self.rules_info = Gauge(
            "watchdog_rules_info", "The loaded ruleset; value 1, version as label.",
            ["version"], registry=r)
        self.rules_reload_errors = Counter(
            "watchdog_rules_reload_errors", "Rule reloads refused because the new rules "
            "were invalid.", registry=r)
        Info("watchdog_build", "Build information.", registry=r).info(
            {"version": __version__, "python": platform.python_version()})

        self._by_name: dict[str, Counter | None] = {
            CANCELLATIONS: self.cancellations, EXCLUDED: self.excluded,
            RULE_HITS: self.rule_hits, ORDERS: self.orders, DUPLICATES: self.duplicates,
        }
        for stage in POLL_STAGES:
            self.poll_errors.labels(stage=stage)
        blank = dict.fromkeys(dims, "")
        for category in categories:
            self.cancellations.labels(category=category, **blank)

    def add(self, counts: Mapping[CounterKey, int]) -> None:
        """Apply counter increments (as committed to the state database)."""
        for (name, labels), n in counts.items():
            counter = self._by_name.get(name)
            if counter is None or n <= 0:
                continue
            if labels:
                counter.labels(**dict(labels)).inc(n)
            else:
                counter.inc(n)

    def set_rules_version(self, version: str) -> None:
        self.rules_info.clear()
        self.rules_info.labels(version=version).set(1)
