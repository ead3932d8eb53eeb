"""A sink posting our alerts to a real Alertmanager (`/api/v2/alerts`).

Alertmanager then groups, silences and routes by its own configuration. A firing alert
is sent with endsAt `valid_for` ahead, so it stays firing between our repeat
notifications and expires by itself if we stop; a resolved one with its real end.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..alerts.config import LinksConfig
from ..alerts.values import Notification
from .channel import TestMessage
from .webhook_channel import JsonPostChannel, annotations, rfc3339, test_notification


def v2_alerts(n: Notification, language: str, links: LinksConfig, external_url: str,
              valid_for: timedelta) -> list[dict[str, Any]]:
    out = []
    for a in n.alerts:
        ends = a.ends_at if not a.firing else n.created_at + max(
            valid_for, timedelta(seconds=n.repeat_interval_s) + timedelta(minutes=10))
        out.append({
            "labels": dict(a.labels),
            "annotations": annotations(a, language, links),
            "startsAt": rfc3339(a.starts_at),
            "endsAt": rfc3339(ends),
            "generatorURL": links.grafana or external_url,
        })
    return out


class AlertmanagerSink(JsonPostChannel):
    """POSTs to `<url>/api/v2/alerts` of a real Alertmanager."""

    def document(self, item: Notification | TestMessage) -> Any:
        if isinstance(item, TestMessage):
            n, valid = test_notification(self.name, item.at), timedelta(minutes=5)
        else:
            n, valid = item, self.cfg.options.valid_for
        return v2_alerts(n, self.cfg.language, self.links, self.external_url, valid)

    def target(self, url: str) -> str:
        return url.rstrip("/") + "/api/v2/alerts"
