"""One poll: read new cancellations -> classify -> commit state -> update metrics.

The daemon's scheduler and `replay` both call `Pipeline.poll(now)`; the clock is an
argument, so a backtest runs exactly the production code.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
import structlog

from . import order_minutes
from .config import SourceConfig
from .labels import LabelPolicy
from .metrics import (
    CANCELLATIONS,
    CANCELLATIONS_BY_DIMENSION,
    DUPLICATES,
    EXCLUDED,
    ORDERS,
    ORDERS_BY_DIMENSION,
    RULE_HITS,
    Metrics,
)
from .model import UNKNOWN, Cancellation, Classified, Cursor, OrderCount, Verdict
from .privacy import mask_text
from .source import OrderSource, SourceError
from .store import REASON_SAMPLE_CHARS, Batch, CounterKey, StateError, StateStore

log = structlog.get_logger("watchdog.pipeline")

ORDERS_CURSOR = "orders"


class Classifier(Protocol):
    def classify(self, reason: str | None, fields: Mapping[str, str] | None = None) -> Verdict: ...


class PollFailed(Exception):
    """A poll stopped at `stage`; what was committed before stays committed."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"{stage}: {cause}")


@dataclass(frozen=True, slots=True)
class PollReport:
    rows_read: int
    new: int
    duplicates: int
    by_category: Mapping[str, int]
    excluded: int
    pages: int
    caught_up: bool
    cursor: Cursor | None
    fresh: tuple[Classified, ...] = field(default=(), repr=False)
    """The newly counted cancellations of this poll, for detection."""
    orders: tuple[OrderCount, ...] = field(default=(), repr=False)
    orders_since: datetime | None = None
    orders_until: datetime | None = None
    """New orders counted in [orders_since, orders_until) (count_orders only)."""


@dataclass
class _Progress:
    """What one poll has read and counted so far."""

    cursor: Cursor | None
    rows_read: int = 0
    duplicates: int = 0
    pages: int = 0
    excluded: int = 0
    fresh: list[Classified] = field(default_factory=list)
    by_category: Tally[str] = field(default_factory=Tally)

    def add(self, rows: int, fresh: Sequence[Classified], duplicates: int) -> None:
        self.rows_read += rows
        self.duplicates += duplicates
        self.fresh.extend(fresh)
        for c in fresh:
            if c.excluded:
                self.excluded += 1
            else:
                self.by_category[c.category] += 1


