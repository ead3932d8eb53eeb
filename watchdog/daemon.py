"""The long-running process: scheduler jobs, signals, back-off, the HTTP endpoint.

Jobs never overlap (max_instances=1); a poll that is still running when the next is due
is counted in `watchdog_polls_skipped_total`, not stacked. SIGTERM/SIGINT end the running
poll after the page it is committing (each page commits with the cursor, so the next
start continues from there), then the leader saves the detector state, makes one last
delivery attempt of at most FINAL_DELIVERY_SECONDS, releases the lease and the process
exits 0 (1 if a shutdown step failed). SIGHUP reloads the rules, and so does a change of
the rule files (checked every RULES_WATCH_SECONDS).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from .config import ConfigError, load_config
from .lease import Lease
from .metrics import Metrics
from .notifiers.apprise_channel import ChannelSetupError
from .pipeline import PollFailed, PollReport
from .rules import RuleError
from .rules.watch import ReloadOnChange, RuleFileWatcher
from .tick import after_poll
from .web import Health, start_http_server
from .wiring import Parts, exclude_rule_ids, load_configured_rules, rule_paths

log = structlog.get_logger("watchdog.daemon")

MAX_BACKOFF = timedelta(minutes=5)
RULES_WATCH_SECONDS = 5
FINAL_DELIVERY_SECONDS = 5.0
"""How long a stopping leader waits for due notifications before it lets go."""
SIGNAL_WAKE_SECONDS = 0.5
"""How often the main thread wakes to run the handlers of signals the kernel delivered to
another thread (see run_daemon)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Poller:
    """The poll job: runs the pipeline until caught up, backs off after failures."""

    parts: Parts
    health: Health
    stop: threading.Event
    lease: Lease
    clock: Callable[[], datetime] = utcnow
    on_report: Callable[[PollReport], None] | None = None
    failures: int = 0
    retry_at: datetime | None = None
    _polls: int = field(default=0, repr=False)

    def __call__(self) -> None:
        now = self.clock()
        if not self.health.leader or (self.retry_at and now < self.retry_at):
            return
        self._polls += 1
        structlog.contextvars.bind_contextvars(poll_id=self._polls)
        try:
            self.poll_until_caught_up()
        finally:
            structlog.contextvars.unbind_contextvars("poll_id")

    def poll_until_caught_up(self) -> bool:
        metrics = self.parts.metrics
        while not self.stop.is_set():
            try:
                report = poll_once(self.parts, self.clock(), should_stop=self.stop.is_set)
            except PollFailed as exc:
                self._back_off(exc)
                return False
            self.failures, self.retry_at = 0, None
            metrics.last_success.set(time.time())
            self.health.ok()
            if report.rows_read:
                log.info("poll", new=report.new, duplicates=report.duplicates,
                         excluded=report.excluded, categories=dict(report.by_category),
                         caught_up=report.caught_up, rows_read=report.rows_read,
                         cursor=report.cursor.changed_at.isoformat() if report.cursor else None)
            if self.on_report:
                self.on_report(report)
            if report.caught_up:
                return True
            # A report holds every item of its poll (up to max_batches_per_poll pages):
            # let it go before the next poll, or a catch-up holds two polls' worth.
            del report
        return True

    def _back_off(self, exc: PollFailed) -> None:
        self.failures += 1
        delay = min(self.parts.cfg.poll.interval * 2 ** (self.failures - 1), MAX_BACKOFF)
        self.retry_at = self.clock() + delay
        self.health.failed(f"{exc.stage}: {exc.cause}")
        log.error("poll_failed", stage=exc.stage, error=str(exc.cause)[:500],
                  failures=self.failures, retry_in_s=delay.total_seconds())


def reload_rules(parts: Parts) -> bool:
    """Swap in freshly loaded rules; on any error keep the running ones."""
    running = getattr(parts.pipeline.rules, "version", None)
    try:
        rules = load_configured_rules(parts.cfg)
    except RuleError as exc:
        parts.metrics.rules_reload_errors.inc()
        log.error("rules_reload_refused", problems=[str(p) for p in exc.problems],
                  keeping=running)
        return False
    if rules.version == running:
        # Same sources (a touch, a SIGHUP): keep the running set and its warm cache.
        log.info("rules_unchanged", version=running)
        return True
    # A category (or exclude rule) the reload brought in gets its series at 0 before its
    # first count, as those of the rules at start do.
    parts.metrics.add_zero_series(rules.categories, exclude_rule_ids(rules))
    parts.pipeline.rules = rules
    parts.metrics.set_rules_version(rules.version)
    log.info("rules_reloaded", version=rules.version)
    return True


