"""Building an Alerting on a temporary state database, and hand-made signals."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from watchdog.config import Config
from watchdog.model import Contributor, Signal
from watchdog.notifiers.worker import Alerting, build_alerting
from watchdog.store import StateStore

FAST_DELIVERY = {"deadline": "60s", "initial_backoff": "0.05s", "max_backoff": "0.2s"}
PHONE, ID_NUMBER = "13812345678", "110101199003071234"


def make_config(state_url: str, channels: dict[str, Any], routes: list[Any] | None = None,
                **alerting: Any) -> Config:
    doc = {
        "source": {"url": "sqlite://"},
        "state": {"url": state_url},
        "channels": channels,
        "routes": routes or [],
        "alerting": {"default_channels": sorted(channels)[:1], "group_wait": "0s",
                     "delivery": FAST_DELIVERY, **alerting},
    }
    return Config.model_validate(doc)


def make_alerting(tmp_path: Path | None, channels: dict[str, Any], *, state_url: str | None = None,
                  routes: list[Any] | None = None,
                  clock: Callable[[], datetime] | None = None, **alerting: Any
                  ) -> tuple[Alerting, StateStore, CollectorRegistry]:
    url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
    cfg = make_config(url, channels, routes, **alerting)
    store = StateStore.open(url)
    registry = CollectorRegistry()
    more = {"clock": clock} if clock else {}
    return (build_alerting(cfg, store.engine, registry, rng=random.Random(1), **more),
            store, registry)


class SimClock:
    """A clock that moves only when told: for retry schedules measured in minutes."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, step: timedelta) -> None:
        self.now += step


def signal(category: str = "system_fault", carrier: str = "中国联通", firing: bool = True,
           at: datetime | None = None, **dims: str) -> Signal:
    return Signal(
        "spike", {"category": category, "carrier": carrier, **dims}, at or datetime.now(UTC),
        firing, 18.0 if firing else 0.2, 0.2, 300, "critical", 9.0,
        (Contributor("upstream", "上游A", 15, 0.1, 0.83),),
        (f"BSS接口超时 客户电话{PHONE} 证件{ID_NUMBER}",), "联通 BSS 接口故障")
