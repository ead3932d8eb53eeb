"""Inhibition: a firing source alert mutes matching target alerts.

E.g. a carrier-wide system_fault alert mutes the product-level alerts of that carrier:
the on-call already knows, and twenty product alerts would bury the one that matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .config import InhibitRule
from .values import Alert


def _has(labels: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in want.items())


def inhibited_by(alert: Alert, firing: Iterable[Alert],
                 rules: Iterable[InhibitRule]) -> Alert | None:
    """The firing alert that inhibits `alert`, if any. An alert never inhibits itself."""
    labels = alert.labels
    for rule in rules:
        if not _has(labels, rule.target) or not all(k in labels for k in rule.target_has):
            continue
        for source in firing:
            if source.fingerprint == alert.fingerprint or not source.firing:
                continue
            if not _has(source.labels, rule.source):
                continue
            if all(source.labels.get(k) == labels.get(k) for k in rule.equal):
                return source
    return None
