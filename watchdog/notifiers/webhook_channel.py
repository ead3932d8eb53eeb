"""A webhook channel posting Alertmanager's webhook payload (version 4).

Existing Alertmanager bridges (DingTalk/WeCom relays, ticketing hooks) accept it as is:
status, groupKey, groupLabels, commonLabels, commonAnnotations, externalURL and alerts
with startsAt/endsAt/fingerprint.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from ..alerts.config import ChannelConfig, LinksConfig
from ..alerts.values import FIRING, Alert, Notification, fingerprint
from ..privacy import mask_text, mask_url
from .channel import Deliverable, Digest, TestMessage, UrlResult, http_permanent
from .pacing import Pacer
from .render import category_name

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(t: datetime | None) -> str:
    if t is None:
        return ZERO_TIME
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def annotations(a: Alert, language: str, links: LinksConfig) -> dict[str, str]:
    lang = "zh" if language == "zh" else "en"
    name = category_name(a.labels.get("category", "unknown"), lang)  # type: ignore[arg-type]
    out = {
        "summary": mask_text(a.summary) or f"{name}: {a.observed:g} vs {a.expected:g}",
        "observed": f"{a.observed:g}",
        "expected": f"{a.expected:g}",
        "window_seconds": f"{a.window_seconds:g}",
        "kind": a.kind,
    }
    if a.contributors:
        out["contributors"] = "; ".join(
            f"{c.dimension}={c.value} {c.observed:g} ({c.share_of_excess:.0%})"
            for c in a.contributors[:5])
    if a.samples:
        out["samples"] = " | ".join(mask_text(s)[:200] for s in a.samples[:3])
    if links.runbook:
        out["runbook_url"] = links.runbook.replace("{category}", a.labels.get("category", ""))
    if links.grafana:
        out["dashboard_url"] = links.grafana
    return out


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def alertmanager_payload(n: Notification, receiver: str, language: str, links: LinksConfig,
                         external_url: str) -> dict[str, Any]:
    alerts = []
    for a in n.alerts:
        alerts.append({
            "status": a.status,
            "labels": dict(a.labels),
            "annotations": annotations(a, language, links),
            "startsAt": rfc3339(a.starts_at),
            "endsAt": rfc3339(None if a.firing else a.ends_at),
            "generatorURL": links.grafana or external_url,
            "fingerprint": a.fingerprint,
        })
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": FIRING if n.firing else "resolved",
        "receiver": receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": _common([x["labels"] for x in alerts]),
        "commonAnnotations": _common([x["annotations"] for x in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def test_notification(channel: str, at: datetime) -> Notification:
    labels = {"alertname": "cancel_watchdog_test", "category": "test", "severity": "info"}
    alert = Alert(fingerprint(labels), labels, FIRING, at, None, at, "test",
                  summary="cancel-watchdog test message")
    return Notification("test", 0, channel, "test", FIRING, {"alertname": "cancel_watchdog_test"},
                        (alert,), at)


def post_json(url: str, doc: Any, timeout: float) -> UrlResult:
    """POST one JSON document; HTTP 2xx is success."""
    safe = mask_url(url)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            r = client.post(url, json=doc)
    except httpx.HTTPError as exc:
        return UrlResult(0, safe, False, False, f"{type(exc).__name__}")
    if 200 <= r.status_code < 300:
        return UrlResult(0, safe, True, False, f"HTTP {r.status_code}")
    detail = mask_text(f"HTTP {r.status_code} {r.text[:200]}")
    return UrlResult(0, safe, False, http_permanent(r.status_code), detail)


class JsonPostChannel:
    """A channel that POSTs one JSON document per notification to each of its URLs.

    Alertmanager-shaped receivers understand alerts only: a digest is skipped for them.
    Subclasses say what document to send (`document`) and where (`target`).
    """

    def __init__(self, name: str, cfg: ChannelConfig, links: LinksConfig,
                 external_url: str, pacer: Pacer | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.links = links
        self.external_url = external_url
        self.pacer = pacer or Pacer()

    @property
    def url_count(self) -> int:
        return len(self.cfg.urls)

    def document(self, item: Notification | TestMessage) -> Any:
        raise NotImplementedError

    def target(self, url: str) -> str:
        return url

    def deliver(self, item: Deliverable, indexes: Collection[int] | None = None
                ) -> list[UrlResult]:
        chosen = [(i, u) for i, u in enumerate(self.cfg.urls) if indexes is None or i in indexes]
        if isinstance(item, Digest):
            return [UrlResult(i, mask_url(u), True, False, "skipped: digest") for i, u in chosen]
        doc = self.document(item)
        timeout = self.cfg.options.timeout.total_seconds()
        pace = self.cfg.options.min_interval.total_seconds()
        out = []
        for i, url in chosen:
            with self.pacer.turn(url, pace):
                r = post_json(self.target(url), doc, timeout)
            out.append(UrlResult(i, mask_url(url), r.ok, r.permanent, r.detail))
        return out


class WebhookChannel(JsonPostChannel):
    """The Alertmanager webhook payload (version 4), so existing bridges work."""

    def document(self, item: Notification | TestMessage) -> Any:
        n = test_notification(self.name, item.at) if isinstance(item, TestMessage) else item
        return alertmanager_payload(n, self.name, self.cfg.language, self.links,
                                    self.external_url)
