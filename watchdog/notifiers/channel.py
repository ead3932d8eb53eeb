"""What a channel is: something that delivers an outbox item to its URLs, one result each.

Failures are transient (retried with back-off until the delivery deadline) or permanent
(a 4xx-style refusal: retrying cannot help, so the item fails at once).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..alerts.values import Notification

TRANSIENT_HTTP = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Digest:
    """A daily digest, as template context (JSON-able) and its channels."""

    day: str
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TestMessage:
    __test__ = False  # not a pytest test class

    channel: str
    at: datetime


Deliverable = Notification | Digest | TestMessage


@dataclass(frozen=True, slots=True)
class UrlResult:
    index: int
    url: str
    """Masked: safe to log and print."""
    ok: bool
    permanent: bool = False
    detail: str = ""


def http_permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in TRANSIENT_HTTP


class Channel(Protocol):
    name: str

    def deliver(self, item: Deliverable, indexes: Collection[int] | None = None
                ) -> list[UrlResult]:
        """Send `item` to the URLs at `indexes` (all when None); one result per URL."""
        ...

    @property
    def url_count(self) -> int: ...
