"""Pseudonymising personal data: retention of closed cases and data-subject erasure.

What stays after pseudonymisation: the case reference, status, dates, language, team,
investigator (staff), outcome, flags, tags, services (`also_sent_to`), the kind, size and
dates of messages. What goes: the citizen's name and address (replaced by
`case-<id>@pseudonymised.invalid`), subjects, bodies, senders and recipients, forwarded
senders, raw mail, the MIME and SMTP errors of replies, and event details other than a few
technical keys. Message-IDs are replaced by a hash, so the same mail fetched again is still
recognised.

An erasure finds the citizen's cases by the address on file, the contact address they asked
for, and the people they wrote with (co-recipients); it also scrubs every message from or
to the address, every reply to it, every event that names it (caseless ones too: SMTP
errors, staff actions on the outbox), the stored digest copies that name the address or
the erased cases (deleted: they are copies of staff mail, resent with `mailbot digest`),
and the address's bounce memory (`address_status`).

Every operation runs in one transaction; `dry_run` rolls it back and only reports counts
and the references of the cases it would pseudonymise.
The audit event of an erasure holds counts and a random request id, nothing personal.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sqlalchemy import Text, and_, cast, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from .db import AddressStatus, Case, CaseKey, Event, Message, Outbox, RawMail
from .store import add_event

PSEUDONYM_DOMAIN = "pseudonymised.invalid"
ERASED = f"erased@{PSEUDONYM_DOMAIN}"  # the recipient of a scrubbed reply that had no case
ERASED_NOTE = "personal data erased"
SAFE_EVENT_KEYS = frozenset({"kind", "outcome", "template", "team", "permanent", "attempts", "language",
                             "outbox_id", "investigator", "mailbox", "old", "new"})
WAITING = ("pending", "held")  # outbox rows not sent yet


@dataclass
class PurgeCounts:
    cases: int = 0
    messages: int = 0
    raw_mails: int = 0
    outbox: int = 0
    events: int = 0
    digests: int = 0  # stored digest copies deleted
    addresses: int = 0  # address_status rows deleted
    refs: list[str] = field(default_factory=list)

    def as_dict(self, *, with_refs: bool = True) -> dict:
        data = asdict(self)
        if not with_refs:
            data.pop("refs")
        return data

    def summary(self, *, dry_run: bool) -> str:
        """One line for the CLI: every count, the same for a dry run and a real one."""
        verb = "would be" if dry_run else "were"
        return (f"{self.cases} case(s), {self.messages} message(s), {self.outbox} outgoing mail(s), "
                f"{self.events} event(s) {verb} pseudonymised; {self.raw_mails} raw mail(s), "
                f"{self.digests} stored digest(s), {self.addresses} address status(es) {verb} deleted")

    def case_lines(self, per_line: int = 6) -> list[str]:
        """Every case reference, a few per line, for a dry run: it is how staff see which
        cases an address has before erasing them."""
        return [f"  {', '.join(self.refs[n:n + per_line])}" for n in range(0, len(self.refs), per_line)]


REFS_SHOWN = 10  # case references a summary line names before "… and N more"


def refs_text(refs: list[str], shown: int = REFS_SHOWN) -> str:
    """`VO-2026-000001, VO-2026-000002 … and 9,998 more`, or "-" for none."""
    if not refs:
        return "-"
    if len(refs) <= shown:
        return ", ".join(refs)
    return f"{', '.join(refs[:shown])} … and {len(refs) - shown:,} more"


def pseudonym(case: Case) -> str:
    return f"case-{case.id}@{PSEUDONYM_DOMAIN}"


def is_pseudonymised(case: Case) -> bool:
    return case.citizen_email.endswith("@" + PSEUDONYM_DOMAIN)


def _hash_id(message_id: str) -> str:
    if not message_id or message_id.startswith("h:"):
        return message_id
    return "h:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:40]


def _json_forms(text: str) -> set[str]:
    """`text` as it may appear inside stored JSON (non-ASCII escaped, or not)."""
    return {text, json.dumps(text)[1:-1]}


def _mentions(column, text: str, *, quoted: bool = False):  # type: ignore[no-untyped-def]
    """SQL: the column (JSON or text), lower-cased, contains `text` (already lower-case);
    `quoted`: as a whole string of a JSON list."""
    lowered = func.lower(cast(column, Text))
    forms = {f'"{form}"' if quoted else form for form in _json_forms(text)}
    return or_(*(lowered.contains(form, autoescape=True) for form in sorted(forms)))


class Scrubber:
    """Collects what one operation pseudonymises, then deletes the raw mail no one needs."""

    def __init__(self, session: Session, why: str = "retention") -> None:
        self.session = session
        self.why = why  # on the case's `case_pseudonymised` event: "retention" or "erasure"
        self.counts = PurgeCounts()
        self._messages: set[int] = set()
        self._outbox: set[int] = set()
        self._shas: set[str] = set()

    def case(self, case: Case) -> None:
        if case.ref not in self.counts.refs:
            self.counts.cases += 1
            self.counts.refs.append(case.ref)
        if not is_pseudonymised(case):  # when and why, for staff (no personal data in it)
            add_event(self.session, "case_pseudonymised", case=case, why=self.why)
        alias = pseudonym(case)
        case.citizen_email, case.citizen_name, case.subject = alias, "", ""
        case.citizen_name_key, case.match_text, case.co_recipients = "", "", []
        case.contact_phone = case.contact_email = None
        # Matching's blocking keys are words of the complaint.
        self.session.execute(delete(CaseKey).where(CaseKey.case_id == case.id))
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
        """A reply loses its recipient, MIME and SMTP error (which quotes the address); one not
        sent yet is cancelled. Its sent-message row goes with it."""
        if row.id in self._outbox:
            return
        self._outbox.add(row.id)
        self.counts.outbox += 1
        row.recipient, row.recipient_key, row.mime = alias, alias, b""
        if row.status in WAITING:
            row.status, row.last_error = "cancelled", ERASED_NOTE
        elif row.last_error is not None:
            row.last_error = ERASED_NOTE
        if row.message_pk is not None:
            sent = self.session.get(Message, row.message_pk)
            if sent is not None:
                self.message(sent)

    def strip_event(self, event: Event, keep: frozenset[str] = SAFE_EVENT_KEYS) -> None:
        safe = {k: v for k, v in event.detail.items() if k in keep}
        if safe != event.detail:
            event.detail = safe
            self.counts.events += 1

    def _events(self, where) -> None:  # type: ignore[no-untyped-def]
        for event in self.session.execute(select(Event).where(where)).scalars():
            self.strip_event(event)

    def events_naming(self, address: str) -> None:
        """Events that quote `address` anywhere, and caseless events about a scrubbed reply
        (`reply_failed` with the SMTP error, staff's release or retry with the recipient)."""
        forms = _json_forms(address)
        found = self.session.execute(select(Event).where(or_(
            _mentions(Event.detail, address), and_(Event.case_id.is_(None), Event.message_pk.is_(None))))
            .order_by(Event.id)).scalars()
        for event in found:
            text = json.dumps(event.detail, ensure_ascii=False).lower()
            if any(form in text for form in forms) or event.detail.get("outbox_id") in self._outbox:
                self.strip_event(event)

    def delete_digests(self, terms: Iterable[str]) -> None:
        """Delete stored digests (any status) whose text names one of `terms`."""
        wanted = [t.casefold() for t in terms if t]
        if not wanted:
            return
        pattern = re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(wanted)))
        rows = self.session.execute(select(Outbox.id, Outbox.mime).where(Outbox.template == "digest")).all()
        doomed = [row_id for row_id, mime in rows if pattern.search(digest_text(mime))]
        if doomed:
            self.session.execute(delete(Outbox).where(Outbox.id.in_(doomed)))
            self.counts.digests += len(doomed)

    def delete_raw(self, shas: set[str] | None = None) -> None:
        """Raw mail whose every message has been scrubbed, now or before (copies may sit in
        other cases)."""
        for sha in sorted(self._shas if shas is None else shas):
            others = self.session.execute(select(Message.id).where(
                Message.sha256 == sha, Message.id.not_in(self._messages or {0}), holds_personal_data())
                .limit(1)).first()
            if others is None and self.session.get(RawMail, sha) is not None:
                self.session.execute(delete(RawMail).where(RawMail.sha256 == sha))
                self.counts.raw_mails += 1


