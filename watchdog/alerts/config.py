"""Config models for alerting: channels, the route tree, grouping, silences' neighbours.

Mounted on the root config as `alerting:`, `channels:` and `routes:`; every key has a
default, so a config without alerting stays valid (and sends nothing).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..configtypes import Duration, Strict, TimeZoneName

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IM_LIMIT_BYTES = 2048
"""WeCom bots refuse text over 2048 bytes; the tightest of the usual IM limits."""
MAX_MIN_INTERVAL = timedelta(seconds=60)
"""A longer pause between sends would hold a stopping daemon and a row's outbox lease."""


class ChannelOptions(Strict):
    timeout: Duration = Field(default=timedelta(seconds=10),
                              description="Connect and read timeout of one attempt.")
    max_bytes: int = Field(default=IM_LIMIT_BYTES, ge=256, le=1_000_000,
                           description="Longest message body (UTF-8 bytes); longer "
                           "messages are shortened (fewer alerts, contributors, samples).")
    format: Literal["markdown", "text"] = Field(
        default="markdown", description="Body format handed to apprise.")
    min_interval: Duration = Field(
        default=timedelta(0),
        description="Least time from the end of one request to one URL to the start of "
        "the next (at most 60s), for a bot with a rate limit (DingTalk and WeCom allow 20 "
        "messages a minute: 3s). The channel's delivery task waits; other channels do "
        "not. Messages are grouped, so 0 (never wait) suits most bots.")
    endpoint: str | None = Field(
        default=None,
        description="Override the HTTP endpoint of a cloud-only apprise plugin (DingTalk, "
        "WeCom, Feishu), e.g. a forward proxy; `{token}` is replaced by the URL's token.")
    valid_for: Duration = Field(
        default=timedelta(hours=6),
        description="alertmanager sink: endsAt of a firing alert is this far after each "
        "notification, so Alertmanager keeps it firing between our repeats.")

    @field_validator("min_interval")
    @classmethod
    def _bounded_pace(cls, v: timedelta) -> timedelta:
        if v < timedelta(0) or v > MAX_MIN_INTERVAL:
            raise ValueError("must be between 0s and 60s")
        return v


class ChannelConfig(Strict):
    type: Literal["apprise", "webhook", "alertmanager"] = Field(
        default="apprise",
        description="apprise: any apprise URL (mailto, mailtos, dingtalk, wecombot, feishu, "
        "lark, slack, tgram, json, form...). webhook: POST the Alertmanager v4 webhook "
        "payload to each URL. alertmanager: POST to <url>/api/v2/alerts.")
    urls: list[str] = Field(min_length=1, description="One or more URLs; ${VAR} for secrets.")
    language: Literal["zh", "en"] = "zh"
    options: ChannelOptions = Field(default_factory=ChannelOptions)

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class RouteConfig(Strict):
    """A node of the route tree: alerts whose labels match go to `channels`.

    Children are tried first (depth first, in order); the first matching child wins
    unless it sets `continue: true`. A node without a matching child handles the alert
    itself. Timings not set are inherited from the parent (or `alerting:`).
    """

    match: dict[str, str] = Field(default_factory=dict,
                                  description="label -> exact value (all must match).")
    match_re: dict[str, str] = Field(default_factory=dict,
                                     description="label -> regular expression (full match).")
    channels: list[str] = Field(default_factory=list)
    fallback: str | None = Field(
        default=None, description="Channel used when every channel of this route failed.")
    continue_: bool = Field(default=False, alias="continue",
                            description="Keep matching sibling routes after this one.")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    routes: list[RouteConfig] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for key, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{key}: {exc}") from exc
        return v


class InhibitRule(Strict):
    """While an alert matching `source` fires, alerts matching `target` with the same
    values of the `equal` labels are muted (e.g. carrier-wide outage mutes per-product)."""

    source: dict[str, str] = Field(min_length=1)
    target: dict[str, str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)
    target_has: list[str] = Field(
        default_factory=list,
        description="Labels the target must carry (e.g. `product`), so the source alert "
        "does not mute itself.")


