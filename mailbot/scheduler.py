"""`mailbot run`: APScheduler jobs calling the app; no logic of its own.

Jobs (all in the office's time zone, `schedule.timezone`):

    poll:<mailbox>   every poll_interval_seconds, under the mailbox's lease
    idle:<mailbox>   with imap.idle: an IMAP IDLE watcher that polls as soon as mail arrives
                     (the interval poll stays as a safety net and for lease take-over)
    lease            renews the leases this process holds
    outbox           every outbox_interval_seconds
    digest           daily at digest_time (DailyTrigger: once a day, local time, across DST); a
                     failed digest is tried again every DIGEST_RETRY until it is queued,
                     that same day; started after digest_time, the process queues
                     yesterday's digest at once for every recipient still without it
                     (all of them, or those a crash half-way left out; `digest.queue`)
    retention        daily at retention_time

Before the jobs start, the database is checked once: a schema that `mailbot db upgrade` has
not brought up to this version, a SQLite file that cannot be opened, a missing role or
database or a refused login end the process at once with one line (exit 2: systemd's
Restart=on-failure and the operator see it), instead of failing every job forever. A server
that is down or restarting is waited for (START_RETRY, doubling to START_RETRY_MAX), as the
jobs wait out an outage later; SIGTERM ends the wait.

Jobs never overlap themselves (max_instances=1, coalesce). A job that fails (the database
or a server is down) logs one line and tries again at its next run; failures go into the
events, which are kept in memory while the database itself is down and stored once it is
back. SIGTERM/SIGINT: the poll in flight finishes its batch (a batch still waiting for the
parse worker is abandoned, uncommitted, and read again next time), the outbox sender
finishes the SMTP transactions in flight and starts no new one; the leases are released
so another worker takes over at once; the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from .config import ImapSettings, Settings
from .db_engine import database_unavailable, describe_error
from .db_check import startup_problem, waiting_cannot_help
from .errors import MailbotError, StoreError
from .fetch import mailbox_name
from .idle import IdleWatcher

log = logging.getLogger("mailbot.run")

DIGEST_RETRY = timedelta(minutes=5)  # a failed digest is tried again after this, that same day
MAX_UNRECORDED = 100  # events kept in memory while the database is down
LATE = timedelta(seconds=10)  # an event stored this much later says when it happened (noted_at)
# A database that is down at start is tried again after START_RETRY seconds, doubling up to
# START_RETRY_MAX, for as long as it takes, as the jobs wait out an outage once running:
# without it no job can do anything, and a process that exited instead would come back only
# if its unit or container restarts it, and within systemd's start limit.
START_RETRY = 5.0
START_RETRY_MAX = 60.0


class DailyTrigger(BaseTrigger):
    """Once every local day at local time `at`, also on DST days. APScheduler's CronTrigger
    fires twice when `at` falls in the hour that repeats in autumn (02:00-03:00 in Brussels),
    and (3.11) skips the day after the spring change for a time from 00:00 to 01:00: the
    next fire is worked out from the local date instead (`next_daily_fire`)."""

    __slots__ = ("at", "timezone")

    def __init__(self, at: time, tz: tzinfo) -> None:
        self.at, self.timezone = at, tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        return next_daily_fire(self.at, self.timezone, previous_fire_time, now)

    def __str__(self) -> str:
        return f"daily at {self.at:%H:%M} ({self.timezone})"


def next_daily_fire(at: time, tz: tzinfo, previous: datetime | None, now: datetime) -> datetime:
    """When a daily job at local time `at` fires next: on the local day after `previous` (even
    when that is past: APScheduler then coalesces what was missed, as for its own triggers),
    or, for a first run, at the first `at` from `now` on. A time the spring change skips fires
    an hour later on the clock (02:30 → 03:30); one the autumn change repeats, the first time.
    Pure."""
    day = previous.astimezone(tz).date() + timedelta(days=1) if previous is not None else now.astimezone(tz).date()
    while True:
        # fold=0: the first of a repeated time; a skipped one keeps the offset before the change
        fire = datetime.combine(day, at, tz).astimezone(timezone.utc).astimezone(tz)
        if previous is not None or fire >= now:
            return fire
        day += timedelta(days=1)


def digest_retry_at(now: datetime, tz: tzinfo, day: date) -> datetime | None:
    """When a failed digest of `day` is tried again: DIGEST_RETRY later in real time (not on
    the clock face, which jumps an hour on DST days), or None when that is no longer the day
    after `day`, when the digest was due. Pure."""
    retry = (now + DIGEST_RETRY).astimezone(tz)
    return None if retry.date() > day + timedelta(days=1) else retry


def daily(at: time, tz: tzinfo) -> DailyTrigger:
    """A trigger firing once every day at local time `at`."""
    return DailyTrigger(at, tz)


class Runner:
    def __init__(self, app: Any) -> None:
        self.app = app
        settings: Settings = app.settings
        schedule = settings.schedule
        self.tz = ZoneInfo(schedule.timezone)
        self.mailboxes = settings.all_mailboxes
        workers = 4 + 2 * len(self.mailboxes)
        self.scheduler = BlockingScheduler(timezone=self.tz,
                                           executors={"default": ThreadPoolExecutor(workers)})
        self.stop_event = threading.Event()
        self._locks = {mailbox_name(m): threading.Lock() for m in self.mailboxes}
        self._failing: dict[str, str] = {}
        self._unrecorded: list[tuple[str, dict[str, object], datetime]] = []  # not stored yet
        self._events_lock = threading.Lock()
        self._digest_failed: date | None = None  # the day whose digest failure is recorded
        self._shutdown: threading.Thread | None = None
        defaults = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
        now = datetime.now(self.tz)
        for imap in self.mailboxes:
            name = mailbox_name(imap)
            self.scheduler.add_job(self.poll, IntervalTrigger(seconds=schedule.poll_interval_seconds),
                                   args=[imap], id=f"poll:{name}", next_run_time=now, **defaults)
            if imap.idle:
                self.scheduler.add_job(self.idle, "date", run_date=now, args=[imap], id=f"idle:{name}",
                                       max_instances=1, misfire_grace_time=None)
        self.scheduler.add_job(self.renew_leases, IntervalTrigger(seconds=max(1, schedule.lease_seconds // 3)),
                               id="lease", **defaults)
        self.scheduler.add_job(self.send, IntervalTrigger(seconds=schedule.outbox_interval_seconds),
                               id="outbox", **defaults)
        self.scheduler.add_job(self.digest, daily(schedule.digest_time, self.tz), id="digest", **defaults)
        self.scheduler.add_job(self.retention, daily(schedule.retention_time, self.tz), id="retention",
                               **defaults)
        local = self.app.clock().astimezone(self.tz)
        if local.time() >= schedule.digest_time:  # today's digest ran before we started, or not
            self.scheduler.add_job(self.digest, "date", run_date=now, id="digest-catch-up",
                                   kwargs={"day": local.date() - timedelta(days=1), "catch_up": True},
                                   misfire_grace_time=None)

    def _told(self, err: Exception) -> str:
        """One line for the log and the events: a database error without its SQL and parameters
        (a SQLite file that cannot be opened is named, with the likely cause)."""
        if isinstance(err, SQLAlchemyError):
            return f"database: {describe_error(err, self.app.settings.database.url)}"
        return str(err)

    # -- jobs ------------------------------------------------------------------------
    def poll(self, imap: ImapSettings, *, wait: bool = False) -> None:
        """Poll one mailbox. Interval polls skip when one is running; IDLE wake-ups wait."""
        name = mailbox_name(imap)
        lock = self._locks[name]
        if self.stop_event.is_set() or not lock.acquire(blocking=wait):
            return
        failed = False
        try:
            if self.stop_event.is_set():
                return
            report = self.app.poll_mailbox(imap, stop=self.stop_event, keep_lease=True)
            if report is not None and report.fetched:
                log.info("poll %s: fetched=%d processed=%d quarantined=%d duplicates=%d", name,
                         report.fetched, report.processed, report.quarantined, report.duplicates)
            if report is not None:
                self._recovered(name)
        except (MailbotError, SQLAlchemyError) as err:  # a server or the database is down
            failed = True
            self._failed(name, self._told(err))
        finally:
            lock.release()
        if not failed and not self.stop_event.is_set():
            self.send()  # the replies just queued go out now, not at the next outbox tick

    def idle(self, imap: ImapSettings) -> None:
        schedule = self.app.settings.schedule
        IdleWatcher(imap, lambda: self.poll(imap, wait=True), self.stop_event,
                    reissue_seconds=schedule.idle_reissue_seconds,
                    reconnect_max_seconds=schedule.reconnect_max_seconds).run()

    def renew_leases(self) -> None:
        try:
            self.app.leases.renew()
        except SQLAlchemyError as err:  # the poll notices a lease that is lost meanwhile
            log.warning("leases not renewed: %s", self._told(err))

    def send(self) -> None:
        """Send the outbox; on SIGTERM it starts no new message (`App.send_outbox`)."""
        try:
            report = self.app.send_outbox(stop=self.stop_event)
            if report.sent or report.retried or report.failed or report.released:
                log.info("outbox: sent=%d retrying=%d failed=%d%s", report.sent, report.retried, report.failed,
                         f" released={report.released}" if report.released else "")
        except (MailbotError, SQLAlchemyError) as err:
            log.error("outbox failed: %s", self._told(err))

    def digest(self, day: date | None = None, *, catch_up: bool = False) -> None:
        """Queue (and send) the digest of `day` (default: yesterday) for every recipient that
        does not have it yet (`digest.queue`, once per day, team and recipient); `catch_up`
        (at start) logs nothing when none was missing. A failure is tried again every
        DIGEST_RETRY, that day."""
        day = day or self.app.local_today() - timedelta(days=1)
        try:
            queued = self.app.send_digest(day)
            log.log(logging.INFO if queued or not catch_up else logging.DEBUG,
                    "digest of %s: %d queued", day.isoformat(), queued)
            self._record_events()
        except (MailbotError, SQLAlchemyError) as err:
            error = self._told(err)
            retry = digest_retry_at(self.app.clock(), self.tz, day)
            if retry is None:
                log.error("digest of %s failed, not retried after today (send it with "
                          "'mailbot digest --send --date %s'): %s", day.isoformat(), day.isoformat(), error)
            else:
                log.error("digest of %s failed, retried at %s %s: %s", day.isoformat(), retry.strftime("%H:%M"),
                          self.app.settings.schedule.timezone, error)
                self.scheduler.add_job(self.digest, "date", run_date=retry, id="digest-retry",
                                       kwargs={"day": day}, replace_existing=True, misfire_grace_time=None)
            if self._digest_failed != day:  # one event per day's digest, not one per retry
                self._digest_failed = day
                self._event("digest_failed", day=day.isoformat(), error=error[:500])

    def retention(self) -> None:
        try:
            report = self.app.run_retention()
            log.info("retention: %s", report.as_dict() | {"closed_cases": report.closed_cases.as_dict(with_refs=False)})
        except (MailbotError, SQLAlchemyError) as err:
            error = self._told(err)
            log.error("retention failed: %s", error)
            self._event("retention_failed", error=error[:500])

    # -- errors, recorded once per outage ----------------------------------------------
    def _failed(self, name: str, error: str) -> None:
        message = error[:500]
        log.error("poll %s failed: %s", name, message)
        if self._failing.get(name) != message:
            self._failing[name] = message
            self._event("poll_failed", mailbox=name, error=message)

    def _recovered(self, name: str) -> None:
        if self._failing.pop(name, None) is not None:
            log.info("poll %s recovered", name)
            self._event("poll_recovered", mailbox=name)
        else:
            self._record_events()  # a failure the database could not take before

    def _event(self, type_: str, **detail: object) -> None:
        """Record an event; while the database is down it waits, in order, for the next try."""
        with self._events_lock:
            if len(self._unrecorded) >= MAX_UNRECORDED:
                del self._unrecorded[0]
            self._unrecorded.append((type_, detail, datetime.now(self.tz)))
        self._record_events(type_)

    def _record_events(self, new: str | None = None) -> None:
        from .store import add_event

        with self._events_lock:
            if not self._unrecorded:
                return
            now = datetime.now(self.tz)
            try:
                with self.app.sessions.begin() as session:
                    for type_, detail, noted in self._unrecorded:
                        if now - noted > LATE:  # stored late: when it happened
                            detail = detail | {"noted_at": noted.isoformat(timespec="seconds")}
                        add_event(session, type_, case=None, message=None, **detail)
            except SQLAlchemyError as err:  # the database may be what is failing
                log.log(logging.WARNING if new else logging.DEBUG,
                        "%s not recorded yet (%d event(s) kept until the database is back): %s",
                        new or "events", len(self._unrecorded), describe_error(err))
                return
            self._unrecorded.clear()

    # -- lifecycle -------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._shutdown is not None or self.stop_event.is_set():
            return
        self.stop_event.set()
        if not self.scheduler.running:  # still checking the database: nothing in flight
            log.info("signal %d: stopping", signum)
            return
        log.info("signal %d: finishing the message in flight, then stopping", signum)
        self._shutdown = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        self._shutdown.start()

    def database_ready(self) -> bool:
        """Check the database once before the jobs start: True when it can work; False when
        stopped while waiting for it. Raises StoreError for a schema that is not at this
        version (never upgraded, or by a newer version) or a SQLite file this user may not
        write, and the SQLAlchemyError itself when
        the database refuses us for good (MailbotGroup adds what to do): exit 2."""
        delay = START_RETRY
        while not self.stop_event.is_set():
            try:
                problem = startup_problem(self.app.engine)
            except SQLAlchemyError as err:
                if not database_unavailable(err) or waiting_cannot_help(err):
                    raise
                log.warning("database not reachable at start, tried again in %gs: %s", delay, self._told(err))
                self.stop_event.wait(delay)
                delay = min(delay * 2, START_RETRY_MAX)
                continue
            if problem is not None:
                raise StoreError(f"database: {problem}")
            return True
        return False

    def _cadence(self) -> str:
        """How the mailboxes are watched, for the start-up line."""
        every = f"{self.app.settings.schedule.poll_interval_seconds}s"
        idle = sum(m.idle for m in self.mailboxes)
        if not idle:
            return f"poll every {every}"
        if idle == len(self.mailboxes):
            return f"IMAP IDLE, with a poll every {every} as a safety net"
        return f"IMAP IDLE on {idle} of them, poll every {every}"

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if not self.database_ready() or self.stop_event.is_set():
            log.info("mailbot stopped")
            return
        log.info("mailbot running: %d mailbox(es), %s, owner %s", len(self.mailboxes), self._cadence(),
                 self.app.leases.owner)
        try:
            self.scheduler.start()
        except JobLookupError:
            # The signal handler's shutdown empties the job store while the scheduler's loop
            # may be removing a one-off job it has just started (the digest catch-up): APScheduler
            # then raises. Harmless when stopping; the jobs in flight are waited for below.
            if not self.stop_event.is_set():
                raise
        if self._shutdown is not None:
            self._shutdown.join()
        self.app.leases.release_all()
        log.info("mailbot stopped")
