"""SIGHUP reloads channels and routes; a broken edit keeps the running ones."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from watchdog.config import load_config
from watchdog.daemon import reload_channels
from watchdog.wiring import assemble

BASE = """
source: {{url: "sqlite:///{orders}", table: orders}}
state: {{url: "sqlite:///{state}"}}
channels:
{channels}
alerting: {{default_channels: [{default}]}}
"""


def write(path: Path, tmp: Path, channels: str, default: str) -> None:
    path.write_text(BASE.format(orders=tmp / "o.db", state=tmp / "s.db", channels=channels,
                                default=default), encoding="utf-8")


def test_reload_swaps_channels_and_refuses_a_broken_edit(tmp_path):
    cfg_path = tmp_path / "config.yaml"
    write(cfg_path, tmp_path, '  first: {type: webhook, urls: ["http://127.0.0.1:9/a"]}',
          "first")
    parts = assemble(load_config(cfg_path), CollectorRegistry(), monitor=True)
    try:
        assert set(parts.alerting.channels) == {"first"}
        write(cfg_path, tmp_path, '  second: {type: webhook, urls: ["http://127.0.0.1:9/b"]}',
              "second")
        assert reload_channels(parts) is True
        assert set(parts.alerting.channels) == {"second"}
        # A route naming a channel that does not exist: refused, the running set stays.
        write(cfg_path, tmp_path, '  third: {type: webhook, urls: ["http://127.0.0.1:9/c"]}',
              "missing")
        assert reload_channels(parts) is False
        assert set(parts.alerting.channels) == {"second"}
    finally:
        parts.close()