def holds_personal_data():  # type: ignore[no-untyped-def]
    """SQL: a message still holds something `Scrubber.message` blanks."""
    return or_(Message.from_email != "", Message.from_name != "", Message.subject != "",
               Message.body_text != "", Message.in_reply_to != "", Message.original_sender.is_not(None),
               and_(Message.message_id != "", Message.message_id.not_like("h:%")),
               *(cast(column, Text).not_in(("[]", "null")) for column in
                 (Message.to_addrs, Message.cc_addrs, Message.references)),
               cast(Message.details, Text).not_in(("{}", "null")))


def digest_text(mime: bytes) -> str:
    """The subject and every text part of a stored digest, decoded and HTML-unescaped,
    case-folded: what a reader sees, whatever the transfer encoding."""
    parts = [mime.decode("utf-8", "replace")]
    try:
        parsed = email.message_from_bytes(mime, policy=email.policy.default)
        parts.append(str(parsed.get("Subject", "")))
        for part in parsed.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True)
                if not isinstance(payload, bytes):
                    continue
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
                parts.append(html.unescape(text) if part.get_content_subtype() == "html" else text)
    except (LookupError, ValueError, TypeError):  # a damaged copy: the raw text above still counts
        pass
    return "\n".join(parts).casefold()


def _cases_of(address: str):  # type: ignore[no-untyped-def]
    """The address on file, the contact address asked for, or one of the co-recipients."""
    return or_(Case.citizen_email == address, func.lower(Case.contact_email) == address,
               _mentions(Case.co_recipients, address, quoted=True))


