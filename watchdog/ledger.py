"""The counters that must equal the ground truth: a collector over committed totals.

Cancellations, exclusions, rule hits, new orders and skipped repeats are written to the
state database in the same transaction as the events. This collector mirrors those
totals and exports them as Prometheus counters, but only on the replica that leads:

- at takeover it loads the committed totals, so /metrics equals the ground truth even
  after a crash or a failover;
- a standby exports none of them, so summing rates over replicas never counts an
  increment twice, and a replica that regains leadership starts fresh series (rate()
  ignores a series' first sample) instead of jumping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .store import CounterKey

HELP = {
    "watchdog_cancellations": "Cancelled orders counted once per (order, status), by "
    "category and dimension.",
    "watchdog_excluded_cancellations": "Cancellations excluded from monitoring (test orders, "
    "ops bulk actions), by rule.",
    "watchdog_rule_hits": "Cancellations by the rule that decided their category.",
    "watchdog_cancellations_by_dimension": "Cancelled orders counted once per (order, "
    "status), by category and the value of one dimension exported on its own (alone).",
    "watchdog_orders": "Newly created orders, by dimension.",
    "watchdog_orders_by_dimension": "Newly created orders, by the value of one dimension "
    "exported on its own (alone).",
    "watchdog_duplicate_rows": "Rows skipped because their (order, status) was already "
    "counted (repeated upstream callbacks).",
}


class Ledger(Collector):
    def __init__(self, label_names: Mapping[str, Sequence[str]],
                 zero_series: Iterable[CounterKey] = ()) -> None:
        """`label_names`: metric -> its label names; `zero_series` exist at 0 from the start."""
        self._label_names = {name: tuple(labels) for name, labels in label_names.items()}
        self._zero = tuple(zero_series)
        self._values: dict[CounterKey, float] = {}
        self._active = False
        self._lock = threading.Lock()

    def activate(self, totals: Mapping[CounterKey, int]) -> None:
        """Start exporting, from the committed totals (on becoming leader)."""
        with self._lock:
            self._values = dict.fromkeys(self._zero, 0.0)
            for (metric, pairs), value in totals.items():
                labels = self._label_names.get(metric)
                if labels is None:
                    continue
                # Totals committed under another label set (a dimension since added,
                # dropped or moved to its own family) are summed into the series of
                # today's labels: two stored keys must not become two identical series.
                got = dict(pairs)
                key = (metric, tuple(sorted((label, got.get(label, "")) for label in labels)))
                self._values[key] = self._values.get(key, 0.0) + float(value)
            self._active = True

    def add_zero_series(self, keys: Iterable[CounterKey]) -> None:
        """More series that exist at 0: now if exporting, and from every later takeover."""
        with self._lock:
            new = [k for k in keys if k not in self._zero]
            self._zero += tuple(new)
            if self._active:
                for key in new:
                    self._values.setdefault(key, 0.0)

    def deactivate(self) -> None:
        """Stop exporting (on losing leadership)."""
        with self._lock:
            self._active = False
            self._values = {}

    def add(self, counts: Mapping[CounterKey, int]) -> None:
        with self._lock:
            if not self._active:
                return
            for key, n in counts.items():
                if n > 0 and key[0] in self._label_names:
                    self._values[key] = self._values.get(key, 0.0) + n

    def collect(self) -> Iterator[CounterMetricFamily]:
        with self._lock:
            values = dict(self._values) if self._active else {}
        for name, labels in self._label_names.items():
            family = CounterMetricFamily(name, HELP.get(name, name), labels=labels)
            for (metric, pairs), value in values.items():
                if metric == name:
                    got = dict(pairs)
                    family.add_metric([got.get(label, "") for label in labels], value)
            yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        for name, labels in self._label_names.items():
            yield CounterMetricFamily(name, HELP.get(name, name), labels=labels)
