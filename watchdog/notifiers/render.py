"""Messages from templates: zh (default) or en, short enough for IM limits.

Pure apart from reading the packaged templates once. A message that is too long is
rendered again with fewer alerts, contributors and samples before, as a last resort,
being cut at a character boundary. Everything rendered passes through `mask_text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2

from ..alerts.config import LinksConfig
from ..alerts.values import Alert, Notification
from ..model import CATEGORY_NAMES_ZH
from ..privacy import mask_text

Language = Literal["zh", "en"]
DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")
ELLIPSIS = "…"

# (alerts, contributors per alert, samples per alert, characters per sample), tried in turn.
_DETAIL_LEVELS = ((10, 3, 2, 160), (5, 3, 1, 100), (3, 2, 1, 60), (2, 1, 0, 0), (1, 0, 0, 0))
_SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
_SCOPE_SKIP = {"category", "severity", "alertname"}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str


def category_name(category: str, language: Language) -> str:
    if language == "zh":
        return CATEGORY_NAMES_ZH.get(category, category)
    return category.replace("_", " ")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def cut_to_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary, marked with …."""
    if utf8_len(text) <= limit:
        return text
    room = limit - utf8_len(ELLIPSIS)
    cut = text.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
    return cut + ELLIPSIS


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 or abs(x) >= 100 else f"{x:.1f}"


def _span(seconds: float, language: Language) -> str:
    s = round(seconds)
    if s % 3600 == 0 and s >= 3600:
        return f"{s // 3600} 小时" if language == "zh" else f"{s // 3600}h"
    if s % 60 == 0 and s >= 60:
        return f"{s // 60} 分钟" if language == "zh" else f"{s // 60} min"
    return f"{s} 秒" if language == "zh" else f"{s}s"


def _when(t: datetime | None) -> str:
    return t.astimezone(DISPLAY_ZONE).strftime("%m-%d %H:%M") if t else "-"


class Renderer:
    def __init__(self, links: LinksConfig | None = None) -> None:
        self.links = links or LinksConfig()
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("watchdog.notifiers", "templates"),
            autoescape=False, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined, keep_trailing_newline=False)

    # --- alerts ---------------------------------------------------------------------

    def alert_message(self, n: Notification, language: Language = "zh",
                      max_bytes: int = 2048) -> Message:
        title = mask_text(self.alert_title(n, language))
        body = ""
        for level in _DETAIL_LEVELS:
            body = mask_text(self._alert_body(n, language, *level))
            if utf8_len(title) + 2 + utf8_len(body) <= max_bytes:
                return Message(title, body)
        return Message(cut_to_bytes(title, max_bytes // 4),
                       cut_to_bytes(body, max_bytes - utf8_len(title) - 2))

    def alert_title(self, n: Notification, language: Language) -> str:
        firing, resolved = len(n.firing), len(n.resolved)
        cats = sorted({a.labels.get("category", "unknown") for a in n.alerts})
        what = "、".join(category_name(c, language) for c in cats) if language == "zh" else \
            ", ".join(category_name(c, language) for c in cats)
        scope = " ".join(v for k, v in sorted(n.group_labels.items()) if k != "category")
        if language == "zh":
            state = f"【告警 {firing}】" if firing else "【已恢复】"
            extra = f"（另 {resolved} 条已恢复）" if firing and resolved else ""
            return f"{state}撤单异常：{what}{' · ' + scope if scope else ''}{extra}"
        state = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
        extra = f" ({resolved} resolved)" if firing and resolved else ""
        return f"{state} Cancellations: {what}{' - ' + scope if scope else ''}{extra}"

    def _alert_body(self, n: Notification, language: Language, max_alerts: int,
                    max_contrib: int, max_samples: int, sample_chars: int) -> str:
        shown = sorted(n.alerts, key=lambda a: (not a.firing, -a.observed))[:max_alerts]
        ctx = {
            "alerts": [self._alert_ctx(a, language, max_contrib, max_samples, sample_chars)
                       for a in shown],
            "omitted": len(n.alerts) - len(shown),
            "links": self._links(n, language),
        }
        return self.env.get_template(f"alert.{language}.j2").render(ctx).strip()

    def _alert_ctx(self, a: Alert, language: Language, max_contrib: int, max_samples: int,
                   sample_chars: int) -> dict[str, Any]:
        sev = a.severity
        scope = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in _SCOPE_SKIP)
        ratio = a.observed / a.expected if a.expected > 0 else 0.0
        lasted = ((a.ends_at or a.last_seen) - a.starts_at).total_seconds()
        return {
            "firing": a.firing,
            "category_name": category_name(a.labels.get("category", "unknown"), language),
            "scope": scope,
            "severity": _SEVERITY_ZH.get(sev, sev) if language == "zh" else sev,
            "observed": _num(a.observed),
            "expected": _num(a.expected),
            "ratio": _num(ratio) if ratio >= 1.5 else "",
            "window": _span(a.window_seconds or 300, language),
            "starts": _when(a.starts_at),
            "ends": _when(a.ends_at),
            "lasted": _span(max(60.0, round(lasted / 60) * 60), language),
            "summary": mask_text(a.summary)[:200],
            "contributors": [
                {"dimension": c.dimension, "value": c.value, "observed": _num(c.observed),
                 "share": f"{c.share_of_excess:.0%}"}
                for c in a.contributors[:max_contrib]
            ],
            "samples": [_clip(mask_text(s), sample_chars) for s in a.samples[:max_samples]],
        }

    def _links(self, n: Notification, language: Language) -> list[dict[str, str]]:
        out = []
        if self.links.grafana:
            out.append({"title": "Grafana", "url": self.links.grafana})
        if self.links.runbook:
            cat = next(iter(sorted({a.labels.get("category", "") for a in n.alerts})), "")
            out.append({"title": "处置手册" if language == "zh" else "Runbook",
                        "url": self.links.runbook.replace("{category}", cat)})
        return out

    # --- digest and plain text --------------------------------------------------------

    def digest_message(self, ctx: Mapping[str, Any], language: Language = "zh",
                       max_bytes: int = 2048) -> Message:
        title = (f"撤单日报 {ctx['day']}" if language == "zh"
                 else f"Cancellation digest {ctx['day']}")
        ctx = {**ctx,
               "categories": [{**r, "name": category_name(r["key"], language)}
                              for r in ctx["categories"]],
               "carriers": [{**r, "name": r["key"]} for r in ctx["carriers"]],
               "reasons": [{**r, "name": r["key"]} for r in ctx["reasons"]]}
        body = mask_text(self.env.get_template(f"digest.{language}.j2").render(ctx).strip())
        return Message(title, cut_to_bytes(body, max_bytes - utf8_len(title) - 2))

    @staticmethod
    def test_message(channel: str, language: Language, now: datetime) -> Message:
        if language == "zh":
            return Message("cancel-watchdog 测试消息",
                           f"通道 {channel} 配置正确，这是一条测试消息（{_when(now)}）。")
        return Message("cancel-watchdog test message",
                       f"Channel {channel} works; this is a test message ({_when(now)}).")


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + ELLIPSIS


def format_delta(now: float, before: float) -> str:
    if before == 0:
        return "new" if now else "±0"
    change = (now - before) / before
    return f"{change:+.0%}"


__all__ = ["Message", "Renderer", "cut_to_bytes", "format_delta", "utf8_len"]
