"""`create_app`: the one place that builds the adapters and wires the pipeline."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .config import ImapSettings, Settings
from .db_engine import make_engine, make_sessionmaker
from .errors import FetchError
from .fetch import ImapMailbox, Mailbox, mailbox_name
from .lease import Leases, StopWhen, StoppableMailbox, merge_reports
from .outbox import RetryPolicy, SendReport, copy_sent, send_due
from .pipeline import Intake, utcnow
from .poll_cycle import PollCycle, PollReport
from .prepare import Preparer, longest_wait
from .render import Renderer
from .routing_stage import RoutingStage
from .send import SmtpTransport, Transport


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    renderer: Renderer
    routing: RoutingStage
    intake: Intake
    transport: Transport
    clock: Callable[[], datetime] = utcnow
    leases: Leases = field(init=False)
    _intakes: dict[str, Intake] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.leases = Leases(self.sessions, seconds=self.settings.schedule.lease_seconds)

    def open_mailbox(self, imap: ImapSettings | None = None) -> Mailbox:
        return ImapMailbox(imap or self.settings.imap)

    def intake_for(self, imap: ImapSettings) -> Intake:
        """The pipeline of one mailbox (its own processed/quarantine folders and address)."""
        if imap == self.settings.imap:
            return self.intake
        key = mailbox_name(imap)
        if key not in self._intakes:
            self._intakes[key] = Intake(self.settings.model_copy(update={"imap": imap}), self.sessions,
                                        self.intake.routing, self.intake.renderer, clock=self.clock,
                                        preparer=self.intake.preparer)
        return self._intakes[key]

    def poll_once(self, mailbox: Mailbox | None = None, *, stop: threading.Event | None = None) -> PollReport:
        """Fetch and process the inbox (the outbox is sent separately).

        With a `mailbox` (tests, tools): that one, no lease. Without: every configured
        mailbox whose lease we can take; one held by another poller is skipped.
        """
        if mailbox is not None:
            return PollCycle(self.intake).run(mailbox, stop=stop)
        total = PollReport()
        for imap in self.settings.all_mailboxes:
            try:
                report = self.poll_mailbox(imap, stop=stop)
            except FetchError as err:  # `mailbot status` tells it, as it tells `mailbot run`'s
                self._note_poll_failure(mailbox_name(imap), str(err))
                raise
            if report is None:
                total.busy_mailboxes.append(mailbox_name(imap))
            merge_reports(total, report)
        return total

    def _note_poll_failure(self, name: str, error: str) -> None:
        """A `poll_failed` event for `mailbot status`; best effort: the database may be down too."""
        from sqlalchemy.exc import SQLAlchemyError

        from .store import add_event

        try:
            with self.sessions.begin() as session:
                add_event(session, "poll_failed", mailbox=name, error=error[:500])
        except SQLAlchemyError as err:
            log.debug("poll failure of %s not recorded: %s", name, err)

    def poll_mailbox(self, imap: ImapSettings, *, stop: threading.Event | None = None,
                     keep_lease: bool = False) -> PollReport | None:
        """One poll of one mailbox under its lease; None when another poller holds it.

        The lease is renewed while the poll runs; when it is lost anyway, or `stop` is set
        (SIGTERM), the poll ends after the message in flight is committed and moved.
        """
        name = mailbox_name(imap)
        if not self.leases.claim(name):
            log.debug("mailbox %s is polled by another worker", name)
            return None
        until = StopWhen(*(e for e in (stop, self.leases.lost(name)) if e is not None))
        try:
            with self.leases.kept_alive(name):
                box = ImapMailbox(imap)
                try:
                    cycle = PollCycle(self.intake_for(imap))
                    return cycle.run(StoppableMailbox(box, until), stop=until)  # type: ignore[arg-type]
                finally:
                    box.close()
        finally:
            if not keep_lease:
                self.leases.release(name)

    def local_today(self) -> date:
        return self.clock().astimezone(ZoneInfo(self.settings.schedule.timezone)).date()

    def send_digest(self, day: date | None = None, *, once: bool = True) -> int:
        """Queue the digest of `day` (default: yesterday, local time) for staff and for
        every team in `digest.teams`, then send the outbox; returns the rows queued."""
        from . import digest

        day = day or self.local_today() - timedelta(days=1)
        templates = self.renderer.templates  # the set in force, as the replies use
        queued = digest.queue(self.sessions, self.settings, day, self.clock(), once=once, templates=templates)
        for team in self.settings.digest.teams:
            queued += digest.queue(self.sessions, self.settings, day, self.clock(), team=team, once=once,
                                   templates=templates)
        if queued:
            self.send_outbox()
        return queued

    def run_retention(self, *, dry_run: bool = False) -> Any:
        from .retention import run_retention

        return run_retention(self.sessions, self.settings, self.clock(), dry_run=dry_run)

    def status(self) -> dict[str, Any]:
        """What `mailbot status` shows; `healthy` is False when a mailbox's poll is overdue."""
        from .operational_status import operational_status

        names = [mailbox_name(m) for m in self.settings.all_mailboxes]
        with self.sessions() as session:
            data = operational_status(session, names, self.clock())
        limit = self.max_poll_age()
        data["max_poll_age_seconds"] = limit
        data["healthy"] = all(b["age_seconds"] is not None and b["age_seconds"] <= limit
                              for b in data["mailboxes"])
        return data

    def max_poll_age(self) -> int:
        schedule = self.settings.schedule
        if schedule.max_poll_age_seconds:
            return schedule.max_poll_age_seconds
        return 3 * schedule.poll_interval_seconds + 60

    def send_outbox(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> SendReport:
        """Send the due replies; then, when `imap.sent_folder` is set, file a copy of each
        sent reply there (best-effort: a failure is an event, never a resend).

        Once `stop` is set (SIGTERM) no new message is started: the ones in flight finish,
        the rest stay due (`outbox.send_due`)."""
        smtp = self.settings.smtp
        policy = RetryPolicy(max_attempts=self.settings.limits.send_attempts,
                             base=timedelta(seconds=smtp.retry_base_seconds),
                             cap=timedelta(seconds=smtp.retry_max_seconds),
                             lease=timedelta(seconds=smtp.claim_lease_seconds))
        report = send_due(self.sessions, self.transport, smtp.from_address,
                          max_attempts=policy.max_attempts, now=now, policy=policy, stop=stop)
        folder = self.settings.imap.sent_folder
        if folder and report.sent_ids:
            copy_sent(self.sessions, report.sent_ids, folder,
                      lambda: ImapMailbox(self.settings.imap))
        return report

    def close(self) -> None:
        self.intake.preparer.close()
        self.engine.dispose()


def create_app(settings: Settings, *, engine: Engine | None = None, transport: Transport | None = None,
               clock: Callable[[], datetime] = utcnow, rules_required: bool = True) -> App:
    """`rules_required=False`: for commands that route no mail, rules and templates that
    cannot be used (on disk, nor the last good set) are a warning and an empty rule set."""
    # A batch's transaction waits for the parse worker: PostgreSQL must not end it sooner.
    engine = engine or make_engine(settings.database.url,
                                   longest_wait_seconds=longest_wait(settings.limits.parse_timeout_seconds))
    sessions = make_sessionmaker(engine)
    renderer = Renderer(settings.templates_dir)
    # Rules and templates are checked and reloaded together; the set in force is saved in the
    # database and started on when the files are invalid at start (routing_stage).
    routing = RoutingStage(settings.rules_dir, renderer=renderer, sessions=sessions,
                           timezone=settings.schedule.timezone, languages=tuple(settings.languages),
                           required=rules_required)
    preparer = Preparer(timeout=settings.limits.parse_timeout_seconds or None)
    intake = Intake(settings, sessions, routing, renderer, clock=clock, preparer=preparer)
    return App(settings, engine, sessions, renderer, routing, intake,
               transport or SmtpTransport(settings.smtp), clock)


log = logging.getLogger("mailbot.app")
