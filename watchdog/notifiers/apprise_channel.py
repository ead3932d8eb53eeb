"""A channel of apprise URLs: email, DingTalk, WeCom, Feishu/Lark, Slack, Telegram, json/form.

One plugin instance per URL and delivery, so apprise's per-instance throttle never makes
queued alerts wait for each other; `options.min_interval` is kept by the `Pacer`
(pacing.py) across sends instead.
Responses are read through `http_tap`. For the services whose APIs report a refusal in
a 200 body (DingTalk and WeCom bots: `errcode`; Feishu/Lark bots: `code`, older hooks
`StatusCode`; 0 means success), such a body is a failure, classified permanent unless
the code means "slow down" or "busy". Every other URL (json://, form://, Slack, ...) is
judged by apprise and the HTTP status alone: a generic receiver's body is its own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import apprise

from ..alerts.config import ChannelConfig
from ..alerts.values import Notification
from ..privacy import mask_text, mask_url
from .channel import Deliverable, Digest, UrlResult, http_permanent
from .http_tap import TapRecord, capture
from .pacing import Pacer
from .render import Message, Renderer


@dataclass(frozen=True, slots=True)
class BodyCheck:
    """How one service's API reports the fate of a message in an HTTP 200 body."""

    codes: tuple[str, ...]
    """Fields holding the result code (each present one is read); 0 means success."""
    messages: tuple[str, ...]
    """Fields holding the explanation."""
    transient: frozenset[int]
    """Codes that mean "try again later"."""


_DINGTALK_WECOM = ("errcode",), ("errmsg",)
_FEISHU_LARK = ("code", "StatusCode"), ("msg", "StatusMessage")
BODY_CHECKS: dict[str, BodyCheck] = {
    # DingTalk robot: 130101 send too fast, -1 system busy.
    "dingtalk": BodyCheck(*_DINGTALK_WECOM, frozenset({-1, 130101})),
    # WeCom group bot: 45009 API frequency limit, 45033 concurrency limit, -1 busy.
    "wecombot": BodyCheck(*_DINGTALK_WECOM, frozenset({-1, 45009, 45033})),
    # Feishu/Lark custom bot: 11232 sending frequency limited.
    "feishu": BodyCheck(*_FEISHU_LARK, frozenset({11232})),
    "lark": BodyCheck(*_FEISHU_LARK, frozenset({11232})),
}
"""Keyed by the apprise plugin's protocol, so a native https:// URL that apprise maps to
one of these plugins (e.g. a WeCom webhook URL) gets its check too."""

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
    def __init__(self, name: str, cfg: ChannelConfig, renderer: Renderer,
                 pacer: Pacer | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.renderer = renderer
        self.pacer = pacer or Pacer()
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
        # Between the requests of one send (e.g. one per Telegram chat); the Pacer keeps
        # the interval between sends, as apprise does not wait before a first request.
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
            with (self.pacer.turn(url, self.cfg.options.min_interval.total_seconds()),
                  capture() as responses):
                ok = plugin.notify(body=msg.body, title=msg.title, body_format=body_format)
        except Exception as exc:  # a plugin bug must not stop the outbox
            return UrlResult(index, safe, False, False, f"{type(exc).__name__}")
        return _judge(index, safe, bool(ok), responses, body_check(plugin))


def body_check(plugin: apprise.NotifyBase) -> BodyCheck | None:
    """The body check of the plugin's service, or None (judged by the HTTP status)."""
    for attr in ("secure_protocol", "protocol"):
        names = getattr(plugin, attr, None)
        for name in (names,) if isinstance(names, str) else (names or ()):
            if name in BODY_CHECKS:
                return BODY_CHECKS[name]
    return None


def _refusal(doc: object, check: BodyCheck) -> tuple[object, str] | None:
    """(code, message) when a response body reports a refusal."""
    if not isinstance(doc, dict):
        return None
    for field in check.codes:
        code = doc.get(field)
        if code is None or code == 0 or (isinstance(code, str) and code.strip() == "0"):
            continue
        msg = next((str(doc[m]) for m in check.messages if doc.get(m)), "")
        return code, msg
    return None


def _first_refusal(responses: list[TapRecord], check: BodyCheck) -> tuple[bool, str] | None:
    """(permanent, detail) of the first response whose body reports a refusal."""
    for r in responses:
        refused = _refusal(r.json(), check)
        if refused is None:
            continue
        code, msg = refused
        try:
            transient = int(str(code)) in check.transient
        except ValueError:
            transient = False
        return not transient, mask_text(f"HTTP {r.status} errcode={code} {msg}".strip())[:300]
    return None


def _judge(index: int, safe: str, ok: bool, responses: list[TapRecord],
           check: BodyCheck | None) -> UrlResult:
    refused = _first_refusal(responses, check) if check is not None else None
    if refused is not None:
        return UrlResult(index, safe, False, refused[0], refused[1])
    if ok:
        return UrlResult(index, safe, True, False, f"HTTP {responses[-1].status}"
                         if responses else "sent")
    if responses:
        last = responses[-1]
        detail = mask_text(f"HTTP {last.status} {last.body[:200].decode('utf-8', 'replace')}")
        return UrlResult(index, safe, False, http_permanent(last.status), detail[:300])
    return UrlResult(index, safe, False, False, "no response (connection failed or timed out)")
