"""A channel of apprise URLs: email, DingTalk, WeCom, Feishu/Lark, Slack, Telegram, json/form.

One plugin instance per URL and delivery, so apprise's per-instance throttle never makes
queued alerts wait for each other (and `min_interval` sets it when a bot needs it).
Responses are read through `http_tap`: a 200 whose body says `errcode`/`code` != 0 is
a failure, classified permanent unless the code means "slow down" or "busy".
"""

from __future__ import annotations

from collections.abc import Collection

import apprise

from ..alerts.config import ChannelConfig
from ..alerts.values import Notification
from ..privacy import mask_text, mask_url
from .channel import Deliverable, Digest, UrlResult, http_permanent
from .http_tap import TapRecord, capture
from .render import Message, Renderer

# Codes that mean "try again later": DingTalk 130101 (too fast), -1 (busy); WeCom 45009
# (frequency limit), 45033, -1.
TRANSIENT_BODY_CODES = frozenset({-1, 130101, 45009, 45033, 11232})

# Cloud-only plugins: the attribute holding their endpoint, and the token attribute.
_ENDPOINT_ATTR = {
    "dingtalk": ("notify_url", "token"),
    "feishu": ("notify_url", "token"),
    "wecombot": ("api_url", "key"),
    "lark": ("webhook_url", "token"),
    "slack": ("webhook_url", None),
    "tgram": ("notify_url", None),
}


class ChannelSetupError(ValueError):
    """A channel URL apprise cannot use."""


class AppriseChannel:
    def __init__(self, name: str, cfg: ChannelConfig, renderer: Renderer) -> None:
        self.name = name
        self.cfg = cfg
        self.renderer = renderer
        for i, url in enumerate(cfg.urls):
            if self._plugin(url) is None:
                raise ChannelSetupError(
                    f"channels.{name}.urls.{i}: apprise cannot use {mask_url(url)}")

    @property
    def url_count(self) -> int:
        return len(self.cfg.urls)

    def message(self, item: Deliverable) -> Message:
        lang, limit = self.cfg.language, self.cfg.options.max_bytes
        if isinstance(item, Notification):
            return self.renderer.alert_message(item, lang, limit)
        if isinstance(item, Digest):
            return self.renderer.digest_message(item.context, lang, limit)
        return self.renderer.test_message(item.channel, lang, item.at)

    def deliver(self, item: Deliverable, indexes: Collection[int] | None = None
                ) -> list[UrlResult]:
        msg = self.message(item)
        return [self._send(i, self.cfg.urls[i], msg)
                for i in range(len(self.cfg.urls)) if indexes is None or i in indexes]

    def _plugin(self, url: str) -> apprise.NotifyBase | None:
        try:
            plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        except Exception:
            return None
        if not plugin:
            return None
        opts = self.cfg.options
        plugin.request_rate_per_sec = opts.min_interval.total_seconds()
        timeout = opts.timeout.total_seconds()
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        if opts.endpoint:
            scheme = url.partition("://")[0].lower()
            attr, token_attr = _ENDPOINT_ATTR.get(scheme, ("notify_url", None))
            # notify_url is formatted with the token at send time; the others are not.
            if token_attr is None or attr == "notify_url":
                setattr(plugin, attr, opts.endpoint)
            else:
                setattr(plugin, attr, opts.endpoint.format(token=getattr(plugin, token_attr)))
        return plugin

    def _send(self, index: int, url: str, msg: Message) -> UrlResult:
        safe = mask_url(url)
        plugin = self._plugin(url)
        if plugin is None:
            return UrlResult(index, safe, False, True, "apprise cannot parse the URL")
        body_format = (apprise.NotifyFormat.MARKDOWN if self.cfg.options.format == "markdown"
                       else apprise.NotifyFormat.TEXT)
        try:
            with capture() as responses:
                ok = plugin.notify(body=msg.body, title=msg.title, body_format=body_format)
        except Exception as exc:  # a plugin bug must not stop the outbox
            return UrlResult(index, safe, False, False, f"{type(exc).__name__}")
        return _judge(index, safe, bool(ok), responses)


def _judge(index: int, safe: str, ok: bool, responses: list[TapRecord]) -> UrlResult:
    for r in responses:
        doc = r.json()
        if not isinstance(doc, dict):
            continue
        code = doc.get("errcode", doc.get("code", 0))
        if isinstance(code, int | str) and str(code) not in ("0", "", "None"):
            msg = doc.get("errmsg", doc.get("msg", ""))
            detail = mask_text(f"HTTP {r.status} errcode={code} {msg}".strip())[:300]
            try:
                transient = int(code) in TRANSIENT_BODY_CODES
            except ValueError:
                transient = False
            return UrlResult(index, safe, False, not transient, detail)
    if ok:
        return UrlResult(index, safe, True, False, f"HTTP {responses[-1].status}"
                         if responses else "sent")
    if responses:
        last = responses[-1]
        detail = mask_text(f"HTTP {last.status} {last.body[:200].decode('utf-8', 'replace')}")
        return UrlResult(index, safe, False, http_permanent(last.status), detail[:300])
    return UrlResult(index, safe, False, False, "no response (connection failed or timed out)")
