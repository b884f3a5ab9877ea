"""The outbox: replies are queued in the decision's transaction and sent afterwards.

A sender *claims* due rows: in one short transaction it pushes their
`next_attempt_at` a lease (`smtp.claim_lease_seconds`) into the future and
commits. It then sends them over SMTP and, while they go out, marks them sent,
retried or failed, `RECORD_EVERY` results to a transaction. The pushed
`next_attempt_at` is the claim's token: a result is only recorded when the row
still carries it.

Exactly-once, as far as SMTP allows:

- A crash between the SMTP send and the mark leaves the row claimed; when the
  lease runs out it is sent again, with the same Message-ID. That is at most
  one duplicate per crash, and never a lost reply; and only for the replies
  delivered since the last recorded group (at most `RECORD_EVERY` and those in
  flight), not for the whole claimed batch. The same holds when the
  server accepted the message but its reply to the end of DATA never came
  (timeout, dropped connection): the row is retried, at most one duplicate.
- The transport bounds each message's whole SMTP transaction by the time left
  on the claim, less a margin for recording the result, and begins DATA only
  while the server has time to answer it; a message it could not finish is cut
  off before the end of DATA (the server discards it) and retried later. So a
  slow server cannot keep a message on the wire past the claim, where another
  sender could take the row and send it a second time.
- On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`: several senders share
  the table, each row is claimed by one of them, and none is sent twice. On
  SQLite every write transaction is `BEGIN IMMEDIATE`, which serialises claims.

Transient failures (connection refused, timeouts, TLS or login failing, 4xx)
are retried, like a mail server's queue: the next try comes after about as long
as the reply has waited so far (at least `smtp.retry_base_seconds` ·
2^(attempt-1), at most `smtp.retry_max_seconds`), with jitter. Only tries the
server saw count as attempts: while it cannot be reached (an outage, a wrong
password) replies wait, uncharged, for as long as it takes. A reply the server
keeps refusing with 4xx fails once it has had `limits.send_attempts` attempts
and waited `RetryPolicy.max_age` (5 days, Postfix's queue lifetime). A 5xx
marks the row `failed` at once. Failing flags the case (`undeliverable` when
the server says the address is bad, which also blocks the address;
`reply_failed` otherwise) and records a `reply_failed` event.

The staff digest (template `digest`) goes to staff, not to a citizen: a refusal never
blocks the address (the next day's digest tries SMTP again, also to an address blocked
before), and it is recorded as a `digest_failed` event (day, recipient, error), logged
at ERROR, which `mailbot status` lists; `digest --send` queues a failed copy again.

A staff notice (template `staff_notice`, `staff_notice.py`: a rule's `notify:` address told
about a new case) goes to staff too: a refusal never blocks the address nor flags the case
(the citizen's replies are not affected); it is recorded as a `reply_failed` event on the
case, which `mailbot status` and the digest list, and logged at ERROR.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from .addresses import mark_undeliverable
from .db import AddressStatus, Case, Outbox, as_utc
from .deferred import Ref
from .errors import MailbotError, PermanentSendError, SendError
from .send import Envelope, RecipientRejected, SendResult, Stop, Transport
from .store import add_event

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
# How long a reply the server keeps refusing with 4xx is retried (Postfix: maximal_queue_lifetime).
QUEUE_LIFETIME = timedelta(days=5)
DIGEST = "digest"  # the template of the staff digest: its recipients are staff, never blocked
STAFF_NOTICE = "staff_notice"  # a rule's `notify:` address told about a new case (`staff_notice`)
# Mail to staff, not to a citizen: never blocks an address, never flags a case, no copy in Sent.
STAFF_MAIL = frozenset({DIGEST, STAFF_NOTICE})
_DIGEST_DAY = re.compile(r"digest\.(\d{4}-\d{2}-\d{2})\.")  # digest.scheduled_message_id and --force's


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0  # claimed but not attempted (time budget, or a stop): due again at once
    woken: int = 0  # waiting for an unreachable server, due at once when it answered again
    sent_ids: list[int] = field(default_factory=list)  # outbox rows sent by this call


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a transient failure is retried.

    A transient failure fails the row only when both limits are reached: `max_attempts`
    tries the server saw, and `max_age` since the reply was queued.
    """

    max_attempts: int = 8
    base: timedelta = BACKOFF_BASE
    cap: timedelta = BACKOFF_CAP
    lease: timedelta = CLAIM_LEASE
    max_age: timedelta = QUEUE_LIFETIME


