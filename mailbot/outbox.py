"""The outbox: replies are queued in the decision's transaction and sent afterwards.

Sending claims due rows by pushing their `next_attempt_at` past a lease, commits,
sends, then marks them sent. A crash between the SMTP send and that mark leaves
the row claimed; once the lease runs out it is sent again: at most one duplicate
per crash, never a lost reply. On PostgreSQL the claim uses FOR UPDATE SKIP
LOCKED, so several senders share the table without sending a row twice.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .db import Case, Outbox
from .errors import PermanentSendError
from .send import Envelope, Transport
from .store import add_event

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return ceiling * (0.5 + (rng or random).random() / 2)


def claim_due(session: Session, now: datetime, limit: int) -> list[Outbox]:
    query = (select(Outbox).where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
             .order_by(Outbox.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.execute(query).scalars())
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + CLAIM_LEASE
    return rows


def send_due(sessions: sessionmaker, transport: Transport, sender: str, *,
             max_attempts: int, now: datetime | None = None, batch: int = 200) -> SendReport:
    """Send every due reply; returns what happened."""
    report = SendReport()
    while True:
        moment = now or datetime.now(timezone.utc)
        with sessions.begin() as session:
            claimed = claim_due(session, moment, batch)
            envelopes = [Envelope(row.id, sender, row.recipient, row.mime) for row in claimed]
        if not envelopes:
            return report
        results = transport.send_many(envelopes)
        with sessions.begin() as session:
            for result in results:
                row = session.get(Outbox, result.key)
                if row is None:
                    continue
                _record(session, row, result.error, moment, max_attempts, report)
        if len(envelopes) < batch or now is not None:
            return report


def _record(session: Session, row: Outbox, error: Exception | None, now: datetime,
            max_attempts: int, report: SendReport) -> None:
    case = session.get(Case, row.case_id) if row.case_id else None
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
        report.sent += 1
        add_event(session, "reply_sent", case=case, template=row.template, outbox_id=row.id)
        return
    row.last_error = str(error)[:2000]
    permanent = isinstance(error, PermanentSendError)
    if permanent or row.attempts >= max_attempts:
        row.status = "failed"
        report.failed += 1
        if case is not None:
            flag = "undeliverable" if permanent else "reply_failed"
            case.flags = sorted(set(case.flags) | {flag})
        add_event(session, "reply_failed", case=case, template=row.template,
                  outbox_id=row.id, permanent=permanent, attempts=row.attempts)
        log.warning("reply %s failed for good after %d attempts", row.id, row.attempts)
    else:
        row.next_attempt_at = now + backoff(row.attempts)
        report.retried += 1
        log.info("reply %s will be retried: %s", row.id, row.last_error)
