"""Value types shared by every config model: durations and the strict base model.

Apart from config.py so that feature modules (alerting) can define their config models
without importing the root config, which mounts them.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import GenerateJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> timedelta:
    """`90`, `"30s"`, `"10m"`, `"2h"`, `"30d"` -> timedelta (bare numbers are seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 2h or 7d")
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 2h or 7d")


def format_duration(td: timedelta) -> str:
    """The shortest form `parse_duration` reads back exactly: `10m`, `4h`, `1500ms`."""
    ms = round(td.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": _DURATION.pattern,
         "description": "A number with a unit: ms, s, m, h, d or w (30s, 10m, 2h, 7d)."},
        {"type": "number", "minimum": 0, "description": "Seconds."},
    ],
}
"""What the loader accepts as a duration (not ISO 8601 `PT10M`, which it refuses)."""

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda td: f"{td.total_seconds():g}s", return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]


class ConfigJsonSchema(GenerateJsonSchema):
    """Defaults in the form the config file takes: durations as `10m`, not `PT10M`."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


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