def backoff(attempts: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP,
            age: timedelta = timedelta(0), rng: random.Random | None = None) -> timedelta:
    """The larger of base·2^(attempts-1) and `age` (how long the reply has waited: the delay
    doubles while the server cannot be reached, when no attempts are counted), capped, times
    a random factor in [0.5, 1) ("equal jitter")."""
    ceiling: timedelta = min(max(base * (2 ** min(max(attempts - 1, 0), 30)), age), cap)
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
             policy: RetryPolicy | None = None, stop: Stop | None = None) -> SendReport:
    """Send every due reply; returns what happened. With `now` given, one batch only.

    Once `stop` is set (SIGTERM) no new message is started and no new batch claimed: the
    messages in flight finish and are recorded, the unstarted rows are released.
    """
    policy = policy or RetryPolicy(max_attempts=max_attempts)
    report = SendReport()
    woke = False  # the replies waiting for an unreachable server are woken once per call
    while True:
        if stop is not None and stop.is_set():
            return report
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
        recorder = _Recorder(sessions, token, moment, policy, report)
        results = transport.send_many(envelopes, stop=stop, on_result=recorder.add)
        recorder.finish(results)
        reached = any(r.attempted and r.reached for r in results)
        with sessions.begin() as session:
            woken = _wake_unreached(session, moment) if reached and not woke else 0
        woke = woke or reached
        report.woken += woken
        if (len(claimed) < batch and not woken) or now is not None or not reached:
            return report


RECORD_EVERY = 10  # results recorded per transaction while a batch is sent


class _Recorder:
    """Records send results while the batch goes out, RECORD_EVERY at a time: a sender killed
    mid-batch leaves at most that many sent-but-unrecorded replies (sent again when the claim
    runs out), not the whole batch of up to 200."""

    def __init__(self, sessions: sessionmaker[Session], token: datetime, now: datetime,
                 policy: RetryPolicy, report: SendReport) -> None:
        self.sessions, self.token, self.now, self.policy, self.report = sessions, token, now, policy, report
        self.pending: list[SendResult] = []
        self.recorded: set[int] = set()

    def add(self, result: SendResult) -> None:
        self.pending.append(result)
        # Only what the server saw can be sent twice; the rest (server unreachable, not
        # started) waits for `finish`, so an outage is one transaction and one warning.
        if sum(r.attempted and r.reached for r in self.pending) >= RECORD_EVERY:
            self._flush()

    def finish(self, results: list[SendResult]) -> None:
        """Record what is left, also results a transport did not hand over one by one."""
        held = self.recorded | {r.key for r in self.pending}
        self.pending += [r for r in results if r.key not in held]
        self._flush()

    def _flush(self) -> None:
        if self.pending:
            with self.sessions.begin() as session:
                _record_all(session, self.pending, self.token, self.now, self.policy, self.report)
            self.recorded.update(r.key for r in self.pending)
            self.pending = []


def _wake_unreached(session: Session, now: datetime) -> int:
    """The server answers again: replies that wait only because it could not be reached
    (never an attempt, an error recorded) are due now instead of at the end of their
    back-off, and their stale error goes (`mailbot status` shows it while it is news)."""
    woken = session.execute(
        update(Outbox).where(Outbox.status == "pending", Outbox.attempts == 0, Outbox.last_error.is_not(None),
                             Outbox.next_attempt_at > now)
        .values(next_attempt_at=now, last_error=None)
        .execution_options(synchronize_session=False))
    return cast(CursorResult, woken).rowcount or 0


def _drop_blocked(session: Session, rows: list[Outbox], envelopes: list[Envelope],
                  now: datetime, report: SendReport) -> list[Envelope]:
    """Rows whose address became undeliverable after queueing fail without a send (not mail
    to staff: staff addresses are not blocked)."""
    recipients = {row.recipient for row in rows if row.template not in STAFF_MAIL}
    if not recipients:
        return envelopes
    blocked = set(session.execute(
        select(AddressStatus.email).where(AddressStatus.email.in_(recipients),
                                          AddressStatus.status == "undeliverable")).scalars())
    if not blocked:
        return envelopes
    dropped = {row.id for row in rows if row.recipient in blocked and row.template not in STAFF_MAIL}
    for row in rows:
        if row.id in dropped:
            _fail(session, row, "the address is marked undeliverable", now, report,
                  permanent=True, address=False)
    return [e for e in envelopes if e.key not in dropped]


def _record_all(session: Session, results: list[SendResult], token: datetime, now: datetime,
                policy: RetryPolicy, report: SendReport) -> None:
    by_key = {r.key: r for r in results}
    query = select(Outbox).where(Outbox.id.in_(list(by_key)), Outbox.status == "pending",
                                 Outbox.next_attempt_at == token).order_by(Outbox.id)
    if _postgres(session):
        query = query.with_for_update()  # a late claimer waits, then sees the row changed
    rows = {row.id: row for row in session.execute(query).scalars()}
    unreached: list[Outbox] = []
    for key, result in by_key.items():
        row = rows.get(key)
        if row is None:
            log.warning("outbox row %s was taken over by another sender; result not recorded", key)
        elif not result.attempted:
            row.attempts -= 1
            row.next_attempt_at = now
            report.released += 1
        elif not result.reached and result.error is not None:
            row.attempts -= 1  # the server never saw it: not an attempt
            row.last_error = str(result.error)[:2000]
            _retry_later(row, now, policy, report)
            unreached.append(row)
        else:
            _record(session, row, result.error, now, policy, report)
    if unreached:
        oldest = max(_age(row, now) for row in unreached)
        log.warning("SMTP server not reachable or sign-in not possible, %d replies wait (the oldest for %s): %s",
                    len(unreached), str(oldest).split(".")[0], unreached[0].last_error)


