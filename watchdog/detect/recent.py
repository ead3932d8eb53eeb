"""The raw cancellations of the last hour or so, per category, for drill-down and samples.

Bounded twice: by age (the longest detection window) and by count per category.
Reasons are kept unmasked in memory only; they are masked when a signal quotes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecentEvent:
    minute: int
    dims: tuple[str, ...]
    """Raw values in the detector's dimension order ("" when missing)."""
    reason: str | None
    at: int = 0
    """Epoch second the event is counted at (windows start inside a minute)."""


class Recent:
    def __init__(self, max_per_category: int = 50_000) -> None:
        self.max = max_per_category
        self.by_category: dict[str, deque[RecentEvent]] = {}

    def add(self, category: str, event: RecentEvent) -> None:
        q = self.by_category.get(category)
        if q is None:
            q = self.by_category[category] = deque(maxlen=self.max)
        q.append(event)

    def prune(self, before: int) -> None:
        for q in self.by_category.values():
            while q and q[0].minute < before:
                q.popleft()

    def window(self, category: str, start: int) -> list[RecentEvent]:
        """The events counted at epoch second `start` or later."""
        q = self.by_category.get(category)
        if not q:
            return []
        return [e for e in q if e.at >= start]
