"""Entry points the daemon schedules: evaluate signals, deliver the outbox, send digests.

    alerting = build_alerting(cfg, store.engine, registry)
    alerting.evaluate(signals, now)   # after every detection (or with [] on a timer)
    alerting.deliver_pending()        # every alerting.delivery.check_interval
    alerting.send_digest(now)         # every minute; sends once per day per channel
    alerting.close()

`evaluate` is the functional core wrapped in one transaction: load state, apply signals,
flush due groups, save state and queue notifications together. Delivery runs one task
per channel, so a slow or failing channel never delays another.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from ..alerts.lifecycle import Mutes, apply_signals, flush, forget_failed, mutes_for
from ..alerts.state import load_silences, load_state, locked, save_state
from ..alerts.values import Notification
from ..config import Config
from ..model import Signal
from .channel import Channel, Digest, UrlResult
from .metrics import NotifierMetrics
from .outbox import DELIVERED, FAILED, PENDING, Outbox, OutboxRow, enqueue, notification_rows
from .pacing import Pacer
from .render import Renderer
from .router import Routing, compile_routes

log = structlog.get_logger("watchdog.notifiers")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Attempt:
    row_id: int
    channel: str
    result: str
    """delivered, retry or failed."""
    urls: tuple[UrlResult, ...]


@dataclass
class Alerting:
    cfg: Config
    engine: Engine
    routing: Routing
    channels: Mapping[str, Channel]
    metrics: NotifierMetrics
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    pacer: Pacer = field(default_factory=Pacer)
    """Remembers each URL's last request for `min_interval`, across reloads."""
    outbox: Outbox = field(init=False)
    _pool: ThreadPoolExecutor = field(init=False, repr=False)
    _inflight: dict[str, Future[list[Attempt]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.engine)
        self._pool = _worker_pool(len(self.channels))

    def reconfigure(self, cfg: Config) -> None:
        """Take new channels, routes and alerting settings (SIGHUP).

        Raises ChannelSetupError (or a config error) before changing anything, so a bad
        edit leaves the running channels in place.

        New tasks go to a fresh pool with one worker per channel of the new config; tasks
        still running (a hanging channel, one just removed) finish in the old pool, whose
        threads then end. As a channel has at most one task at a time, no channel ever
        waits for another's worker.
        """
        channels = build_channels(cfg, self.pacer)
        routing = compile_routes(cfg.alerting, cfg.routes)
        with self._lock:
            self.cfg, self.channels, self.routing = cfg, channels, routing
            retired, self._pool = self._pool, _worker_pool(len(channels))
        retired.shutdown(wait=False)  # lets its running tasks finish

    # --- lifecycle ---------------------------------------------------------------------

    def evaluate(self, signals: Iterable[Signal], now: datetime | None = None,
                 deliver: bool = True) -> list[Notification]:
        """Apply one evaluation's signals, flush due groups, queue their notifications.

        With `deliver`, delivery of what was queued starts at once in the background.
        """
        now = now or self.clock()
        a = self.cfg.alerting
        with locked(self.engine) as conn:
            old = load_state(conn)
            mutes = Mutes(load_silences(conn, now), a.inhibit, a.maintenance)
            alerts = apply_signals(old.alerts, signals, now, a.resolve_timeout)
            new, notes = flush(replace(old, alerts=alerts), self.routing, mutes, now)
            save_state(conn, old, new)
            enqueue(conn, notification_rows(notes), now, a.delivery.deadline)
        muted = mutes_for(new.alerts, mutes, now)
        firing = sum(1 for x in new.alerts.values() if x.firing)
        self.metrics.set_alerts({"firing": firing - len(muted), "suppressed": len(muted),
                                 "resolved": len(new.alerts) - firing})
        if notes:
            log.info("alerts_queued", notifications=len(notes),
                     groups=len({n.group_key for n in notes}))
            self._pending_gauge()
            if deliver:
                self.deliver_pending(wait_for=False)
        return notes

    # --- delivery ----------------------------------------------------------------------

    def deliver_pending(self, wait_for: bool = True,
                        timeout: float | None = None) -> list[Attempt]:
        """Start a delivery task for each channel with due rows that has none running.

        With `wait_for`, wait for the tasks (those already running included), at most
        `timeout` seconds, and return the attempts of those that finished; otherwise
        return at once.
        """
        due = self.outbox.due(self.clock())
        futures: list[Future[list[Attempt]]] = []
        with self._lock:
            for channel in set(due) | (set(self._inflight) if wait_for else set()):
                running = self._inflight.get(channel)
                if running is not None and not running.done():
                    futures.append(running)
                    continue
                if channel not in due:
                    continue
                fut = self._pool.submit(self._drain, channel)
                self._inflight[channel] = fut
                futures.append(fut)
        if not wait_for:
            return []
        done, _ = wait(futures, timeout=timeout)
        return [a for f in futures if f in done for a in f.result()]

    def _drain(self, channel_name: str) -> list[Attempt]:
        """Deliver one channel's due rows in order; stop at the first that must wait."""
        attempts: list[Attempt] = []
        try:
            rows = self.outbox.due(self.clock()).get(channel_name, [])
            for row in rows:
                if self._closing.is_set():
                    break  # shutting down: the rest stays pending for the next leader
                attempt = self._attempt(row)
                if attempt is None:
                    continue
                attempts.append(attempt)
                if attempt.result == "retry":
                    break  # keep the channel's order: later rows wait behind this one
        except Exception as exc:  # keep the pool alive; the next pass retries
            log.error("delivery_failed", channel=channel_name, error=repr(exc)[:300])
        finally:
            self._pending_gauge()
        return attempts

    def _attempt(self, row: OutboxRow) -> Attempt | None:
        channel = self.channels.get(row.channel)
        now = self.clock()
        if channel is None:
            self.outbox.finish(row.id, FAILED, now, row.done_urls,
                               f"channel {row.channel!r} is no longer configured")
            return Attempt(row.id, row.channel, "failed", ())
        opts = getattr(channel, "cfg", None)
        timeout = opts.options.timeout if opts is not None else timedelta(seconds=10)
        pace = opts.options.min_interval if opts is not None else timedelta(0)
        # each URL may wait min_interval for its turn, then take up to the timeout
        lease = (timeout + pace) * max(1, channel.url_count) + timedelta(seconds=30)
        if not self.outbox.claim(row.id, now, lease):
            return None
        if now >= row.deadline_at:
            return self._failed(row, row.done_urls, "delivery deadline passed", ())
        todo = [i for i in range(channel.url_count) if i not in row.done_urls]
        results = tuple(channel.deliver(row.item, todo))
        done = set(row.done_urls) | {r.index for r in results if r.ok}
        failed = [r for r in results if not r.ok]
        now = self.clock()
        error = "; ".join(f"{r.url}: {r.detail}" for r in failed)[:1000] or None
        if not failed or (done and all(r.permanent for r in failed)):
            self.outbox.finish(row.id, DELIVERED, now, done, error)
            self.metrics.notifications.labels(channel=row.channel, result="delivered").inc()
            self.metrics.latency.labels(channel=row.channel).observe(
                max(0.0, (now - row.created_at).total_seconds()))
            log.info("notification_delivered", channel=row.channel, outbox_id=row.id,
                     attempts=row.attempts + 1, partial_error=error)
            return Attempt(row.id, row.channel, "delivered", results)
        if all(r.permanent for r in failed):
            return self._failed(row, done, error or "refused", results)
        delay = self._backoff(row.attempts + 1)
        if now + delay >= row.deadline_at:
            return self._failed(row, done, f"deadline: {error}", results)
        self.outbox.finish(row.id, PENDING, now, done, error, now + delay)
        self.metrics.notifications.labels(channel=row.channel, result="retry").inc()
        log.warning("notification_retry", channel=row.channel, outbox_id=row.id,
                    attempt=row.attempts + 1, retry_in_s=round(delay.total_seconds(), 2),
                    error=error)
        return Attempt(row.id, row.channel, "retry", results)

    def _backoff(self, attempt: int) -> timedelta:
        d = self.cfg.alerting.delivery
        base = min(d.initial_backoff * 2 ** min(attempt - 1, 30), d.max_backoff)
        # Jitter spreads the retries of many queued items (and replicas) apart.
        return base * self.rng.uniform(0.5, 1.0)

    def _failed(self, row: OutboxRow, done: Iterable[int], error: str,
                results: Sequence[UrlResult]) -> Attempt:
        now = self.clock()
        self.outbox.finish(row.id, FAILED, now, done, error)
        self.metrics.notifications.labels(channel=row.channel, result="failed").inc()
        log.error("notification_failed", channel=row.channel, outbox_id=row.id, error=error)
        if isinstance(row.item, Notification) and not row.flush_key.startswith("fallback:"):
            n = row.item
            with locked(self.engine) as conn:
                old = load_state(conn)
                new = forget_failed(old, n.group_key, row.channel,
                                    [x.fingerprint for x in n.firing])
                save_state(conn, old, new)
                self._maybe_fallback(conn, row, now)
        return Attempt(row.id, row.channel, "failed", tuple(results))

    def _maybe_fallback(self, conn: sa.Connection, row: OutboxRow, now: datetime) -> None:
        fallback = row.fallback
        if not fallback or fallback not in self.channels:
            return
        siblings = self.outbox.siblings(row.flush_key)
        others = [s for ch, s, _ in siblings if ch != row.channel]
        if any(s != FAILED for s in others) or any(ch == fallback for ch, _, _ in siblings):
            return
        assert isinstance(row.item, Notification)
        item = replace(row.item, channel=fallback, fallback=None)
        try:
            with conn.begin_nested():
                enqueue(conn, [(f"fallback:{row.flush_key}:{fallback}",
                                f"fallback:{row.flush_key}", item, None)],
                        now, self.cfg.alerting.delivery.deadline)
        except sa.exc.IntegrityError:
            return  # another worker queued it
        log.warning("notification_fallback", channel=fallback, failed_channel=row.channel)

    def _pending_gauge(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError):  # a gauge is not worth a crash
            self.metrics.outbox_pending.set(self.outbox.pending_count())

    # --- digest ------------------------------------------------------------------------

    def send_digest(self, now: datetime | None = None) -> bool:
        """Queue yesterday's digest if its cron time passed within the last hour."""
        from .digest import digest_due, queue_digest

        now = now or self.clock()
        dc = self.cfg.alerting.digest
        if not dc.enabled or not dc.channels:
            return False
        day = digest_due(dc, now)
        if day is None:
            return False
        queued = queue_digest(self.engine, dc, day, now, self.cfg.alerting.delivery.deadline)
        if queued:
            self._pending_gauge()
            self.deliver_pending(wait_for=False)
        return queued > 0

    def finish(self, within: float) -> None:
        """At shutdown: one last delivery of what is due, waited for at most `within`
        seconds; deliveries still running then stop after the row they are sending
        (`close` waits for that). Rows not sent stay in the outbox for the next leader."""
        try:
            self.deliver_pending(wait_for=True, timeout=within)
        finally:
            self._closing.set()

    def close(self) -> None:
        """Wait for the running deliveries (those of pools retired by `reconfigure` too)."""
        self._closing.set()
        with self._lock:
            running = list(self._inflight.values())
        self._pool.shutdown(wait=True)
        wait(running)


def _worker_pool(channels: int) -> ThreadPoolExecutor:
    """One worker per channel: a channel runs one delivery task at a time."""
    return ThreadPoolExecutor(max_workers=max(1, channels), thread_name_prefix="notify")


def build_channels(cfg: Config, pacer: Pacer | None = None) -> dict[str, Channel]:
    from ..alerts.config import ChannelConfig
    from .alertmanager_sink import AlertmanagerSink
    from .apprise_channel import AppriseChannel
    from .webhook_channel import WebhookChannel

    renderer = Renderer(cfg.alerting.links)
    pacer = pacer or Pacer()
    out: dict[str, Channel] = {}
    for name, ch in cfg.channels.items():
        assert isinstance(ch, ChannelConfig)
        if ch.type == "apprise":
            out[name] = AppriseChannel(name, ch, renderer, pacer)
        elif ch.type == "webhook":
            out[name] = WebhookChannel(name, ch, cfg.alerting.links, cfg.alerting.external_url,
                                       pacer)
        else:
            out[name] = AlertmanagerSink(name, ch, cfg.alerting.links,
                                         cfg.alerting.external_url, pacer)
    return out


def build_alerting(cfg: Config, engine: Engine, registry: CollectorRegistry,
                   clock: Callable[[], datetime] = utcnow,
                   rng: random.Random | None = None) -> Alerting:
    """Channels, routes and metrics from the config, on the state database's engine.

    Raises apprise_channel.ChannelSetupError for a URL apprise cannot use.
    """
    pacer = Pacer()
    channels = build_channels(cfg, pacer)
    routing = compile_routes(cfg.alerting, cfg.routes)
    metrics = NotifierMetrics(registry, channels)
    alerting = Alerting(cfg, engine, routing, channels, metrics, clock, rng or random.Random(),
                        pacer)
    alerting._pending_gauge()
    return alerting


__all__ = ["Alerting", "Attempt", "Digest", "build_alerting", "build_channels"]
