"""Pseudonymising personal data: retention of closed cases and data-subject erasure.

What stays after pseudonymisation: the case reference, status, dates, language, team,
investigator (staff), outcome, flags, tags, services (`also_sent_to`), the kind, size and
dates of messages. What goes: the citizen's name and address (replaced by
`case-<id>@pseudonymised.invalid`), subjects, bodies, senders and recipients, forwarded
senders, raw mail, the MIME of replies, and event details other than a few technical keys.
Message-IDs are replaced by a hash, so the same mail fetched again is still recognised.

Every operation runs in one transaction; `dry_run` rolls it back and only reports counts.
The audit event of an erasure holds counts and a random request id, nothing personal.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from . import db
from .db import Case, Event, Message, Outbox, RawMail
from .store import add_event

PSEUDONYM_DOMAIN = "pseudonymised.invalid"
SAFE_EVENT_KEYS = frozenset({"kind", "outcome", "template", "team", "permanent", "attempts", "language",
                             "outbox_id", "investigator", "mailbox", "old", "new"})


@dataclass
class PurgeCounts:
    cases: int = 0
    messages: int = 0
    raw_mails: int = 0
    outbox: int = 0
    events: int = 0
    refs: list[str] = field(default_factory=list)

    def as_dict(self, *, with_refs: bool = True) -> dict:
        data = asdict(self)
        if not with_refs:
            data.pop("refs")
        return data


def pseudonym(case: Case) -> str:
    return f"case-{case.id}@{PSEUDONYM_DOMAIN}"


def is_pseudonymised(case: Case) -> bool:
    return case.citizen_email.endswith("@" + PSEUDONYM_DOMAIN)


def _hash_id(message_id: str) -> str:
    if not message_id or message_id.startswith("h:"):
        return message_id
    return "h:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:40]


class Scrubber:
    """Collects what one operation pseudonymises, then deletes the raw mail no one needs."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.counts = PurgeCounts()
        self._messages: set[int] = set()
        self._shas: set[str] = set()

    def case(self, case: Case) -> None:
        if case.ref not in self.counts.refs:
            self.counts.cases += 1
            self.counts.refs.append(case.ref)
        alias = pseudonym(case)
        case.citizen_email, case.citizen_name, case.subject = alias, "", ""
        case.citizen_name_key, case.match_text, case.co_recipients = "", "", []
        case.contact_phone = case.contact_email = None
        # Matching's blocking keys are words of the complaint.
        self.session.execute(delete(db.CaseKey).where(db.CaseKey.case_id == case.id))
        for message in self.session.execute(select(Message).where(Message.case_id == case.id)).scalars():
            self.message(message)
        for row in self.session.execute(select(Outbox).where(Outbox.case_id == case.id)).scalars():
            self.outbox(row, alias)
        self._events(Event.case_id == case.id)

    def message(self, message: Message) -> None:
        if message.id in self._messages:
            return
        self._messages.add(message.id)
        self.counts.messages += 1
        self._shas.add(message.sha256)
        message.from_email, message.from_name, message.subject, message.body_text = "", "", "", ""
        message.to_addrs, message.cc_addrs, message.references, message.in_reply_to = [], [], [], ""
        message.original_sender = message.original_subject = None
        message.details = {}
        message.message_id = _hash_id(message.message_id)
        self._events(Event.message_pk == message.id)

    def outbox(self, row: Outbox, alias: str) -> None:
        self.counts.outbox += 1
        row.recipient, row.mime = alias, b""
        if row.status in ("pending", "held"):
            row.status, row.last_error = "cancelled", "personal data erased"

    def _events(self, where) -> None:
        for event in self.session.execute(select(Event).where(where)).scalars():
            safe = {k: v for k, v in event.detail.items() if k in SAFE_EVENT_KEYS}
            if safe != event.detail:
                event.detail = safe
                self.counts.events += 1

    def delete_raw(self, shas: set[str] | None = None) -> None:
        """Raw mail whose every message has been scrubbed (copies may sit in other cases)."""
        for sha in sorted(self._shas if shas is None else shas):
            others = self.session.execute(select(Message.id).where(
                Message.sha256 == sha, Message.id.not_in(self._messages or {0})).limit(1)).first()
            if others is None and self.session.get(RawMail, sha) is not None:
                self.session.execute(delete(RawMail).where(RawMail.sha256 == sha))
                self.counts.raw_mails += 1


def erase(sessions: sessionmaker, email: str, *, dry_run: bool = False) -> PurgeCounts:
    """Pseudonymise everything about `email`: their cases, their messages, replies to them."""
    address = email.strip().lower()
    with sessions() as session:
        scrub = Scrubber(session)
        for case in session.execute(select(Case).where(Case.citizen_email == address)).scalars():
            scrub.case(case)
        for message in session.execute(select(Message).where(Message.from_email == address)).scalars():
            scrub.message(message)
        for row in session.execute(select(Outbox).where(Outbox.recipient == address)).scalars():
            scrub.outbox(row, f"erased@{PSEUDONYM_DOMAIN}")
        address_status = getattr(db, "AddressStatus", None)  # bounce memory (issue 6)
        if address_status is not None:
            session.execute(delete(address_status).where(address_status.email == address))
        scrub.delete_raw()
        if dry_run:
            session.rollback()
        else:
            add_event(session, "privacy_erase", request=uuid.uuid4().hex,
                      **scrub.counts.as_dict(with_refs=False))
            session.commit()
        return scrub.counts
