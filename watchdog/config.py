"""The configuration file: pydantic models, strict validation, precise errors.

Every model forbids unknown keys; an error names the file, the line and the dotted key,
and for a misspelt key suggests the closest valid one.
"""

from __future__ import annotations

import difflib
import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .alerts.config import AlertingConfig, ChannelConfig, RouteConfig, channel_problems
from .configtypes import (  # noqa: F401 - Duration and parse_duration are re-exported
    ConfigJsonSchema,
    Duration,
    Strict,
    TimeZoneName,
    parse_duration,
)
from .detect.config import DetectConfig
from .yamlfile import Problem, YamlFileError, dotted, interpolate, load_yaml, locate


class DimensionConfig(Strict):
    """An order column used to slice cancellations (carrier, product, distributor...)."""

    column: str = Field(description="Column in the order table (or alias in a custom query).")
    label: bool = Field(
        default=True,
        description="Expose as a label on watchdog_cancellations_total (or, with "
        "`alone`, on its own family). Keep false for high-cardinality columns unless top_k "
        "is small.",
    )
    top_k: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="The first this many distinct values seen get their own metric label "
        "(stored, kept across restarts; not re-ranked by volume, which would churn series); "
        "every other value is reported as `other`.",
    )
    alone: bool = Field(
        default=False,
        description="Exported on its own family, watchdog_cancellations_by_dimension_total"
        "{category, dimension, value} (and watchdog_orders_by_dimension_total{dimension, "
        "value} with count_orders), instead of as a label on watchdog_cancellations_total, "
        "so it multiplies no other label: for dimensions with many values such as product. "
        "Same top_k cap and `other`. Contradicts `label: false` (which keeps the dimension "
        "off the metrics altogether).",
    )

    @field_validator("alone")
    @classmethod
    def _alone_is_exported(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("label") is False:
            raise ValueError("`alone: true` exports the dimension on its own family but "
                             "`label: false` keeps it off the metrics: remove one of them")
        return v


class ColumnsConfig(Strict):
    id: str = Field(default="id", description="Primary key of the order table.")
    status: str = Field(default="status", description="Order status column.")
    changed_at: str = Field(
        default="updated_at",
        description="Change timestamp used as the polling cursor (with id). Needs an index "
        "on (changed_at, id).",
    )
    reason: list[str] = Field(
        default_factory=lambda: ["remark"],
        description="Reason text column(s); the first non-empty one is used.",
    )
    created_at: str | None = Field(
        default=None, description="Order creation timestamp, for counting new orders."
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class SourceConfig(Strict):
    url: str = Field(description="SQLAlchemy URL of the order database (read-only use).")
    table: str | None = Field(default="orders", description="Order table.")
    db_schema: str | None = Field(default=None, alias="schema", description="Schema of the table.")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    cancelled_statuses: list[str] = Field(
        default_factory=lambda: ["已撤单"],
        min_length=1,
        description="Status values that mean the order was cancelled.",
    )
    dimensions: dict[str, DimensionConfig] = Field(
        default_factory=dict, description="Dimension name -> column mapping."
    )
    query: str | None = Field(
        default=None,
        description="Custom SELECT instead of table/columns. It must return the columns "
        "id, status, changed_at, reason and the dimension names, and accept the bind "
        "parameters :since_ts, :since_id and :limit (see README).",
    )
    timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="Zone of naive timestamps in the order database."
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    max_batches_per_poll: int = Field(default=20, ge=1)
    overlap: Duration = Field(
        default=timedelta(minutes=10),
        description="Look-back re-read on every poll so that late commits are not missed.",
    )
    initial_lookback: Duration = Field(
        default=timedelta(days=1),
        description="On the very first poll (no stored cursor), start this far back.",
    )
    statement_timeout: Duration = Field(default=timedelta(seconds=10))
    count_orders: bool = Field(
        default=False, description="Also count newly created orders (needs columns.created_at)."
    )
    count_orders_by: list[str] = Field(
        default_factory=list,
        description="Also count new orders per value of these dimensions (a second grouped "
        "query; needs count_orders), e.g. [distributor]: a dimension with too many values "
        "for metric labels (`label: false`) whose order volume detection needs (the volume "
        "test: one distributor's orders x10).")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceConfig:
        if not self.query and not self.table:
            raise ValueError("set either `table` or `query`")
        if self.count_orders and self.query:
            raise ValueError("count_orders reads the table directly and cannot be combined "
                             "with a custom query; set count_orders: false")
        if self.count_orders and not self.columns.created_at:
            raise ValueError("count_orders needs columns.created_at")
        if self.count_orders_by and not self.count_orders:
            raise ValueError("count_orders_by needs count_orders: true")
        unknown = [d for d in self.count_orders_by if d not in self.dimensions]
        if unknown:
            raise ValueError(f"count_orders_by: {', '.join(unknown)} is not a configured "
                             f"dimension (dimensions: {', '.join(self.dimensions) or 'none'})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StateConfig(Strict):
    url: str = Field(
        default="sqlite:///watchdog-state.db",
        description="SQLAlchemy URL of the state database (SQLite file or PostgreSQL).",
    )
    retention: Duration = Field(
        default=timedelta(days=35),
        description="How long classified cancellations and dedupe keys are kept.",
    )
    lease_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="How often a replica renews or tries to take the leader lease "
        "(PostgreSQL/MySQL state). A standby takes over within two intervals of the "
        "leader's death.",
    )


class PollConfig(Strict):
    interval: Duration = Field(default=timedelta(seconds=30), description="Time between polls.")


class RulesConfig(Strict):
    use_defaults: bool = Field(default=True, description="Load the shipped default rules.")
    paths: list[str] = Field(
        default_factory=list, description="Extra rule files or directories of *.yaml files."
    )


class MetricsConfig(Strict):
    listen: str = Field(
        default="127.0.0.1:9464", description="host:port of /metrics, /healthz and /readyz."
    )
    web_config_file: str | None = Field(
        default=None,
        description="TLS and basic auth, in the Prometheus exporter web config format "
        "(tls_server_config, basic_auth_users with bcrypt hashes); relative to this file.",
    )

    @field_validator("listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        _, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{v!r} is not host:port (e.g. 127.0.0.1:9464)")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise."
    )


class Config(Strict):
    """Root of the cancel-watchdog configuration file."""

    source: SourceConfig
    state: StateConfig = Field(default_factory=StateConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict, description="Notification channels by name (see README).")
    routes: list[RouteConfig] = Field(
        default_factory=list, description="Route tree: which alerts go to which channels.")
    detect: DetectConfig = Field(
        default_factory=DetectConfig,
        description="Spike, step, new-template and silence detection (docs/detection.md).")

    path: Path | None = Field(default=None, exclude=True, description="(set by the loader)")
    _secrets: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _channels_exist(self) -> Config:
        problems = channel_problems(self.alerting, self.channels, self.routes)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secrets(self) -> tuple[str, ...]:
        """Values interpolated from the environment: never to be logged."""
        return self._secrets

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(relative)
        if p.is_absolute() or self.path is None:
            return p
        return self.path.parent / p


class ConfigError(YamlFileError):
    """The configuration cannot be used."""


def load_config(path: str | Path, env: typing.Mapping[str, str] | None = None) -> Config:
    """The validated config, or ConfigError with every problem of the file at once:
    unset `${VAR}`s together with validation problems, in line order."""
    path = Path(path)
    tree, data, used, problems = _read(path, env)
    if data is None:
        raise ConfigError(problems)
    cfg: Config | None = None
    try:
        cfg = Config.model_validate({**data, "path": path})
    except ValidationError as exc:
        unset = {p.key for p in problems}
        # An unset variable reads as "": a complaint about that same value adds nothing.
        problems += [p for p in validation_problems(exc, tree, str(path), Config)
                     if not any(p.key == k or p.key.startswith((f"{k}.", f"{k}[")) for k in unset)]
    if problems or cfg is None:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    cfg._secrets = tuple(sorted(v for v in used if len(v) >= 4))
    return cfg


def _read(path: Path, env: typing.Mapping[str, str] | None
          ) -> tuple[Any, dict[str, Any] | None, set[str], list[Problem]]:
    """Parse and interpolate: (tree, data or None if unusable, values used, problems)."""
    problems: list[Problem] = []
    used: set[str] = set()
    try:
        tree = load_yaml(path)
    except YamlFileError as exc:
        return None, None, used, exc.problems
    data = interpolate(tree, str(path), env, used, problems)
    if not isinstance(data, dict):
        problems.append(Problem(str(path), 1, "", "expected a mapping at the top level"))
        return tree, None, used, problems
    return tree, data, used, problems


def configured_rule_sources(path: str | Path, env: typing.Mapping[str, str] | None = None
                            ) -> tuple[list[Path], bool] | None:
    """The rule files a config names and whether it loads the defaults, from its `rules`
    section alone, so that `check` checks the rule files even when another section is
    invalid. None when the `rules` section itself cannot be read."""
    path = Path(path)
    _, data, _, problems = _read(path, env)
    if data is None:
        return None
    section = data.get("rules") or {}
    if any(p.key == "rules" or p.key.startswith("rules.") for p in problems):
        return None
    try:
        rules = RulesConfig.model_validate(section)
    except ValidationError:
        return None
    files = [p if p.is_absolute() else path.parent / p for p in map(Path, rules.paths)]
    return files, rules.use_defaults


def validation_problems(
    exc: ValidationError, tree: Any, file: str, root_model: type[BaseModel]
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = locate(tree, loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(root_model, loc[:-1])
            guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            msg = "unknown key" + (f"; did you mean `{guess[0]}`?" if guess else "")
            if allowed and not guess:
                msg += f" (valid keys: {', '.join(sorted(allowed))})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        problems.append(Problem(file, line, dotted(loc), msg))
    return problems


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys valid at `loc`, walking model fields (and dict values) from the root."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_key(current, str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items() if name != "path"]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f
    return None


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def config_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True, schema_generator=ConfigJsonSchema)
    schema.get("properties", {}).pop("path", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cancel-watchdog configuration"
    return schema
