"""Rule coverage: how the current rules classify past cancellations, and what they miss.

Pure: records in, a report out. `rules coverage` (cli_coverage.py) feeds it from the
state database or the order database and renders the report as a table or JSON lines.

The report answers an admin's three questions after editing rules:
- what share of cancellations lands in each category (and in `unknown`)?
- what moved compared with the classification recorded at the time (a from -> to list)?
- which unknown reasons are the most frequent, as templates (numbers and personal data
  folded), so the next rule to write is obvious?
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import EXCLUDE, UNKNOWN
from ..privacy import mask_text
from .engine import RuleSet
from .normalise import reason_template

TOP_TEMPLATES = 20


@dataclass(frozen=True, slots=True)
class Record:
    """One past cancellation: its reason, the fields rules may look at, and the category
    recorded when it was first classified (None when nothing was recorded)."""

    reason: str | None
    fields: Mapping[str, str]
    recorded: str | None = None


@dataclass(frozen=True, slots=True)
class CategoryRow:
    category: str
    count: int
    share: float  # of monitored (non-excluded) cancellations; exclude: of all
    recorded: int | None  # how many had this category when recorded


@dataclass(frozen=True, slots=True)
class Change:
    before: str
    after: str
    count: int


@dataclass(frozen=True, slots=True)
class TemplateRow:
    template: str
    count: int
    share: float  # of unknown


@dataclass(frozen=True, slots=True)
class CoverageReport:
    version: str
    total: int
    unknown: int
    categories: tuple[CategoryRow, ...]
    changes: tuple[Change, ...]  # most frequent first
    compared: int  # records that had a recorded category
    templates: tuple[TemplateRow, ...]  # most frequent unknown templates first

    @property
    def changed(self) -> int:
        return sum(c.count for c in self.changes)


def coverage(rules: RuleSet, records: Iterable[Record], top: int = TOP_TEMPLATES) -> CoverageReport:
    """Re-classify every record with `rules` and tally the result."""
    now: Counter[str] = Counter()
    before: Counter[str] = Counter()
    moves: Counter[tuple[str, str]] = Counter()
    templates: Counter[str] = Counter()
    total = compared = 0
    for rec in records:
        total += 1
        category = rules.classify(rec.reason, rec.fields).category
        now[category] += 1
        if rec.recorded is not None:
            compared += 1
            before[rec.recorded] += 1
            if rec.recorded != category:
                moves[(rec.recorded, category)] += 1
        if category == UNKNOWN:
            # Masking first: a template keeps words, and a name is a word.
            templates[reason_template(mask_text(rec.reason or ""))] += 1
    monitored = total - now[EXCLUDE]
    names = [*rules.categories, EXCLUDE]
    names += sorted((set(now) | set(before)) - set(names))  # categories no longer defined
    rows = tuple(
        CategoryRow(name, now[name],
                    now[name] / max(total if name == EXCLUDE else monitored, 1),
                    before[name] if compared else None)
        for name in names if now[name] or before[name] or name != EXCLUDE
    )
    unknown = now[UNKNOWN]
    return CoverageReport(
        version=rules.version,
        total=total,
        unknown=unknown,
        categories=rows,
        changes=tuple(Change(a, b, n) for (a, b), n in _most_common(moves)),
        compared=compared,
        templates=tuple(TemplateRow(t, n, n / max(unknown, 1))
                        for t, n in _most_common(templates)[:top]),
    )


def _most_common(counter: Counter[Any]) -> list[tuple[Any, int]]:
    """By count, then by key: the same data always renders the same way."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def render_table(report: CoverageReport) -> Iterator[str]:
    width = max([len(r.category) for r in report.categories] + [len("category")])
    has_recorded = report.compared > 0
    head = f"{'category'.ljust(width)}  {'count':>8}  {'share':>6}"
    if has_recorded:
        head += f"  {'recorded':>8}  {'change':>7}"
    yield head
    for row in report.categories:
        line = f"{row.category.ljust(width)}  {row.count:>8,}  {row.share:>6.1%}"
        if has_recorded and row.recorded is not None:
            line += f"  {row.recorded:>8,}  {row.count - row.recorded:>+7,}"
        yield line
    yield f"{'total'.ljust(width)}  {report.total:>8,}"
    yield ""
    if not has_recorded:
        yield "changes: no recorded classification to compare with"
    elif not report.changes:
        yield f"changes: none ({report.compared:,} compared)"
    else:
        yield (f"changes: {report.changed:,} of {report.compared:,} "
               f"({report.changed / report.compared:.1%}) classified differently now")
        w = max(len(x) for c in report.changes for x in (c.before, c.after, "recorded")) + 2
        yield f"  {'recorded'.ljust(w)}{'now'.ljust(w)}{'count':>8}"
        for c in report.changes:
            yield f"  {c.before.ljust(w)}{c.after.ljust(w)}{c.count:>8,}"
    yield ""
    if not report.templates:
        yield "unknown reason templates: none"
        return
    yield (f"top unknown reason templates ({len(report.templates)} shown, "
           f"{report.unknown:,} unknown):")
    yield f"  {'count':>8}  {'share':>6}  template"
    for t in report.templates:
        yield f"  {t.count:>8,}  {t.share:>6.1%}  {t.template or '<empty>'}"


def render_jsonl(report: CoverageReport) -> Iterator[str]:
    def line(obj: dict[str, Any]) -> str:
        return json.dumps(obj, ensure_ascii=False)

    yield line({"type": "summary", "rules_version": report.version, "total": report.total,
                "unknown": report.unknown, "compared": report.compared,
                "changed": report.changed})
    for row in report.categories:
        yield line({"type": "category", "category": row.category, "count": row.count,
                    "share": round(row.share, 6), "recorded": row.recorded})
    for c in report.changes:
        yield line({"type": "change", "from": c.before, "to": c.after, "count": c.count})
    for t in report.templates:
        yield line({"type": "unknown_template", "template": t.template, "count": t.count,
                    "share": round(t.share, 6)})

