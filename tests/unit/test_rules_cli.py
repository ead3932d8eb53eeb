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


def lint_file(tmp_path, text: str):
    f = tmp_path / "r.yaml"
    f.write_text(textwrap.dedent(text), encoding="utf-8")
    return f, run("lint", "--no-defaults", "--rules", str(f))


def test_lint_a_rule_whose_keywords_all_contain_a_keyword_of_a_stronger_rule(tmp_path):
    f, r = lint_file(tmp_path, """
        rules:
          - {id: a.one, category: compliance, keywords: [一证五号]}
          - {id: c.sub, category: operator_error, keywords: [一证五号超限]}
    """)
    assert r.exit_code == 2, r.output
    assert f"{f}:4: error: c.sub: can never win: `a.one` (compliance, priority 0, {f}:3)" \
        in r.output
    assert (f"{f}:4: warning: c.sub: keyword '一证五号超限' contains '一证五号' of `a.one` "
            f"(compliance, {f}:3); when both match, `a.one` takes precedence") in r.output


def test_lint_shadowing_by_containment_is_only_reported_when_certain(tmp_path):
    _, r = lint_file(tmp_path, """
        rules:
          # an unless can stop it: b may win
          - {id: a, category: compliance, keywords: [一证五号], unless: [已解除]}
          - {id: b, category: operator_error, keywords: [一证五号超限]}
          # a second condition can stop it
          - {id: c, category: compliance, all: [{keywords: [年龄]}, {keywords: [不符]}]}
          - {id: d, category: operator_error, keywords: [年龄不符]}
          # the stronger-looking rule ranks lower (priority)
          - {id: e, category: compliance, keywords: [黑名单]}
          - {id: f, category: operator_error, priority: 5, keywords: [黑名单用户]}
          # one keyword is not covered
          - {id: g, category: compliance, keywords: [断卡]}
          - {id: h, category: operator_error, keywords: [断卡行动, 证件号错误]}
    """)
    assert "can never win" not in r.output, r.output
    assert r.exit_code == 0, r.output


def test_lint_keywords_covered_by_different_stronger_rules(tmp_path):
    f, r = lint_file(tmp_path, """
        rules:
          - {id: x, category: compliance, keywords: [黑名单]}
          - {id: y, category: system_fault, keywords: [接口超时]}
          - {id: z, category: customer_initiated, any: [{keywords: [黑名单客户]},
                                                        {keywords: [bss接口超时]}]}
          - {id: w, category: customer_initiated, keywords: [接口超时], unless: [客户]}
    """)
    assert r.exit_code == 2, r.output
    assert (f"{f}:5: error: z: can never win: whenever it matches, one of `x` (compliance, "
            f"priority 0, {f}:3), `y` (system_fault, priority 0, {f}:4) matches too") \
        in r.output
    # also with an unless of its own: it cannot match without `接口超时`
    assert f"{f}:7: error: w: can never win: `y`" in r.output


def test_lint_warns_when_a_keyword_contains_another_categorys_keyword(tmp_path):
    f, r = lint_file(tmp_path, """
        rules:
          - {id: net.down, category: system_fault, priority: 20, keywords: [不通]}
          - id: review.rejected
            category: compliance
            all: [{keywords: [审核不通过, 审核未通过]}, {keywords: [风控]}]
          - {id: dup, category: duplicate, all: [{keywords: [重复]}, {keywords: [订单]}]}
          - {id: order, category: customer_initiated, keywords: [重复订单取消]}
    """)
    assert (f"{f}:4: warning: review.rejected: keyword '审核不通过' contains '不通' of "
            f"`net.down` (system_fault, {f}:3); when both match, `net.down` takes "
            "precedence") in r.output
    # `重复` is only one part of `dup`'s condition: no warning for `重复订单取消`
    assert "order:" not in r.output, r.output


def test_lint_reports_load_problems_and_checks_the_rules_that_loaded(tmp_path):
    f, r = lint_file(tmp_path, """
        rules:
          - {id: a, category: compliance, keywords: [x]}
          - {id: a, category: duplicate, keywords: [y]}
          - {id: b, category: duplicate, keywords: [xz]}
    """)
    assert r.exit_code == 2
    assert f"{f}:4: rules[1].id: duplicate rule id `a`" in r.output
    assert f"{f}:5: error: b: can never win: `a`" in r.output
    assert "2 rules loaded (1 load problem(s) left some out)" in r.output
    assert "2 error(s)" in r.output