def _record(session: Session, row: Outbox, error: SendError | None, now: datetime,
            policy: RetryPolicy, report: SendReport) -> None:
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
        report.sent += 1
        report.sent_ids.append(row.id)
        add_event(session, "reply_sent", case=Ref(row.case_id), template=row.template, outbox_id=row.id)
        return
    row.last_error = str(error)[:2000]
    expired = row.attempts >= policy.max_attempts and _age(row, now) >= policy.max_age
    if isinstance(error, PermanentSendError) or expired:
        reason = row.last_error if not expired or isinstance(error, PermanentSendError) else (
            f"still not delivered after {_age(row, now).days} days and {row.attempts} attempts: "
            f"{row.last_error}")
        _fail(session, row, reason, now, report,
              permanent=isinstance(error, PermanentSendError),
              address=isinstance(error, RecipientRejected))
    else:
        _retry_later(row, now, policy, report)
        log.info("reply %s will be retried (attempt %d): %s", row.id, row.attempts, row.last_error)


def _age(row: Outbox, now: datetime) -> timedelta:
    return max(now - as_utc(row.created_at), timedelta(0))


def _retry_later(row: Outbox, now: datetime, policy: RetryPolicy, report: SendReport) -> None:
    row.next_attempt_at = now + backoff(row.attempts, base=policy.base, cap=policy.cap,
                                        age=_age(row, now))
    report.retried += 1


def _fail(session: Session, row: Outbox, reason: str, now: datetime, report: SendReport, *,
          permanent: bool, address: bool) -> None:
    """Mark the row failed for good, flag its case, and block a refused address (a digest's:
    `_digest_failed`; a staff notice's: `_notice_failed`)."""
    row.status, row.last_error = "failed", reason[:2000]
    report.failed += 1
    if row.template == DIGEST:
        _digest_failed(session, row, reason, permanent=permanent, address=address)
        return
    if row.template == STAFF_NOTICE:
        _notice_failed(session, row, reason, permanent=permanent, address=address)
        return
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


def _digest_failed(session: Session, row: Outbox, reason: str, *, permanent: bool, address: bool) -> None:
    """A staff member's copy of the digest failed: their address is not blocked (the next
    digest tries it again), and the failure is logged and recorded for `mailbot status`."""
    day = _DIGEST_DAY.match(row.message_id)
    add_event(session, "digest_failed", day=day.group(1) if day else None, recipient=row.recipient[:320],
              error=f"digest to {row.recipient}: {reason}"[:500], outbox_id=row.id, permanent=permanent,
              address_rejected=address, attempts=row.attempts)
    log.error("digest %s to %s failed after %d attempts: %s", day.group(1) if day else row.message_id,
              row.recipient, row.attempts, reason)


def _notice_failed(session: Session, row: Outbox, reason: str, *, permanent: bool, address: bool) -> None:
    """A staff notice failed: the staff address is not blocked and the case is not flagged
    (the citizen's address is fine); the failure is told as any reply's (`mailbot status`,
    the digest, `case show`)."""
    add_event(session, "reply_failed", case=Ref(row.case_id), template=row.template, outbox_id=row.id,
              permanent=permanent, address_rejected=address, attempts=row.attempts, reason=reason[:500])
    log.error("staff notice %s to %s failed after %d attempts: %s", row.id, row.recipient, row.attempts, reason)


class SentFolder(Protocol):
    """Where copies of sent replies are filed (fetch.ImapMailbox)."""

    def append(self, folder: str, raw: bytes) -> None: ...
    def close(self) -> None: ...


def copy_sent(sessions: sessionmaker[Session], outbox_ids: Sequence[int], folder: str,
              open_folder: Callable[[], SentFolder], *, chunk: int = 100) -> int:
    """File a copy of each sent reply in `folder`; returns how many were copied. Not mail to
    staff (`STAFF_MAIL`): the digest names many citizens and the outbox keeps it for
    `digest_days`; a staff notice is no reply, staff have it in their own mailbox.

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
                        select(Outbox.mime).where(Outbox.id.in_(list(outbox_ids[start:start + chunk])),
                                                  Outbox.template.not_in(STAFF_MAIL))
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