def reload_channels(parts: Parts) -> bool:
    """Re-read the config file's channels, routes and alerting settings; on any error
    keep the running ones. (Other settings take effect at the next start.)"""
    if parts.alerting is None or parts.cfg.path is None:
        return False
    try:
        cfg = load_config(parts.cfg.path)
        parts.alerting.reconfigure(cfg)
    except (ConfigError, ChannelSetupError) as exc:
        problems = [str(p) for p in getattr(exc, "problems", [])] or [str(exc)]
        log.error("channels_reload_refused", problems=problems)
        return False
    log.info("channels_reloaded", channels=sorted(cfg.channels))
    return True


def run_daemon(parts: Parts, lease: Lease, *, stop: threading.Event | None = None,
               on_report: Callable[[PollReport], None] | None = None,
               install_signals: bool = True, clock: Callable[[], datetime] = utcnow) -> int:
    """Serve until stopped. `lease` decides whether this replica polls or stands by.

    `clock` is the pipeline's notion of now (the demo runs on simulated time).
    """
    cfg = parts.cfg
    stop = stop or threading.Event()
    interval = cfg.poll.interval.total_seconds()
    health = Health(stale_after=max(3 * interval, 60.0))
    server = start_http_server(cfg, parts.registry, health)
    log.info("listening", url=f"{server.scheme}://{cfg.metrics.host}:{server.port}/metrics")

    poller = Poller(parts, health, stop, lease, clock)
    poller.on_report = on_report
    scheduler = BackgroundScheduler(timezone=UTC)
    # Twice per lease interval: a standby then takes over within half an interval of the
    # lock's release, which leaves most of the promised two intervals for loading the
    # leader's state (and for noticing a dead host's session, see state_engine.postgres_liveness).
    renew = cfg.state.lease_interval.total_seconds() / 2
    scheduler.add_job(_renew_lease, "interval", seconds=renew, id="lease",
                      args=[parts, lease, health, clock], max_instances=1, coalesce=True,
                      next_run_time=utcnow())
    schedule_poll(scheduler, poller, interval, parts.metrics)
    scheduler.add_job(_prune, "interval", hours=1, id="prune", args=[parts, health],
                      max_instances=1, coalesce=True)
    if parts.alerting is not None:
        delivery = cfg.alerting.delivery.check_interval.total_seconds()
        scheduler.add_job(_deliver, "interval", seconds=delivery, id="deliver",
                          args=[parts, health], max_instances=1, coalesce=True)
        scheduler.add_job(_digest, "interval", minutes=1, id="digest",
                          args=[parts, health, clock], max_instances=1, coalesce=True)
    # Rule files are watched: a settled change is loaded within RULES_WATCH_SECONDS and
    # used from the next poll on (a poll in progress keeps the ruleset it started with).
    rules_watch = ReloadOnChange(RuleFileWatcher(rule_paths(cfg)), lambda: reload_rules(parts))
    scheduler.add_job(rules_watch, "interval", seconds=RULES_WATCH_SECONDS, id="rules_watch",
                      max_instances=1, coalesce=True)

    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        def on_hangup(*_: object) -> None:
            # One-shot jobs: run however late the scheduler gets to them (the default
            # grace of 1 s would drop a reload on a busy host).
            scheduler.add_job(rules_watch.force, misfire_grace_time=None)
            scheduler.add_job(reload_channels, args=[parts], misfire_grace_time=None)

        signal.signal(signal.SIGHUP, on_hangup)

    scheduler.start()
    try:
        # Not one blocking stop.wait(): the kernel may deliver a signal to any thread (the
        # scheduler's, the HTTP server's), and Python runs its handler only when the main
        # thread next executes bytecode, which a thread blocked on a lock never does.
        while not stop.wait(SIGNAL_WAKE_SECONDS):
            pass
        log.info("stopping")
    finally:
        # Waits for the running jobs: a poll ends after the page it is committing.
        scheduler.shutdown(wait=True)
        clean = shut_down(parts, lease, health.leader, server.stop, clock())
    log.info("stopped", clean=clean)
    return 0 if clean else 1


