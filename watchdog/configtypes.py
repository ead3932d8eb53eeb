"""Value types shared by every config model: durations and the strict base model.

Apart from config.py so that feature modules (alerting) can define their config models
without importing the root config, which mounts them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> timedelta:
    """`90`, `"30s"`, `"10m"`, `"2h"`, `"30d"` -> timedelta (bare numbers are seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 2h or 7d")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda td: f"{td.total_seconds():g}s", return_type=str),
    Field(json_schema_extra={"type": "string", "pattern": _DURATION.pattern}),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)"
        ) from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(check_zone)]
"""An IANA time zone name, checked when the config is loaded."""