def _messages_of(address: str):  # type: ignore[no-untyped-def]
    return or_(Message.from_email == address, _mentions(Message.to_addrs, address, quoted=True),
               _mentions(Message.cc_addrs, address, quoted=True), _mentions(Message.original_sender, address))


def _full_name(name: str | None) -> str:
    """A display name worth looking for in digests: two words or more (not "Jan")."""
    name = " ".join((name or "").split())
    return name if len(name.split()) >= 2 else ""


_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def erasable(email: str) -> bool:
    """Whether `email` is an address `erase` may look for: a blank one would match every case
    and message without an address (web-form cases, quarantined mail)."""
    return bool(_ADDRESS.fullmatch(email.strip()))


def erase(sessions: sessionmaker, email: str, *, dry_run: bool = False) -> PurgeCounts:
    """Pseudonymise everything about `email`: their cases, their messages, replies to them,
    events and stored digests naming them, and what we know of the address."""
    if not erasable(email):
        raise ValueError(f"not an e-mail address: {email.strip()!r}")
    address = email.strip().lower()
    with sessions() as session:
        scrub = Scrubber(session, "erasure")
        terms = {address}
        # Locked (PostgreSQL; SQLite runs one writer at a time): a worker that has threaded
        # mail into one of the cases is waited for, and its rows are then scrubbed below; one
        # that read a case before and writes after waits for this commit, and what it adds
        # is left to retention's sweep of pseudonymised cases (`retention`).
        for case in session.execute(select(Case).where(_cases_of(address)).order_by(Case.id)
                                    .with_for_update()).scalars():
            terms.update((case.ref, _full_name(case.citizen_name)))
            scrub.case(case)
        for message in session.execute(select(Message).where(_messages_of(address)).order_by(Message.id)).scalars():
            if message.from_email == address:
                terms.add(_full_name(message.from_name))
            scrub.message(message)
        for row in session.execute(select(Outbox).where(Outbox.template != "digest", or_(
                Outbox.recipient == address, _mentions(Outbox.last_error, address))).order_by(Outbox.id)).scalars():
            if row.recipient == address:
                scrub.outbox(row, ERASED)
            elif row.last_error != ERASED_NOTE:  # an SMTP error of a reply to someone else quoting it
                row.last_error = ERASED_NOTE
                scrub.counts.outbox += 1
        scrub.events_naming(address)
        scrub.delete_digests(terms)
        scrub.counts.addresses = session.execute(
            delete(AddressStatus).where(AddressStatus.email == address)).rowcount or 0
        scrub.delete_raw()
        return _finish(session, scrub, dry_run)


def erase_case(sessions: sessionmaker, ref: str, *, dry_run: bool = False) -> PurgeCounts | None:
    """Pseudonymise one case and everything on it (its messages, replies, events, the digests
    naming its reference or the citizen's name): for a citizen with no address on file (a web
    form without one), whom `erase` cannot find. None when there is no such case."""
    with sessions() as session:
        case = session.execute(select(Case).where(func.upper(Case.ref) == ref.strip().upper())
                               .with_for_update()).scalar_one_or_none()  # locked as in `erase`
        if case is None:
            return None
        terms = {case.ref, _full_name(case.citizen_name)}
        scrub = Scrubber(session, "erasure")
        scrub.case(case)
        scrub.delete_digests(terms)
        scrub.delete_raw()
        return _finish(session, scrub, dry_run)


def _finish(session: Session, scrub: Scrubber, dry_run: bool) -> PurgeCounts:
    """Roll back a dry run; else record the erasure (counts only) and commit."""
    if dry_run:
        session.rollback()
    else:
        add_event(session, "privacy_erase", request=uuid.uuid4().hex, **scrub.counts.as_dict(with_refs=False))
        session.commit()
    return scrub.counts
