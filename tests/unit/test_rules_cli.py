from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from watchdog.cli_rules import rules


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(rules, list(args), input=input)


def test_test_shows_normalised_matches_winner_and_masks_personal_data():
    r = run("test", "審核不通過：年齡不符 客户电话13812345678 身份证110101199001011234")
    assert r.exit_code == 0, r.output
    assert "13812345678" not in r.output and "110101199001011234" not in r.output
    assert "138****5678" in r.output
    assert "normalised: 审核不通过:年龄不符" in r.output
    assert "* compliance.age" in r.output
    assert "compliance.yaml:" in r.output
    assert "winner:     compliance.age" in r.output
    assert "category:   compliance" in r.output


def test_test_jsonl_from_stdin():
    r = run("test", "--format", "jsonl", "-", input="客户拒收\nBSS接口超时\n\n电话13812345678\n")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [x["category"] for x in rows] == [
        "customer_initiated", "system_fault", "unknown", "unknown"]
    assert rows[0]["rule"] == "customer_initiated.refused_delivery"
    assert rows[0]["matched"][0] == rows[0]["rule"]
    assert rows[2]["matched"] == []
    assert "13812345678" not in r.output


def test_test_fields_and_extra_rules(tmp_path):
    (tmp_path / "codes.yaml").write_text(textwrap.dedent("""
        code_maps:
          - upstream: 91haoka
            codes: {"-120": operator_error}
    """), encoding="utf-8")
    r = run("test", "--rules", str(tmp_path / "codes.yaml"), "--field", "upstream=91haoka",
            "--format", "jsonl", "--", "-120")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["category"] == "operator_error"
    r = run("test", "--field", "novalue", "x")
    assert r.exit_code == 2


def test_no_defaults():
    r = run("test", "--no-defaults", "--format", "jsonl", "客户拒收")
    assert json.loads(r.output)["category"] == "unknown"


def test_rule_file_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: a\n    category: compliance\n    keyword: [x]\n")
    r = run("test", "--rules", str(bad), "x")
    assert r.exit_code == 2
    assert f"{bad}:4: rules[0].keyword: unknown key `keyword`; did you mean `keywords`?" \
        in r.output
    assert "Traceback" not in r.output


def test_config_supplies_rule_paths(tmp_path):
    (tmp_path / "site.yaml").write_text(
        "rules: [{id: site.x, category: duplicate, keywords: [zzz]}]\n", encoding="utf-8")
    cfg = tmp_path / "watchdog.yaml"
    cfg.write_text("source: {url: 'sqlite://'}\nrules: {paths: [site.yaml], use_defaults: false}\n")
    r = run("test", "-c", str(cfg), "--format", "jsonl", "zzz 客户拒收")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["matched"] == ["site.x"]


def test_lint_defaults_clean():
    r = run("lint")
    assert r.exit_code == 0, r.output
    assert " 0 error(s)" in r.output


def test_lint_errors_and_warnings(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(textwrap.dedent("""
        rules:
          - {id: a, category: compliance, keywords: [x]}
          - {id: b, category: compliance, keywords: [x, y], regex: ["a*"]}
          - {id: c, category: duplicate, keywords: [x]}
          - {id: d, category: duplicate, keywords: [zz]}
          - {id: e, category: system_fault, regex: ['^boom$']}
    """))
    r = run("lint", "--no-defaults", "--rules", str(f))
    assert r.exit_code == 2
    assert f"{f}:4: error: b: regex 'a*' matches the empty string" in r.output
    assert f"{f}:5: error: c: can never win: `a`" in r.output
    assert f"{f}:5: warning: c: keyword 'x' is also used by `a`" in r.output
    assert f"{f}:7: warning: e: regex without keywords runs on every reason" in r.output
    assert "d:" not in r.output


def test_lint_duplicate_ids(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("rules:\n  - {id: a, category: compliance, keywords: [x]}\n"
                 "  - {id: a, category: duplicate, keywords: [y]}\n")
    r = run("lint", "--no-defaults", "--rules", str(f))
    assert r.exit_code == 2
    assert f"{f}:3: rules[1].id: duplicate rule id `a`" in r.output