def schedule_poll(scheduler: BaseScheduler, poller: Callable[[], None], interval: float,
                  metrics: Metrics) -> None:
    """The poll job. Polls never overlap (max_instances=1): a run that falls due while
    the previous one is still going is skipped and counted in
    `watchdog_polls_skipped_total`, and missed runs are not queued up (coalesce)."""
    scheduler.add_job(poller, "interval", seconds=interval, id="poll", max_instances=1,
                      coalesce=True, next_run_time=utcnow())

    def skipped(event: JobSubmissionEvent) -> None:
        if event.job_id == "poll":
            metrics.polls_skipped.inc()

    scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)


def shut_down(parts: Parts, lease: Lease, leading: bool, stop_server: Callable[[], None],
              now: datetime) -> bool:
    """Let go in the order a standby relies on; True if every step succeeded.

    The leader saves the detector state *before* it releases the lease, so the replica
    that takes over loads the current baselines, not the last periodic save. Every step
    runs even if one before it failed (a state database that went away must not keep
    the lease, the port or the connections open); a failure is logged.
    """
    clean = True

    def step(name: str, action: Callable[[], object]) -> None:
        nonlocal clean
        try:
            action()
        except Exception as exc:
            clean = False
            log.error("shutdown_step_failed", step=name, error=repr(exc)[:500])

    if leading and parts.stage is not None:
        stage = parts.stage

        def save_detector() -> None:
            # A lease lost since the last renewal: the replica holding it now owns the
            # saved state, and this one must not overwrite it.
            if not lease.try_acquire():
                log.warning("detector_not_saved", reason="leadership lost")
                return
            stage.save(now)

        step("save_detector", save_detector)
    if leading and parts.alerting is not None:
        alerting = parts.alerting
        step("final_delivery", lambda: alerting.finish(FINAL_DELIVERY_SECONDS))
    step("release_lease", lease.release)
    step("stop_http", stop_server)
    step("close", parts.close)  # no `now`: the detector state was saved above
    return clean


def poll_once(parts: Parts, now: datetime,
              should_stop: Callable[[], bool] | None = None) -> PollReport:
    """One timed poll followed by detection and the alert lifecycle; raises PollFailed
    (after handing the open episodes to alerting, so firing alerts stay firing).

    `should_stop` ends the poll after the page in progress (see `Pipeline.poll`)."""
    started = time.perf_counter()
    try:
        report = parts.pipeline.poll(now, should_stop=should_stop)
    except PollFailed:
        after_poll(parts, None, now)
        raise
    finally:
        parts.metrics.poll_duration.observe(time.perf_counter() - started)
    after_poll(parts, report, now)
    return report


def run_once(parts: Parts) -> PollReport:
    """One cycle for cron and tests: poll, detect, alert, deliver; raises PollFailed."""
    now = utcnow()
    parts.take_lead(now)
    report = poll_once(parts, now)
    if parts.alerting is not None:
        parts.alerting.deliver_pending(wait_for=True)
    return report


def _renew_lease(parts: Parts, lease: Lease, health: Health,
                 clock: Callable[[], datetime]) -> None:
    leader = lease.try_acquire()
    if leader and not health.leader:
        parts.take_lead(clock())
        log.info("role", role="leader")
    elif health.leader and not leader:
        parts.step_down()
        log.warning("role", role="standby")
    elif not leader:
        parts.metrics.leader.set(0)
    health.leader = leader


def _deliver(parts: Parts, health: Health) -> None:
    if health.leader and parts.alerting is not None:
        parts.alerting.deliver_pending(wait_for=False)


def _digest(parts: Parts, health: Health, clock: Callable[[], datetime]) -> None:
    if health.leader and parts.alerting is not None:
        parts.alerting.send_digest(clock())


def _prune(parts: Parts, health: Health) -> None:
    if not health.leader:  # like the poll: one replica writes, the others stand by
        return
    before = utcnow() - parts.cfg.state.retention
    events, keys = parts.store.prune(before)
    if parts.alerting is not None:
        parts.alerting.outbox.prune(before)
    if events or keys:
        log.info("pruned", events=events, dedupe_keys=keys, before=before.isoformat())

