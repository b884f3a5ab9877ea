"""`create_app`: the one place that builds the adapters and wires the pipeline."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .config import Settings
from .db import make_engine, make_sessionmaker
from .fetch import ImapMailbox, Mailbox
from .outbox import RetryPolicy, SendReport, copy_sent, send_due
from .pipeline import Intake, PollReport, utcnow
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

    def open_mailbox(self) -> Mailbox:
        return ImapMailbox(self.settings.imap)

    def poll_once(self, mailbox: Mailbox | None = None, *, stop: threading.Event | None = None) -> PollReport:
        """Fetch and process the inbox (the outbox is sent separately)."""
        own = mailbox is None
        box = mailbox or self.open_mailbox()
        try:
            return self.intake.run_once(box, stop=stop)
        finally:
            if own:
                box.close()

    def send_outbox(self, now: datetime | None = None) -> SendReport:
        """Send the due replies; then, when `imap.sent_folder` is set, file a copy of each
        sent reply there (best-effort: a failure is an event, never a resend)."""
        smtp = self.settings.smtp
        policy = RetryPolicy(max_attempts=self.settings.limits.send_attempts,
                             base=timedelta(seconds=smtp.retry_base_seconds),
                             cap=timedelta(seconds=smtp.retry_max_seconds),
                             lease=timedelta(seconds=smtp.claim_lease_seconds))
        report = send_due(self.sessions, self.transport, smtp.from_address,
                          max_attempts=policy.max_attempts, now=now, policy=policy)
        folder = self.settings.imap.sent_folder
        if folder and report.sent_ids:
            copy_sent(self.sessions, report.sent_ids, folder,
                      lambda: ImapMailbox(self.settings.imap))
        return report

    def close(self) -> None:
        self.engine.dispose()


def create_app(settings: Settings, *, engine: Engine | None = None, transport: Transport | None = None,
               clock: Callable[[], datetime] = utcnow) -> App:
    engine = engine or make_engine(settings.database.url)
    sessions = make_sessionmaker(engine)
    renderer = Renderer(settings.templates_dir)
    routing = RoutingStage(settings.rules_dir, template_names=renderer.names())
    intake = Intake(settings, sessions, routing, renderer, clock=clock)
    return App(settings, engine, sessions, renderer, routing, intake,
               transport or SmtpTransport(settings.smtp))
