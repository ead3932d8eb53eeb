"""Read the HTTP responses apprise's plugins receive, to see failures in 200 bodies.

DingTalk and WeCom bots answer a refused message (bad signature, unknown key, rate
limit) with HTTP 200 and `{"errcode": 310000, ...}`; apprise's plugins for them only look
at the status code and report success. Their `send()` calls `requests.post` and keeps the
response to itself, so the only place to see it is the requests transport: we wrap
`requests.Session.send` once, and it records responses only inside `capture()` (a
context variable), leaving every other use of requests untouched.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

BODY_LIMIT = 4096

_SINK: contextvars.ContextVar[list[TapRecord] | None] = contextvars.ContextVar(
    "watchdog_http_tap", default=None)
_INSTALL = threading.Lock()
_MARK = "_watchdog_http_tap"


@dataclass(frozen=True, slots=True)
class TapRecord:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _install() -> None:
    import requests

    with _INSTALL:
        if getattr(requests.Session.send, _MARK, False):
            return
        original = requests.Session.send

        def send(self: Any, request: Any, **kwargs: Any) -> Any:
            response = original(self, request, **kwargs)
            sink = _SINK.get()
            if sink is not None and not kwargs.get("stream"):
                sink.append(TapRecord(response.status_code, response.content[:BODY_LIMIT]))
            return response

        setattr(send, _MARK, True)
        requests.Session.send = send  # type: ignore[method-assign]


@contextmanager
def capture() -> Iterator[list[TapRecord]]:
    """Responses received by requests in this context (thread/task), in order."""
    _install()
    records: list[TapRecord] = []
    token = _SINK.set(records)
    try:
        yield records
    finally:
        _SINK.reset(token)