@dataclass
class Pipeline:
    source: OrderSource
    store: StateStore
    rules: Classifier
    metrics: Metrics
    labels: LabelPolicy
    cfg: SourceConfig
    _order_until: datetime | None = field(default=None, init=False)

    def poll(self, now: datetime,
             should_stop: Callable[[], bool] | None = None) -> PollReport:
        """Read every new cancellation (up to the per-poll page budget) exactly once.

        Two phases. Forward: strictly after the stored cursor, at most
        `max_batches_per_poll` pages, so a backlog is caught up over several polls.
        Re-read: once caught up, the `overlap` of change time before the cursor is read
        again, because a row committed late carries a timestamp up to `overlap` in the past
        and may already be behind the cursor. Dedupe keys make the re-read count nothing
        twice; it stops at the cursor, so its cost is bounded by the rows in the overlap
        window.

        `should_stop` (the daemon's shutdown request) is asked after every committed
        page: once it answers True the poll ends there, without the re-read and the order
        count, and reports `caught_up` False. Each page commits atomically with the
        cursor, so nothing is lost; the next poll (or the next start) continues from it.
        """
        rules = self.rules  # one ruleset per poll, even if a reload swaps it meanwhile
        stop = should_stop or _never
        stored = self._load_cursor()
        progress = _Progress(cursor=stored)
        start = stored or Cursor(now - self.cfg.initial_lookback, None)
        caught_up = self._read(start, now, progress, rules,
                               budget=self.cfg.max_batches_per_poll, should_stop=stop)
        if stop():
            return self._report(now, progress, caught_up=False)
        if caught_up and stored is not None and progress.cursor is not None:
            # A late row is stamped at most `overlap` before it turns visible, and it
            # turns visible after the poll that moved the cursor past its stamp: so it
            # is stamped after cursor - overlap. (From now - overlap, as before, a quiet
            # spell longer than the overlap skipped rows committed just before it ended.)
            recent = min(now, progress.cursor.changed_at) - self.cfg.overlap
            self._read(Cursor(recent, None), now, progress, rules, until=progress.cursor,
                       rereading=True, should_stop=stop)
            if stop():
                return self._report(now, progress, caught_up=False)
        orders: tuple[tuple[OrderCount, ...], datetime, datetime] | None = None
        if self.cfg.count_orders:
            orders = self._count_orders(now)
        return self._report(now, progress, caught_up, orders)

    def _report(self, now: datetime, progress: _Progress, caught_up: bool,
                orders: tuple[tuple[OrderCount, ...], datetime, datetime] | None = None,
                ) -> PollReport:
        cursor = progress.cursor
        lag = 0.0 if caught_up or cursor is None else (now - cursor.changed_at).total_seconds()
        self.metrics.cursor_lag.set(max(lag, 0.0))
        return PollReport(
            progress.rows_read, len(progress.fresh), progress.duplicates,
            dict(progress.by_category), progress.excluded, progress.pages, caught_up, cursor,
            tuple(progress.fresh), *(orders or ((), None, None)))

    def _read(self, after: Cursor, now: datetime, progress: _Progress, rules: Classifier,
              budget: int | None = None, until: Cursor | None = None,
              rereading: bool = False,
              should_stop: Callable[[], bool] | None = None) -> bool:
        """Read, classify and commit pages from `after`; True when nothing is left.

        Stops after `budget` pages (forward phase), on reaching `until` (re-read), or
        after the page in progress once `should_stop()` is true (then False: more may be
        left). Rows seen again in the forward phase are repeated upstream callbacks and
        are counted as duplicates; in the re-read they are expected and not counted.
        """
        stop = should_stop or _never
        pages = 0
        while (budget is None or pages < budget) and not (pages and stop()):
            skipped = self.source.skipped_rows
            try:
                rows = self.source.fetch_cancellations(after, self.cfg.batch_size)
            except SourceError as exc:
                self._failed("source", exc)
            if self.source.skipped_rows > skipped:
                self.metrics.rows_skipped.inc(self.source.skipped_rows - skipped)
            self.metrics.source_up.set(1)
            pages += 1
            if not rows:
                break
            progress.cursor = _later(progress.cursor, rows[-1].cursor)
            fresh, counts = self._commit([self._classify(c, rules) for c in rows],
                                         progress.cursor, now, not rereading)
            self.metrics.add(counts)
            self.metrics.rows_read.inc(len(rows))
            progress.add(len(rows), fresh, 0 if rereading else len(rows) - len(fresh))
            after = rows[-1].cursor
            if len(rows) < self.cfg.batch_size:
                break
            if until is not None and after.changed_at >= until.changed_at:
                break
        else:
            progress.pages += pages
            return False
        progress.pages += pages
        return True

    def _classify(self, c: Cancellation, rules: Classifier) -> Classified:
        try:
            verdict = rules.classify(c.reason, {**c.dimensions, "status": c.status})
        except Exception as exc:  # a rule bug must not stop counting
            self.metrics.poll_errors.labels(stage="classify").inc()
            log.error("classify_failed", order_id=c.order_id, error=repr(exc))
            verdict = Verdict(UNKNOWN, "error")
        return Classified(c, verdict)

    def _commit(
        self, classified: Sequence[Classified], cursor: Cursor, now: datetime,
        count_duplicates: bool = True,
    ) -> tuple[list[Classified], dict[CounterKey, int]]:
        admitted: list[tuple[str, str]] = []
        alone = self.labels.alone
        try:
            with self.store.transaction() as tx:
                fresh = tx.new_keys(classified, now)
                counts: Tally[CounterKey] = Tally()
                for c in fresh:
                    if c.excluded:
                        counts[(EXCLUDED, (("rule", c.verdict.rule),))] += 1
                        continue
                    dims = c.cancellation.dimensions
                    pairs, new_labels = self.labels.labels_for(dims)
                    admitted.extend(new_labels)
                    counts[(CANCELLATIONS, tuple(sorted((("category", c.category), *pairs))))] += 1
                    counts[(RULE_HITS, (("rule", c.verdict.rule),))] += 1
                    if alone:
                        pairs, new_labels = self.labels.labels_for(dims, alone)
                        admitted.extend(new_labels)
                        for name, value in pairs:  # keys sorted: category, dimension, value
                            counts[(CANCELLATIONS_BY_DIMENSION, (
                                ("category", c.category), ("dimension", name),
                                ("value", value)))] += 1
                if count_duplicates:
                    counts[(DUPLICATES, ())] += len(classified) - len(fresh)
                tx.write(Batch(fresh, cursor, counts, admitted, _samples(fresh)), now)
        except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
            self.labels.forget(admitted)
            self._failed("state", exc)
        self.metrics.state_up.set(1)
        return fresh, dict(counts)

    def _count_orders(
        self, now: datetime
    ) -> tuple[tuple[OrderCount, ...], datetime, datetime] | None:
        """Count orders created since the last count, for cancellation ratios.

        The minutes from `now - overlap` on are counted again on every poll and only
        their growth is credited (see `order_minutes`), so an order committed late is
        counted when it turns visible, once.
        """
        since = self._order_until or self._stored_order_until() or now - self.cfg.overlap
        lo = order_minutes.floor_minute(min(since, now - self.cfg.overlap))
        try:
            counts: Sequence[OrderCount] = self.source.count_new_orders(lo, now)
        except SourceError as exc:
            self.metrics.poll_errors.labels(stage="orders").inc()
            log.warning("order_count_failed", error=str(exc))
            return None
        admitted: list[tuple[str, str]] = []
        try:
            with self.store.transaction(ORDERS_CURSOR) as tx:
                source = self.store.source_name
                credited = order_minutes.load(tx.conn, source, lo)
                if credited is None:
                    # Never saved: a first start (then `since` is `now - overlap`) or
                    # an upgrade from a release that counted [since, now) once: the
                    # minutes before `since` were counted then.
                    counts = [oc for oc in counts if oc.minute is not None
                              and oc.minute >= order_minutes.floor_minute(since)]
                    credited = {}
                fresh, changed = order_minutes.credit(counts, credited)
                deltas = self._order_deltas(fresh, admitted)
                order_minutes.save(tx.conn, source,
                                   order_minutes.floor_minute(now - self.cfg.overlap), changed)
                tx.write(Batch((), Cursor(now, ""), deltas, admitted), now)
        except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
            self.labels.forget(admitted)
            self._failed("state", exc)
        self.metrics.add(deltas)
        self._order_until = now
        return tuple(fresh), lo, now

    def _order_deltas(self, fresh: Sequence[OrderCount],
                      admitted: list[tuple[str, str]]) -> Tally[CounterKey]:
        """Counter increments for newly credited orders; labels admitted on the way are
        appended to `admitted` (forgotten again if the transaction fails)."""
        deltas: Tally[CounterKey] = Tally()
        alone = self.labels.alone
        for oc in fresh:
            if oc.count_by:
                continue  # the same orders grouped for detection (count_orders_by)
            pairs, new_labels = self.labels.labels_for(oc.dimensions)
            admitted.extend(new_labels)
            deltas[(ORDERS, tuple(sorted(pairs)))] += oc.count
            if alone:
                pairs, new_labels = self.labels.labels_for(oc.dimensions, alone)
                admitted.extend(new_labels)
                for name, value in pairs:
                    deltas[(ORDERS_BY_DIMENSION, (("dimension", name), ("value", value)))] \
                        += oc.count
        return deltas

    def _stored_order_until(self) -> datetime | None:
        stored = self._load_cursor(ORDERS_CURSOR)
        return stored.changed_at if stored else None

    def _load_cursor(self, name: str | None = None) -> Cursor | None:
        # A state database that cannot even be read (file system gone read-only, server
        # down) is a failed poll like any other: backed off, counted, reported.
        try:
            return self.store.load_cursor(name)
        except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
            self._failed("state", exc)
            raise  # unreachable: _failed raises

    def _failed(self, stage: str, exc: BaseException) -> None:
        self.metrics.poll_errors.labels(stage=stage).inc()
        if stage == "source":
            self.metrics.source_up.set(0)
        elif stage == "state":
            self.metrics.state_up.set(0)
        raise PollFailed(stage, exc) from exc


def _never() -> bool:
    return False


def _later(a: Cursor | None, b: Cursor) -> Cursor:
    if a is None or b.changed_at > a.changed_at:
        return b
    if b.changed_at == a.changed_at and a.order_id is not None and b.order_id is not None:
        try:
            return b if b.order_id > a.order_id else a
        except TypeError:
            return b
    return a


def _samples(fresh: Sequence[Classified]) -> dict[str, str | None]:
    """The masked, shortened reason per order id, kept for alert samples.

    Masking is the costliest step per row and a page repeats its reason texts many times:
    each distinct text is masked once.
    """
    masked: dict[str | None, str | None] = {None: None}
    out = {}
    for c in fresh:
        reason = c.cancellation.reason
        if reason not in masked:
            masked[reason] = mask_text(reason[:REASON_SAMPLE_CHARS])
        out[c.cancellation.order_id] = masked[reason]
    return out
