"""What we know about citizens' addresses: which ones are undeliverable.

The `address_status` table is fed by the two ways we learn that mail to an
address cannot arrive:

- the SMTP server refuses the recipient with a 5xx (outbox `_record`);
- a permanent delivery status notification of one of our replies comes back
  (decide flags the case `undeliverable`; `record_bounce` stores the address).

Both write a row here (the case is flagged too, for staff); a row whose status is
not `undeliverable` (staff set it to `ok` with `mark_deliverable`) lets replies
go to the address again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .db import AddressStatus
from .db_statements import per_transaction, run
from .model import Bounce

UNDELIVERABLE = "undeliverable"
DELIVERABLE = "ok"
PRELOAD_LIMIT = 5000  # undeliverable addresses read at once for a batch (`preload_undeliverable`)

_KNOWN = "mailbot.undeliverable"  # this transaction's answers: email -> undeliverable
_COMPLETE = ("every undeliverable address",)  # in _KNOWN: True when all of them are there


def _key(email: str) -> str:
    return email.strip().lower()


def undeliverable(session: Session, email: str) -> bool:
    """True when an earlier reply to `email` bounced permanently or was refused (5xx)."""
    return bool(undeliverable_among(session, [email]))


def undeliverable_among(session: Session, emails: Iterable[str]) -> frozenset[str]:
    """Those of `emails` that are undeliverable, in one statement for those not asked before.

    Answers are remembered until the transaction ends (a message asks for its sender while
    deciding and again before queueing the reply); our own marks update them. The outbox
    asks again when it sends, so another worker's mark made meanwhile still holds.
    """
    wanted = {email: key for email in emails if (key := _key(email))}
    if not wanted:
        return frozenset()
    known = per_transaction(session, _KNOWN)
    unknown = sorted(set(wanted.values()) - known.keys())
    if unknown and known.get(_COMPLETE):  # every undeliverable address is known already
        known.update((key, False) for key in unknown)
    elif unknown:
        found = set(run(session, _UNDELIVERABLE, {"emails": unknown}).scalars())
        known.update((key, key in found) for key in unknown)
    return frozenset(email for email, key in wanted.items() if known[key])


def preload_undeliverable(session: Session, *, limit: int = PRELOAD_LIMIT) -> bool:
    """For a transaction that handles a batch: read every undeliverable address at once when
    there are at most `limit`, so the batch asks nothing more; True when they were read.

    An office learns of a few hundred dead addresses a year; a batch of a hundred mails
    then costs one short query instead of one per mail.
    """
    known = per_transaction(session, _KNOWN)
    if _COMPLETE not in known:
        rows = run(session, _EVERY_UNDELIVERABLE, {"limit": limit + 1}).scalars().all()
        known[_COMPLETE] = len(rows) <= limit
        if known[_COMPLETE]:
            known.update((key, True) for key in rows if key not in known)
    return bool(known[_COMPLETE])


_UNDELIVERABLE = select(AddressStatus.email).where(
    AddressStatus.email.in_(bindparam("emails", expanding=True)), AddressStatus.status == UNDELIVERABLE)
_EVERY_UNDELIVERABLE = (select(AddressStatus.email).where(AddressStatus.status == UNDELIVERABLE)
                        .limit(bindparam("limit")))


def _upsert(session: Session, email: str, *, status: str, source: str, reason: str,
            now: datetime) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(AddressStatus).values(email=email, status=status, source=source,
                                             reason=reason[:2000], failures=1,
                                             created_at=now, updated_at=now)
    # Two workers may learn the same thing at once: the second one updates.
    statement = statement.on_conflict_do_update(
        index_elements=[AddressStatus.email],
        set_={"status": status, "source": source, "reason": reason[:2000], "updated_at": now,
              "failures": AddressStatus.failures + (1 if status == UNDELIVERABLE else 0)})
    session.execute(statement)
    per_transaction(session, _KNOWN)[email] = status == UNDELIVERABLE


def mark_undeliverable(session: Session, email: str, *, source: str, reason: str,
                       now: datetime | None = None) -> None:
    """Never send to `email` again (until staff `mark_deliverable` it)."""
    email = _key(email)
    if email and "@" in email:
        _upsert(session, email, status=UNDELIVERABLE, source=source, reason=reason,
                now=now or datetime.now(timezone.utc))


def mark_deliverable(session: Session, email: str, *, reason: str = "cleared by staff",
                     now: datetime | None = None) -> None:
    """Staff know the address works again: automatic replies may go to it."""
    email = _key(email)
    if email:
        _upsert(session, email, status=DELIVERABLE, source="staff", reason=reason,
                now=now or datetime.now(timezone.utc))


def record_bounce(session: Session, bounce: Bounce | None, *, fallback_email: str = "",
                  now: datetime | None = None) -> bool:
    """Store the address of a permanent bounce of our reply; True when one was stored.

    `fallback_email` (the address on file of the case the bounce matched) is used when
    the report does not name the failed recipient.
    """
    if bounce is None or not bounce.permanent:
        return False
    email = bounce.recipient or fallback_email
    if not email:
        return False
    detail = " ".join(part for part in (bounce.status, bounce.diagnostic) if part)
    mark_undeliverable(session, email, source="bounce", reason=detail or "permanent bounce", now=now)
    return True
