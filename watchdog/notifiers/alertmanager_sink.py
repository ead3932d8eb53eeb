"""A sink posting our alerts to a real Alertmanager (`/api/v2/alerts`).

Alertmanager then groups, silences and routes by its own configuration. A firing alert
is sent with endsAt `valid_for` ahead, so it stays firing between our repeat
notifications and expires by itself if we stop; a resolved one with its real end.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from ..alerts.config import ChannelConfig, LinksConfig
from ..alerts.values import Notification
from ..privacy import mask_url
from .channel import Deliverable, Digest, TestMessage, UrlResult
from .webhook_channel import annotations, post_json, rfc3339, test_notification


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


class AlertmanagerSink:
    def __init__(self, name: str, cfg: ChannelConfig, links: LinksConfig,
                 external_url: str) -> None:
        self.name = name
        self.cfg = cfg
        self.links = links
        self.external_url = external_url

    @property
    def url_count(self) -> int:
        return len(self.cfg.urls)

    def deliver(self, item: Deliverable, indexes: Collection[int] | None = None
                ) -> list[UrlResult]:
        if isinstance(item, Digest):
            return [UrlResult(i, mask_url(u), True, False, "skipped: digest")
                    for i, u in enumerate(self.cfg.urls) if indexes is None or i in indexes]
        if isinstance(item, TestMessage):
            n = test_notification(self.name, item.at)
            valid: timedelta = timedelta(minutes=5)
        else:
            n, valid = item, self.cfg.options.valid_for
        doc = v2_alerts(n, self.cfg.language, self.links, self.external_url, valid)
        timeout = self.cfg.options.timeout.total_seconds()
        out = []
        for i, url in enumerate(self.cfg.urls):
            if indexes is None or i in indexes:
                r = post_json(url.rstrip("/") + "/api/v2/alerts", doc, timeout)
                out.append(UrlResult(i, mask_url(url), r.ok, r.permanent, r.detail))
        return out
