"""The config file: strict validation with file:line:key errors, interpolation, schema."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from watchdog.config import ConfigError, config_json_schema, load_config, parse_duration
from watchdog.configtypes import DURATION_JSON_SCHEMA
from watchdog.yamlfile import interpolate, load_yaml

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return [str(p) for p in info.value.problems]


def test_example_config_is_valid():
    cfg = load_config(REPO / "config.example.yaml", env={})
    assert cfg.source.table == "orders"
    assert cfg.source.overlap == timedelta(minutes=10)
    assert cfg.source.dimensions["distributor"].label is False
    assert cfg.source.dimensions["product"].alone is True


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    p = write(tmp_path, "source:\n  url: sqlite://\n  tabel: orders\n")
    (msg,) = problems(p)
    assert msg == f"{p}:3: source.tabel: unknown key; did you mean `table`?"


def test_nested_unknown_key_and_bad_value_reported_together(tmp_path):
    p = write(tmp_path, "source:\n  url: sqlite://\n  overlap: 10x\n  dimensions:\n"
              "    carrier: {column: carrier, lable: true}\npoll:\n  interval: soon\n")
    msgs = problems(p)
    assert any(m.startswith(f"{p}:5: source.dimensions.carrier.lable: unknown key; did you mean "
                            "`label`?") for m in msgs)
    assert any(m.startswith(f"{p}:3: source.overlap: '10x' is not a duration") for m in msgs)
    assert any(":7: poll.interval" in m for m in msgs)


def test_missing_required_key(tmp_path):
    p = write(tmp_path, "poll:\n  interval: 30s\n")
    assert problems(p) == [f"{p}: source: required key is missing"]


def test_unset_variable_without_default_is_an_error(tmp_path):
    p = write(tmp_path, "source:\n  url: postgresql://u:${DB_PASS}@h/db\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:2: source.url: environment variable DB_PASS is not set")


def test_unset_variables_and_validation_problems_are_reported_together_by_line(tmp_path):
    p = write(tmp_path, "source:\n  url: postgresql://u:${DB_PASS}@h/db\n  tabel: x\n"
              "poll:\n  interval: ${POLL_EVERY}\n  intervall: 5s\n"
              "state:\n  url: ${STATE_URL}\n")
    assert problems(p) == [
        f"{p}:2: source.url: environment variable DB_PASS is not set (set it, or write "
        "${DB_PASS:-default})",
        f"{p}:3: source.tabel: unknown key; did you mean `table`?",
        # not also "'' is not a duration": the empty value is the unset variable's
        f"{p}:5: poll.interval: environment variable POLL_EVERY is not set (set it, or "
        "write ${POLL_EVERY:-default})",
        f"{p}:6: poll.intervall: unknown key; did you mean `interval`?",
        f"{p}:8: state.url: environment variable STATE_URL is not set (set it, or write "
        "${STATE_URL:-default})",
    ]


def test_interpolation_with_default_and_secret_tracking(tmp_path):
    p = write(tmp_path, "source:\n  url: postgresql://u:${DB_PASS}@h/db\n"
              "state:\n  url: ${STATE_URL:-sqlite:///s.db}\n")
    cfg = load_config(p, env={"DB_PASS": "hunter22"})
    assert cfg.source.url == "postgresql://u:hunter22@h/db"
    assert cfg.state.url == "sqlite:///s.db"
    assert cfg.secrets() == ("hunter22",)


def test_alone_with_label_false_is_refused_at_its_line(tmp_path):
    # label: false keeps a dimension off the metrics, alone: true exports it: which?
    p = write(tmp_path, "source:\n  url: sqlite://\n  dimensions:\n"
              "    carrier: {column: carrier}\n"
              "    product:\n      column: product\n      label: false\n      alone: true\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:8: source.dimensions.product.alone: `alone: true` exports")
    assert "remove one of them" in msg
    cfg = load_config(write(tmp_path, "source:\n  url: sqlite://\n  dimensions:\n"
                            "    product: {column: product, top_k: 50, alone: true}\n"), env={})
    assert cfg.source.dimensions["product"].alone and cfg.source.dimensions["product"].label


def test_invalid_yaml_reports_line(tmp_path):
    p = write(tmp_path, "source:\n  url: [unclosed\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:") and "invalid YAML" in msg


def test_yaml_aliases_are_refused(tmp_path):
    p = write(tmp_path, "x: &a [1, 2]\nsource:\n  url: sqlite://\n  cancelled_statuses: *a\n")
    (msg,) = problems(p)
    assert ":4:" in msg and "aliases" in msg


def test_unknown_time_zone(tmp_path):
    p = write(tmp_path, "source:\n  url: sqlite://\n  timezone: Mars/Olympus\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}:3: source.timezone: unknown time zone")


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("10m", 600), ("2h", 7200), ("7d", 604800), ("1w", 604800), (90, 90),
    ("1.5m", 90), ("500ms", 0.5),
])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["10x", "", "m", True, None, "-5s", -5, float("nan"), "PT10M"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def _duration_defaults(node, path=""):
    """(path, default) of every property whose schema is the duration schema."""
    if isinstance(node, dict):
        if node.get("anyOf") and any(
                isinstance(x, dict) and x.get("anyOf") == DURATION_JSON_SCHEMA["anyOf"]
                for x in [node, *node["anyOf"]]) and "default" in node:
            yield path, node["default"]
        for key, value in node.items():
            yield from _duration_defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _duration_defaults(value, f"{path}/{i}")


def test_json_schema_durations_are_what_the_loader_accepts():
    schema = config_json_schema()
    text = json.dumps(schema)
    assert '"PT' not in text and '"format": "duration"' not in text
    defaults = dict(_duration_defaults(schema))
    assert defaults["/$defs/SourceConfig/properties/overlap"] == "10m"
    assert defaults["/$defs/PollConfig/properties/interval"] == "30s"
    assert len(defaults) > 20
    for path, value in defaults.items():
        if value is not None:
            parse_duration(value)  # raises if the loader would refuse it
            assert isinstance(value, str), path
    validator = jsonschema.Draft202012Validator(
        {**schema["$defs"]["PollConfig"], "$defs": schema["$defs"]})
    for ok in ("10m", "30s", 90, 0.5, "1.5h", "500ms"):
        assert validator.is_valid({"interval": ok}), ok
        parse_duration(ok)
    for bad in ("PT10M", "10x", -5, "soon", True):
        assert not validator.is_valid({"interval": bad}), bad
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_example_config_validates_against_the_emitted_schema():
    tree = load_yaml(REPO / "config.example.yaml")
    data = interpolate(tree, "config.example.yaml", env={})  # ${VAR:-default}s -> defaults
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    # and it is not a schema that accepts anything
    assert not jsonschema.Draft202012Validator(schema).is_valid(
        {**data, "poll": {"interval": "PT10M"}})
    assert not jsonschema.Draft202012Validator(schema).is_valid({**data, "pol": {}})


def test_json_schema_describes_the_config():
    schema = config_json_schema()
    text = json.dumps(schema)
    assert schema["properties"]["source"]
    assert "path" not in schema["properties"]
    assert "cancelled_statuses" in text and "additionalProperties" in text