class MaintenanceWindow(Strict):
    name: str
    cron: str = Field(description="Start times, cron syntax (5 fields), in `timezone`.")
    duration: Duration
    timezone: TimeZoneName = "Asia/Shanghai"
    categories: list[str] = Field(default_factory=list,
                                  description="Suppress these categories (empty: all).")
    upstreams: list[str] = Field(default_factory=list,
                                 description="Suppress only these upstreams (empty: all).")
    match: dict[str, str] = Field(default_factory=dict, description="Further label matches.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron expression (e.g. '0 2 * * *')")
        return v



class DeliveryConfig(Strict):
    deadline: Duration = Field(default=timedelta(hours=1),
                               description="Give up on a notification this long after queueing.")
    initial_backoff: Duration = Field(default=timedelta(seconds=2))
    max_backoff: Duration = Field(default=timedelta(minutes=2))
    check_interval: Duration = Field(
        default=timedelta(seconds=1), description="How often the outbox is looked at.")


class DigestConfig(Strict):
    enabled: bool = False
    cron: str = Field(default="0 9 * * *", description="When to send (cron, in `timezone`).")
    timezone: TimeZoneName = "Asia/Shanghai"
    channels: list[str] = Field(default_factory=list)
    top: int = Field(default=5, ge=1, le=50, description="Rows per ranking.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return MaintenanceWindow._cron(v)


class LinksConfig(Strict):
    grafana: str | None = Field(default=None, description="Dashboard URL put in every alert.")
    runbook: str | None = Field(default=None, description="Runbook URL; `{category}` expands.")


class AlertingConfig(Strict):
    group_by: list[str] = Field(default_factory=lambda: ["category", "carrier"])
    group_wait: Duration = Field(default=timedelta(seconds=0),
                                 description="Wait this long after a group's first alert "
                                 "for others to join it.")
    group_interval: Duration = Field(default=timedelta(minutes=5),
                                     description="Least time between two notifications of "
                                     "one group about changes.")
    repeat_interval: Duration = Field(default=timedelta(hours=4),
                                      description="Re-send a still-firing group this often.")
    resolve_timeout: Duration = Field(
        default=timedelta(minutes=5),
        description="A firing alert no signal confirmed for this long is resolved.")
    default_channels: list[str] = Field(
        default_factory=list, description="Channels for alerts no route matches.")
    fallback: str | None = Field(default=None,
                                 description="Channel used when every channel of a route failed.")
    inhibit: list[InhibitRule] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    links: LinksConfig = Field(default_factory=LinksConfig)
    external_url: str = Field(default="http://cancel-watchdog",
                              description="externalURL of the webhook payload.")

    @model_validator(mode="after")
    def _labels(self) -> AlertingConfig:
        for name in self.group_by:
            if not LABEL_NAME.match(name):
                raise ValueError(f"group_by: {name!r} is not a label name")
        return self


def channel_problems(alerting: AlertingConfig, channels: dict[str, ChannelConfig],
                     routes: list[RouteConfig]) -> list[str]:
    """Names used by routes/alerting that no channel defines."""
    known = set(channels)
    problems: list[str] = []

    def need(name: str | None, where: str) -> None:
        if name is not None and name not in known:
            hint = f" (defined: {', '.join(sorted(known))})" if known else " (no channels defined)"
            problems.append(f"{where}: unknown channel {name!r}{hint}")

    for name in alerting.default_channels:
        need(name, "alerting.default_channels")
    need(alerting.fallback, "alerting.fallback")
    for name in alerting.digest.channels:
        need(name, "alerting.digest.channels")

    def walk(nodes: list[RouteConfig], path: str) -> None:
        for i, r in enumerate(nodes):
            here = f"{path}.{i}"
            for name in r.channels:
                need(name, f"{here}.channels")
            need(r.fallback, f"{here}.fallback")
            walk(r.routes, f"{here}.routes")

    walk(routes, "routes")
    return problems
