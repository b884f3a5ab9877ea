"""The outbox: replies are queued in the decision's transaction and sent afterwards.

A sender *claims* due rows: in one short transaction it pushes their
`next_attempt_at` a lease (`smtp.claim_lease_seconds`) into the future and
commits. It then sends them over SMTP, and in a second transaction marks each
one sent, retried or failed. The pushed `next_attempt_at` is the claim's token:
a result is only recorded when the row still carries it.

Exactly-once, as far as SMTP allows:

- A crash between the SMTP send and the mark leaves the row claimed; when the
  lease runs out it is sent again, with the same Message-ID. That is at most
  one duplicate per crash, and never a lost reply.
- The transport stops starting messages well before the lease ends, so a slow
  batch cannot outlive its claim and be taken over by another sender.
- On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`: several senders share
  the table, each row is claimed by one of them, and none is sent twice. On
  SQLite every write transaction is `BEGIN IMMEDIATE`, which serialises claims.

Transient failures (connection refused, 4xx, timeouts) are retried with
exponential backoff and jitter up to `limits.send_attempts`; a 5xx marks the
row `failed` at once and flags the case (`undeliverable` when the server says
the address is bad, which also blocks the address; `reply_failed` otherwise).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .addresses import mark_undeliverable
from .db import AddressStatus, Case, Outbox
from .deferred import Ref
from .errors import MailbotError, PermanentSendError, SendError
from .send import Envelope, RecipientRejected, SendResult, Transport
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
    released: int = 0  # claimed but not attempted (time budget): due again at once
    sent_ids: list[int] = field(default_factory=list)  # outbox rows sent by this call


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a transient failure is retried."""

    max_attempts: int = 8
    base: timedelta = BACKOFF_BASE
    cap: timedelta = BACKOFF_CAP
    lease: timedelta = CLAIM_LEASE


def backoff(attempts: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP,
            rng: random.Random | None = None) -> timedelta:
    """base·2^(attempts-1), capped, times a random factor in [0.5, 1) ("equal jitter")."""
    ceiling: timedelta = min(base * (2 ** min(max(attempts - 1, 0), 30)), cap)
    factor: float = 0.5 + (rng or random).random() / 2
    return ceiling * factor


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim_due(session: Session, now: datetime, limit: int,
              lease: timedelta = CLAIM_LEASE) -> list[Outbox]:
    """Due pending rows, now leased to the caller until `now + lease` (commit to publish)."""
    query = (select(Outbox).where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
             .order_by(Outbox.id).limit(limit))
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    rows = list(session.execute(query).scalars())
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + lease
    return rows


def send_due(sessions: sessionmaker[Session], transport: Transport, sender: str, *,
             max_attempts: int, now: datetime | None = None, batch: int = 200,
             policy: RetryPolicy | None = None) -> SendReport:
    """Send every due reply; returns what happened. With `now` given, one batch only."""
    policy = policy or RetryPolicy(max_attempts=max_attempts)
    report = SendReport()
    while True:
        moment = now or datetime.now(timezone.utc)
        token = moment + policy.lease
        with sessions.begin() as session:
            claimed = claim_due(session, moment, batch, policy.lease)
            envelopes = [Envelope(row.id, sender, row.recipient, row.mime) for row in claimed]
            envelopes = _drop_blocked(session, claimed, envelopes, moment, report)
        if not envelopes:
            if claimed:
                continue
            return report
        results = transport.send_many(envelopes)
        with sessions.begin() as session:
            _record_all(session, results, token, moment, policy, report)
        if (len(claimed) < batch or now is not None
                or not any(r.attempted for r in results)):
            return report


def _drop_blocked(session: Session, rows: list[Outbox], envelopes: list[Envelope],
                  now: datetime, report: SendReport) -> list[Envelope]:
    """Rows whose address became undeliverable after queueing fail without a send."""
    recipients = {row.recipient for row in rows}
    if not recipients:
        return envelopes
    blocked = set(session.execute(
        select(AddressStatus.email).where(AddressStatus.email.in_(recipients),
                                          AddressStatus.status == "undeliverable")).scalars())
    if not blocked:
        return envelopes
    for row in rows:
        if row.recipient in blocked:
            _fail(session, row, "the address is marked undeliverable", now, report,
                  permanent=True, address=False)
    return [e for e in envelopes if e.recipient not in blocked]


