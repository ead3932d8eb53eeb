"""`silence` and `notify test` commands, end to end through click."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.integration.notify_servers import HttpReceiver
from watchdog.cli import main

SECRET, TOKEN = "SECabcdef0123456789abcdef", "0123456789abcdef0123456789abcdef01234567"


def write_config(tmp_path, endpoint: str) -> str:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
source:
  url: sqlite:///{tmp_path}/orders.db
state:
  url: sqlite:///{tmp_path}/state.db
channels:
  oncall:
    urls: ["dingtalk://${{DT_SECRET}}@${{DT_TOKEN}}/"]
    options: {{endpoint: "{endpoint}/robot/send?access_token={{token}}", timeout: 2s}}
routes:
  - match: {{category: system_fault}}
    channels: [oncall]
""", encoding="utf-8")
    return str(cfg)


def test_silence_add_list_expire(tmp_path):
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    run = CliRunner().invoke
    added = run(main, ["silence", "add", "-c", cfg, "--match", "category=system_fault",
                       "--match", "carrier=联通", "--for", "2h", "--comment", "BSS 维护"],
                env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    assert added.exit_code == 0, added.output
    sid = added.stdout.strip()
    listed = run(main, ["silence", "list", "-c", cfg, "--format", "json"],
                 env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    (s,) = json.loads(listed.stdout)
    assert s["id"] == sid and s["matchers"] == ["category=system_fault", "carrier=联通"]
    assert s["active"] and s["comment"] == "BSS 维护"
    expired = run(main, ["silence", "expire", "-c", cfg, sid[:6]],
                  env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    assert expired.exit_code == 0
    listed = run(main, ["silence", "list", "-c", cfg], env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    assert listed.stdout.strip() == "no active silences"
    missing = run(main, ["silence", "expire", "-c", cfg, "nope"],
                  env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    assert missing.exit_code == 1
    bad = run(main, ["silence", "add", "-c", cfg, "--match", "oops", "--comment", "x"],
              env={"DT_SECRET": SECRET, "DT_TOKEN": TOKEN})
    assert bad.exit_code == 2 and "not a matcher" in bad.output


def test_notify_test_prints_per_url_result_without_secrets(tmp_path):
    receiver = HttpReceiver().start()
    try:
        cfg = write_config(tmp_path, receiver.url)
        env = {"DT_SECRET": SECRET, "DT_TOKEN": TOKEN}
        ok = CliRunner().invoke(main, ["notify", "test", "-c", cfg, "oncall"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.startswith("ok") and "dingtalk://" in ok.stdout
        assert SECRET not in ok.output and TOKEN not in ok.output
        assert receiver.count() == 1
        receiver.respond = lambda _: (200, {"errcode": 310000, "errmsg": "sign not match"})
        bad = CliRunner().invoke(main, ["notify", "test", "-c", cfg, "oncall"], env=env)
        assert bad.exit_code == 1 and "310000" in bad.stdout and "REFUSED" in bad.stdout
        assert SECRET not in bad.output and TOKEN not in bad.output
        unknown = CliRunner().invoke(main, ["notify", "test", "-c", cfg, "nope"], env=env)
        assert unknown.exit_code == 2 and "oncall" in unknown.output
    finally:
        receiver.stop()
