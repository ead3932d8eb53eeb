"""Metrics of alerting and delivery, registered on the registry passed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RESULTS = ("delivered", "retry", "failed")
ALERT_STATES = ("firing", "resolved", "suppressed")


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry, channels: Iterable[str] = ()) -> None:
        r = registry
        self.notifications = Counter(
            "watchdog_notifications", "Delivery attempts of queued notifications, by channel "
            "and result (delivered, retry, failed).", ["channel", "result"], registry=r)
        self.latency = Histogram(
            "watchdog_notification_latency_seconds",
            "Time from queueing a notification to its delivery.", ["channel"], registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
        self.outbox_pending = Gauge(
            "watchdog_outbox_pending", "Notifications queued and not yet delivered or failed.",
            registry=r)
        self.alerts = Gauge(
            "watchdog_alerts", "Alerts by state (suppressed: firing but silenced, inhibited "
            "or in a maintenance window).", ["state"], registry=r)
        for ch in channels:
            for res in RESULTS:
                self.notifications.labels(channel=ch, result=res)
        for st in ALERT_STATES:
            self.alerts.labels(state=st)

    def set_alerts(self, counts: Mapping[str, int]) -> None:
        for st in ALERT_STATES:
            self.alerts.labels(state=st).set(counts.get(st, 0))
