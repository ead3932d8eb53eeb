"""Rule files: strict validation with file:line errors, every problem at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchdog.rules import RuleError, load_rules
from watchdog.yamlfile import YamlFileError


def problems_of(tmp_path: Path, text: str, *extra: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path, *extra], use_defaults=False)
    assert isinstance(info.value, YamlFileError)
    return [str(p) for p in info.value.problems]


def test_unknown_key_with_did_you_mean_and_line(tmp_path):
    probs = problems_of(tmp_path, """
        rules:
          - id: a
            category: compliance
            keywords: [x]
          - id: b
            category: compliance
            keyword: [y]
    """)
    assert probs == [f"{tmp_path}/site.yaml:8: rules[1].keyword: unknown key `keyword`; "
                     "did you mean `keywords`?"]


def test_every_problem_is_reported(tmp_path):
    probs = problems_of(tmp_path, """
        rules:
          - id: a
            category: complience
            keywords: [x]
          - id: b
            category: compliance
            regex: ['(?<=a)b']
          - id: c
            category: compliance
            keywords: []
          - id: d
            category: compliance
            priority: high
            keywords: [x]
          - category: compliance
            keywords: [x]
          - id: f
            category: compliance
            fields: {amount: {gt: many}}
          - id: g
            category: compliance
            unless: [x]
    """)
    text = "\n".join(probs)
    assert "site.yaml:4: rules[0].category: unknown category `complience`; did you mean " \
           "`compliance`?" in text
    # A regex problem names the rule too: a pattern is hard to find by line alone.
    assert "site.yaml:8: rule b: rules[1].regex[0]: invalid or unsupported RE2 pattern" in text
    assert "site.yaml:11: rules[2].keywords: needs at least one keyword" in text
    assert "site.yaml:14: rules[3].priority: expected a whole number" in text
    assert "site.yaml:16: rules[4]: every rule needs an `id`" in text
    assert "site.yaml:20: rules[5].fields.amount.gt: expected a number" in text
    assert "site.yaml:21: rules[6]: needs at least one condition" in text
    assert len(probs) == 7


def test_duplicate_ids_are_errors(tmp_path):
    probs = problems_of(tmp_path, """
        rules:
          - {id: a, category: compliance, keywords: [x]}
          - {id: a, category: duplicate, keywords: [y]}
    """)
    assert probs == [f"{tmp_path}/site.yaml:4: rules[1].id: duplicate rule id `a` "
                     f"(first defined at {tmp_path}/site.yaml:3)"]


def test_invalid_yaml_and_missing_file(tmp_path):
    probs = problems_of(tmp_path, "rules:\n  - id: [unclosed\n", str(tmp_path / "nope.yaml"))
    assert any("site.yaml:" in p and "invalid YAML" in p for p in probs)
    assert any(p.startswith(f"{tmp_path}/nope.yaml: no such rule file") for p in probs)


def test_aliases_are_refused(tmp_path):
    probs = problems_of(tmp_path, """
        keyword_sets:
          a: &x [one]
          b: *x
    """)
    assert "aliases" in probs[0]


def test_unknown_keyword_set_and_bad_codes(tmp_path):
    probs = problems_of(tmp_path, """
        keyword_sets:
          outage: [宕机]
        rules:
          - id: a
            category: system_fault
            keywords: ["@outgae"]
          - id: b
            category: system_fault
            codes: ["two words"]
    """)
    assert any("rules[0].keywords[0]: unknown keyword set `@outgae`; did you mean `@outage`?"
               in p for p in probs)
    assert any("rules[1].codes[0]: 'two words' is not a single code token" in p for p in probs)


def test_code_map_errors(tmp_path):
    probs = problems_of(tmp_path, """
        code_maps:
          - upstream: up1
            codes: {E1: no_such_category}
          - codes: {E2: compliance}
    """)
    assert any(":4: code_maps[0].codes.E1: unknown category" in p for p in probs)
    assert any(":5: code_maps[1]: required key `upstream` is missing" in p for p in probs)


def test_category_order_errors(tmp_path):
    probs = problems_of(tmp_path, """
        category_order: [compliance, unknown, compliance, logistcs]
    """)
    assert len(probs) == 3


def test_disable_needs_an_existing_default(tmp_path):
    probs = problems_of(tmp_path, """
        rules:
          - {id: not.there, enabled: false}
    """)
    assert "no default rule `not.there` to disable" in probs[0]


def test_directories_are_loaded(tmp_path):
    (tmp_path / "a.yaml").write_text("rules: [{id: a, category: compliance, keywords: [x]}]\n")
    (tmp_path / "b.yml").write_text("rules: [{id: b, category: duplicate, keywords: [y]}]\n")
    (tmp_path / "notes.txt").write_text("ignored")
    rs = load_rules([tmp_path], use_defaults=False)
    assert [r.id for r in rs.rules] == ["a", "b"]
    assert rs.rules[0].file.endswith("a.yaml") and rs.rules[0].line == 1


def test_defaults_load_clean():
    rs = load_rules()
    assert len(rs.rules) > 30
    assert all(r.file.endswith(".yaml") and r.line for r in rs.rules)
    assert len({r.id for r in rs.rules}) == len(rs.rules)


def test_a_bad_regex_names_its_rule_also_when_nested(tmp_path):
    probs = problems_of(tmp_path, """
        rules:
          - id: ok.one
            category: compliance
            keywords: [x]
          - id: d.bad
            category: system_fault
            all:
              - keywords: [接口]
              - regex: ['超时(?=了)']
    """)
    assert probs == [f"{tmp_path}/site.yaml:10: rule d.bad: rules[1].all[1].regex[0]: invalid "
                     "or unsupported RE2 pattern: invalid perl operator: (?= (RE2 has no "
                     "look-around or back-references)"]
