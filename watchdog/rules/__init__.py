"""Classifying cancellation reasons: normalisation, the rule engine and rule files.

    rules = load_rules(["site-rules.yaml"])
    verdict = rules.classify("審核不通過：年齡不符")   # Verdict(category="compliance", ...)
"""

from .engine import Explanation, MatchedRule, Rule, RuleSet
from .loader import DEFAULT_DIR, DEFAULT_ORDER, RuleError, load_rules
from .normalise import normalise, reason_template

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_ORDER",
    "Explanation",
    "MatchedRule",
    "Rule",
    "RuleError",
    "RuleSet",
    "load_rules",
    "normalise",
    "reason_template",
]
