"""`mailbot run`: APScheduler jobs calling the app; no logic of its own.

Jobs never overlap (max_instances=1, coalesce). SIGTERM/SIGINT stop the
scheduler after the job in flight: a poll finishes its current message's
savepoint, commits the batch and returns (the pipeline checks `stopping`).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .errors import MailbotError

log = logging.getLogger("mailbot.run")


class Runner:
    def __init__(self, app: Any) -> None:
        self.app = app
        settings = app.settings
        self.scheduler = BlockingScheduler(timezone=settings.schedule.timezone)
        self.stop_event = threading.Event()
        defaults = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
        self.scheduler.add_job(self.poll, IntervalTrigger(seconds=settings.schedule.poll_interval_seconds),
                               id="poll", next_run_time=_now(settings), **defaults)
        self.scheduler.add_job(self.send, IntervalTrigger(seconds=settings.schedule.outbox_interval_seconds),
                               id="outbox", **defaults)
        digest_at = settings.schedule.digest_time
        self.scheduler.add_job(self.digest, CronTrigger(hour=digest_at.hour, minute=digest_at.minute,
                                                        timezone=settings.schedule.timezone),
                               id="digest", **defaults)

    def poll(self) -> None:
        if self.stop_event.is_set():
            return
        try:
            report = self.app.poll_once(stop=self.stop_event)
            log.info("poll: fetched=%d processed=%d quarantined=%d duplicates=%d",
                     report.fetched, report.processed, report.quarantined, report.duplicates)
        except MailbotError as err:
            log.error("poll failed: %s", err)
        self.send()

    def send(self) -> None:
        try:
            report = self.app.send_outbox()
            if report.sent or report.retried or report.failed:
                log.info("outbox: sent=%d retrying=%d failed=%d", report.sent, report.retried, report.failed)
        except MailbotError as err:
            log.error("outbox failed: %s", err)

    def digest(self) -> None:
        sender = getattr(self.app, "send_digest", None)
        if sender is None:
            return
        try:
            sender()
        except MailbotError as err:
            log.error("digest failed: %s", err)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: finishing the job in flight, then stopping", signum)
        self.stop_event.set()
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("mailbot running: poll every %ss", self.app.settings.schedule.poll_interval_seconds)
        self.scheduler.start()
        log.info("mailbot stopped")


def _now(settings: Any):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(settings.schedule.timezone))
