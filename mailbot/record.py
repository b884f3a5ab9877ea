"""Write one decision to the database: case, message, receipt, events, outbox rows.

Runs inside the caller's transaction, so the case, the message and the replies
are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from . import deferred, sanitize, store
from .db import Case, Message, Receipt, table_of, utcnow
from .db_statements import insert_object
from .decide import speaks_for_citizen
from .deferred import HasId
from .model import Classification, Decision, Kind, Mail
from .office_time import office_year


@dataclass(frozen=True)
class Source:
    """Where a message came from in IMAP: the idempotency key."""

    mailbox: str
    uidvalidity: int
    uid: int


def message_row(mail: Mail, *, kind: str, sha256: str, received_at: datetime,
                classification: Classification | None = None) -> Message:
    forwarded = mail.forwarded[0] if mail.forwarded else None
    return Message(
        direction="in", kind=kind, message_id=mail.message_id[:998],
        in_reply_to=" ".join(mail.in_reply_to), references=list(mail.references[-50:]),
        from_email=(mail.from_.email if mail.from_ else "")[:320],
        from_name=(mail.from_.name if mail.from_ else "")[:200],
        to_addrs=[a.email[:320] for a in mail.to][:100], cc_addrs=[a.email[:320] for a in mail.cc][:100],
        subject=mail.subject[:2000], sent_at=mail.date, received_at=received_at,
        body_text=mail.text, sha256=sha256, size=mail.size,
        language=classification.language if classification else None,
        original_sender=str(forwarded.sender)[:400] if forwarded and forwarded.sender else None,
        original_subject=forwarded.subject if forwarded else None,
        original_date=forwarded.date if forwarded else None,
        details={"auto_reason": classification.auto_reason} if classification and
        classification.auto_reason else {},
    )


def note_contact_preference(case: Case, classification: Classification) -> None:
    """Keep the phone number or other address the citizen asked us to use (latest wins)."""
    facts = classification.facts
    if facts.phone_numbers and (facts.prefers_phone or not case.contact_phone):
        case.contact_phone = facts.phone_numbers[0][:50]
    if facts.alternative_email:
        case.contact_email = facts.alternative_email[:320]


def add_receipt(session: Session, source: Source | None, message: HasId | None,
                disposition: str) -> None:
    """Remember that this IMAP copy was handled; written in bulk at commit (`deferred`)."""
    if source is not None:
        deferred.add(session, table_of(Receipt), {
            "mailbox": source.mailbox, "uidvalidity": source.uidvalidity, "uid": source.uid,
            "disposition": disposition, "moved": False, "created_at": utcnow()},
            ids={"message_pk": message})


def open_case(session: Session, mail: Mail, decision: Decision, classification: Classification,
              *, prefix: str, now: datetime, tz: str) -> Case:
    """A new case; its reference counts in the office's year (00:30 on 1 January in
    Brussels is still 31 December in UTC)."""
    investigator = decision.investigator
    citizen = decision.citizen or mail.from_
    case = Case(
        ref=store.allocate_ref(session, prefix, office_year(now, tz)), status="open",
        citizen_email=(citizen.email if citizen else "")[:320],
        citizen_name=(citizen.name if citizen else "")[:200],
        language=classification.language, subject=mail.subject[:500],
        investigator_email=investigator.email if investigator else None,
        investigator_name=investigator.name if investigator else None,
        investigator_phone=investigator.phone if investigator else None,
        team=decision.team or (investigator.team if investigator else None),
        outcome=decision.outcome, priority=decision.priority, tags=list(decision.tags),
        flags=list(decision.flags), created_at=now, updated_at=now,
        also_sent_to=list(decision.match.also_sent_to), duplicate_of_id=decision.match.duplicate_of_id,
    )
    # Inserted with its first message, once `MatchingStage.complete` filled it in (`write_rows`).
    if case.investigator_email:
        store.note_assignment(session, case.investigator_email, now)
    return case


def apply_decision(session: Session, mail: Mail, decision: Decision,
                   classification: Classification, *, raw: bytes, sha256: str,
                   source: Source | None, prefix: str, now: datetime, tz: str) -> tuple[Case | None, Message]:
    """Record everything but the replies; returns the case (if any) and the message row.

    A new case and the message are not inserted here: the caller completes their columns
    (`MatchingStage.complete`) and inserts them with `write_rows`, once each.
    """
    store.store_raw(session, sha256, raw)
    case: Case | None = None
    if decision.open_case:
        case = open_case(session, mail, decision, classification, prefix=prefix, now=now, tz=tz)
        store.add_event(session, "case_opened", case=case, investigator=case.investigator_email,
                        outcome=decision.outcome, team=case.team, reasons=list(decision.reasons))
        # `decision.notify`: the staff notices are queued with the replies, once the case has
        # its id (`staff_notice.queue_notices`, which records `staff_notified`).
    elif decision.match.case_id is not None:
        case = session.get(Case, decision.match.case_id)
        if case is not None and decision.flags:
            case.flags = sorted(set(case.flags) | set(decision.flags))
        if case is not None and decision.match.also_sent_to:
            case.also_sent_to = sorted(set(case.also_sent_to) | set(decision.match.also_sent_to))
        if case is not None:
            case.updated_at = now
    if case is not None and speaks_for_citizen(mail, classification, decision.match, case.citizen_email):
        note_contact_preference(case, classification)
    message = message_row(mail, kind=str(decision.kind), sha256=sha256, received_at=now,
                          classification=classification)
    add_receipt(session, source, message, "processed")
    store.add_event(session, "message_received", case=case, message=message,
                    kind=str(decision.kind), reasons=list(decision.reasons), flags=list(decision.flags),
                    evidence=[{"method": e.method, "detail": e.detail, "score": e.score}
                              for e in decision.match.evidence])
    return case, message


def write_rows(session: Session, case: Case | None, message: Message) -> None:
    """Insert a case opened by this message, then the message: one statement each."""
    if case is not None and case.id is None:
        insert_object(session, case)
    message.case_id = case.id if case is not None else None
    insert_object(session, message)


QUARANTINE_SUBJECT_MAX = 300  # characters of a quarantined mail's subject kept for staff


def quarantine(session: Session, raw: bytes, sha256: str, source: Source | None, reason: str,
               *, now: datetime, header: Mail | None = None) -> Message:
    """Keep an unreadable message with the reason; staff see it in the digest. The one place
    that makes quarantine rows.

    `header`: the mail's header block, when the caller could read it (`unreadable.header_for_staff`;
    never after a reading that was cut off): its sender and subject are kept, cleaned (one
    line, no control characters, bounded), so staff know whose mail it is and can act on it.
    Retention blanks them with the rest after `retention.quarantine_days`.

    Recorded by content hash only (no Message-ID): moved back to the inbox after a fix,
    the same mail is then processed again instead of being taken for a duplicate.
    """
    store.store_raw(session, sha256, raw)
    message = Message(direction="in", kind=str(Kind.UNREADABLE), message_id="", sha256=sha256,
                      size=len(raw), received_at=now, **_header_columns(header))
    message.quarantine_reason = reason[:4000]
    session.add(message)
    add_receipt(session, source, message, "quarantined")
    store.add_event(session, "quarantined", message=message, reason=reason[:500])
    return message


def _header_columns(header: Mail | None) -> dict[str, str]:
    """Sender and subject of a quarantined mail's header block, safe to show: an address only
    when it is a valid one, names and subject on one line and bounded."""
    if header is None:
        return {}
    sender = header.from_
    email = sender.email if sender is not None and sanitize.is_valid_address(sender.email) else ""
    return {"from_email": email[:320],
            "from_name": sanitize.truncate(sanitize.clean_text(sender.name), 200) if sender is not None else "",
            "subject": sanitize.truncate(sanitize.clean_text(header.subject), QUARANTINE_SUBJECT_MAX)}