def _record_all(session: Session, results: list[SendResult], token: datetime, now: datetime,
                policy: RetryPolicy, report: SendReport) -> None:
    by_key = {r.key: r for r in results}
    query = select(Outbox).where(Outbox.id.in_(list(by_key)), Outbox.status == "pending",
                                 Outbox.next_attempt_at == token).order_by(Outbox.id)
    if _postgres(session):
        query = query.with_for_update()  # a late claimer waits, then sees the row changed
    rows = {row.id: row for row in session.execute(query).scalars()}
    for key, result in by_key.items():
        row = rows.get(key)
        if row is None:
            log.warning("outbox row %s was taken over by another sender; result not recorded", key)
        elif not result.attempted:
            row.attempts -= 1
            row.next_attempt_at = now
            report.released += 1
        else:
            _record(session, row, result.error, now, policy, report)


def _record(session: Session, row: Outbox, error: SendError | None, now: datetime,
            policy: RetryPolicy, report: SendReport) -> None:
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
        report.sent += 1
        report.sent_ids.append(row.id)
        add_event(session, "reply_sent", case=Ref(row.case_id), template=row.template, outbox_id=row.id)
        return
    row.last_error = str(error)[:2000]
    if isinstance(error, PermanentSendError) or row.attempts >= policy.max_attempts:
        _fail(session, row, row.last_error, now, report,
              permanent=isinstance(error, PermanentSendError),
              address=isinstance(error, RecipientRejected))
    else:
        row.next_attempt_at = now + backoff(row.attempts, base=policy.base, cap=policy.cap)
        report.retried += 1
        log.info("reply %s will be retried (attempt %d): %s", row.id, row.attempts, row.last_error)


def _fail(session: Session, row: Outbox, reason: str, now: datetime, report: SendReport, *,
          permanent: bool, address: bool) -> None:
    """Mark the row failed for good, flag its case, and block a refused address."""
    row.status, row.last_error = "failed", reason[:2000]
    report.failed += 1
    if address:
        mark_undeliverable(session, row.recipient, source="smtp", reason=reason, now=now)
    case = None
    if row.case_id is not None:
        case = session.get(Case, row.case_id, with_for_update=_postgres(session))
    if case is not None:
        flag = "undeliverable" if address else "reply_failed"
        case.flags = sorted(set(case.flags) | {flag})
    add_event(session, "reply_failed", case=case, template=row.template, outbox_id=row.id,
              permanent=permanent, address_rejected=address, attempts=row.attempts,
              reason=reason[:500])
    log.warning("reply %s failed for good after %d attempts: %s", row.id, row.attempts, reason)


class SentFolder(Protocol):
    """Where copies of sent replies are filed (fetch.ImapMailbox)."""

    def append(self, folder: str, raw: bytes) -> None: ...
    def close(self) -> None: ...


def copy_sent(sessions: sessionmaker[Session], outbox_ids: Sequence[int], folder: str,
              open_folder: Callable[[], SentFolder], *, chunk: int = 100) -> int:
    """File a copy of each sent reply in `folder`; returns how many were copied.

    Best-effort: the replies are already sent and marked, so a failure (IMAP down)
    is logged and recorded as a `sent_copy_failed` event for the digest, never raised.
    """
    copied, error = 0, ""
    try:
        box = open_folder()
        try:
            for start in range(0, len(outbox_ids), chunk):
                with sessions() as session:
                    mimes = session.execute(
                        select(Outbox.mime).where(Outbox.id.in_(list(outbox_ids[start:start + chunk])))
                        .order_by(Outbox.id)).scalars().all()
                for mime in mimes:
                    box.append(folder, mime)
                    copied += 1
        finally:
            box.close()
    except MailbotError as err:
        error = str(err)
    if error:
        log.warning("copy of sent replies to %r failed after %d: %s", folder, copied, error)
        with sessions.begin() as session:
            add_event(session, "sent_copy_failed", folder=folder, error=error[:500],
                      copied=copied, missing=len(outbox_ids) - copied)
    return copied
