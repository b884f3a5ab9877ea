"""`mailbot run`: APScheduler jobs calling the app; no logic of its own.

Jobs (all in the office's time zone, `schedule.timezone`):

    poll:<mailbox>   every poll_interval_seconds, under the mailbox's lease
    idle:<mailbox>   with imap.idle: an IMAP IDLE watcher that polls as soon as mail arrives
                     (the interval poll stays as a safety net and for lease take-over)
    lease            renews the leases this process holds
    outbox           every outbox_interval_seconds
    digest           daily at digest_time (CronTrigger: right local time across DST)
    retention        daily at retention_time

Jobs never overlap themselves (max_instances=1, coalesce). SIGTERM/SIGINT: the poll in
flight finishes the message it is processing, commits, moves it, and stops; the leases
are released so another worker takes over at once; the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from .config import ImapSettings, Settings
from .db import describe_error
from .errors import MailbotError
from .fetch import mailbox_name
from .idle import IdleWatcher

log = logging.getLogger("mailbot.run")


class DailyTrigger(CronTrigger):
    """Once a day at a local time, also on DST days: CronTrigger alone fires twice when the
    time falls in the hour that repeats in autumn (02:00-03:00 in Brussels)."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire = super().get_next_fire_time(previous_fire_time, now)
        while (fire is not None and previous_fire_time is not None
               and fire.astimezone(self.timezone).date() == previous_fire_time.astimezone(self.timezone).date()):
            fire = super().get_next_fire_time(fire, fire)
        return fire


def daily(at: Any, tz: tzinfo) -> CronTrigger:
    """A trigger firing once every day at local time `at` (a datetime.time)."""
    return DailyTrigger(hour=at.hour, minute=at.minute, second=0, timezone=tz)


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
        self.scheduler.add_job(self.app.leases.renew, IntervalTrigger(seconds=max(1, schedule.lease_seconds // 3)),
                               id="lease", **defaults)
        self.scheduler.add_job(self.send, IntervalTrigger(seconds=schedule.outbox_interval_seconds),
                               id="outbox", **defaults)
        self.scheduler.add_job(self.digest, daily(schedule.digest_time, self.tz), id="digest", **defaults)
        self.scheduler.add_job(self.retention, daily(schedule.retention_time, self.tz), id="retention",
                               **defaults)

    # -- jobs ------------------------------------------------------------------------
    def poll(self, imap: ImapSettings, *, wait: bool = False) -> None:
        """Poll one mailbox. Interval polls skip when one is running; IDLE wake-ups wait."""
        name = mailbox_name(imap)
        lock = self._locks[name]
        if self.stop_event.is_set() or not lock.acquire(blocking=wait):
            return
        try:
            if self.stop_event.is_set():
                return
            report = self.app.poll_mailbox(imap, stop=self.stop_event, keep_lease=True)
            if report is not None and report.fetched:
                log.info("poll %s: fetched=%d processed=%d quarantined=%d duplicates=%d", name,
                         report.fetched, report.processed, report.quarantined, report.duplicates)
            if report is not None:
                self._recovered(name)
        except MailbotError as err:
            self._failed(name, str(err))
        except SQLAlchemyError as err:  # the database is down or refused the batch
            self._failed(name, f"database: {describe_error(err)}")
        finally:
            lock.release()
        if not self.stop_event.is_set():
            self.send()  # the replies just queued go out now, not at the next outbox tick

    def idle(self, imap: ImapSettings) -> None:
        schedule = self.app.settings.schedule
        IdleWatcher(imap, lambda: self.poll(imap, wait=True), self.stop_event,
                    reissue_seconds=schedule.idle_reissue_seconds,
                    reconnect_max_seconds=schedule.reconnect_max_seconds).run()

    def send(self) -> None:
        try:
            report = self.app.send_outbox()
            if report.sent or report.retried or report.failed:
                log.info("outbox: sent=%d retrying=%d failed=%d", report.sent, report.retried, report.failed)
        except MailbotError as err:
            log.error("outbox failed: %s", err)

    def digest(self) -> None:
        try:
            queued = self.app.send_digest()
            log.info("digest: %d queued", queued)
        except MailbotError as err:
            log.error("digest failed: %s", err)
            self._event("digest_failed", error=str(err)[:500])

    def retention(self) -> None:
        try:
            report = self.app.run_retention()
            log.info("retention: %s", report.as_dict() | {"closed_cases": report.closed_cases.as_dict(with_refs=False)})
        except MailbotError as err:
            log.error("retention failed: %s", err)
            self._event("retention_failed", error=str(err)[:500])

    # -- errors, recorded once per outage ----------------------------------------------
    def _failed(self, name: str, error: str) -> None:
        message = error[:500]
        log.error("poll %s failed: %s", name, message)
        if self._failing.get(name) != message:
            self._failing[name] = message
            self._event("poll_failed", mailbox=name, error=message)

    def _recovered(self, name: str) -> None:
        if self._failing.pop(name, None) is not None:
            self._event("poll_recovered", mailbox=name)

    def _event(self, type_: str, **detail: object) -> None:
        from .store import add_event

        try:
            with self.app.sessions.begin() as session:
                add_event(session, type_, case=None, message=None, **detail)
        except Exception:  # noqa: BLE001 - the database may be what is failing
            log.exception("could not record %s", type_)

    # -- lifecycle -------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._shutdown is not None:
            return
        log.info("signal %d: finishing the message in flight, then stopping", signum)
        self.stop_event.set()
        self._shutdown = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        self._shutdown.start()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("mailbot running: %d mailbox(es), poll every %ss, owner %s", len(self.mailboxes),
                 self.app.settings.schedule.poll_interval_seconds, self.app.leases.owner)
        self.scheduler.start()
        if self._shutdown is not None:
            self._shutdown.join()
        self.app.leases.release_all()
        log.info("mailbot stopped")
