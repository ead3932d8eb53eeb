"""structlog set-up: one processor chain and one output for our loggers and the stdlib's.

Every event, ours or from sqlalchemy/apprise/apscheduler, passes ``Redactor`` last before
rendering, so personal data and secrets are masked whatever code produced the event.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from .privacy import mask_text, mask_url

__all__ = ["Redactor", "configure_logging", "get_logger", "redact"]

# Shorter values (a port, "true") would blank out ordinary words all over the logs; config
# interpolation registers values from 4 characters on.
MIN_SECRET_LEN = 4
_MASK = "***"

# A URL ends at whitespace, quotes or the first non-ASCII character (Chinese text
# usually follows without a space).
_URL = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{1,30}+://(?:(?![\"'<>`])[\x21-\x7e])++"
)
# Compared against the key lower-cased with separators dropped, so apiKey, api_key and
# X-Api-Key all match.
_SENSITIVE_KEY = re.compile(
    r"password|passwd|token|secret|apikey|accesskey|privatekey|authorization|credential"
    r"|cookie|signature"
)
_SENSITIVE_KEY_PART = frozenset({"pwd", "pass", "auth", "sign", "dsn"})
_KEY_SEPARATORS = re.compile(r"[_\-.\s]")

# Noisy libraries: the most verbose level each may log at, whatever our level is.
_LIBRARY_FLOORS: Mapping[str, int] = {
    "sqlalchemy": logging.WARNING,
    "apscheduler": logging.INFO,
    # One line per job run (every poll, every delivery check) is noise, not news.
    "apscheduler.executors": logging.WARNING,
    "apprise": logging.INFO,
    "urllib3": logging.WARNING,
    "httpx": logging.WARNING,
    "asyncio": logging.WARNING,
}


def _is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    if _SENSITIVE_KEY.search(_KEY_SEPARATORS.sub("", lowered)):
        return True
    return any(part in _SENSITIVE_KEY_PART for part in _KEY_SEPARATORS.split(lowered))


def _printable(text: str) -> str:
    # Lone surrogates (from broken upstream bytes) would make the stream's UTF-8 encoder
    # raise and lose the whole event.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Redactor:
    """structlog processor masking personal data, URLs and registered secrets.

    Secrets are replaced first (masking could split them and leave a readable part), then
    URLs, then personal data in every string, recursively through containers.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, kept))) if kept else None

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {self.text(k) if isinstance(k, str) else k: self._field(k, v)
                for k, v in event_dict.items()}

    def text(self, value: str) -> str:
        if self._secrets is not None:
            value = self._secrets.sub(_MASK, value)
        if "://" in value:
            value = _URL.sub(lambda m: mask_url(m.group(0)), value)
        return _printable(mask_text(value))

    def _field(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _is_sensitive_key(key) and value not in (None, ""):
            return _MASK
        return self.value(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self.value(k): self._field(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        # Anything else would be rendered with repr() after us, unmasked.
        return self.text(str(value))


redact = Redactor()


def _render_stream(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class _WatchdogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed so a second configure_logging replaces it."""


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Route structlog and stdlib logging through one redacting chain to ``stream``.

    ``fmt`` is ``json`` (one object per line), ``console`` (human-readable) or ``auto``:
    console on a terminal, JSON otherwise. Safe to call again; the last call wins.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and _render_stream(out))

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Processor
    exceptions: Processor
    if console:
        # Plain tracebacks: rich's default shows local variables, which hold order rows.
        exceptions = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(
            colors=_render_stream(out), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        exceptions = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            exceptions,
            Redactor(secrets),
            renderer,
        ],
    )
    handler = _WatchdogHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WatchdogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, floor in _LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(max(numeric, floor))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging (tests, CLI re-config) must reach loggers
        # that modules created at import time.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a stdlib one (``watchdog.pipeline``)."""
    return structlog.stdlib.get_logger(name)
