"""Retention: personal data has a limited life after a case is closed (DESIGN.md, privacy).

- cases closed more than `retention.closed_case_days` ago: pseudonymised (see `privacy`),
  their raw mail deleted;
- quarantined mail older than `retention.quarantine_days`: pseudonymised like a closed
  case's mail (raw bytes deleted unless another message still uses them; Message-ID,
  addresses, subject, body and details blanked; its events reduced to technical keys), and
  its reason cut to the category the statistics count (`reason_category`): an exception's
  text may quote the mail. The row stays with its kind, dates, size and case. The notice
  it got is a reply like any other: kept with its case, or as caseless data;
- sent digests older than `retention.digest_days`: deleted from the outbox;
- personal data that belongs to no case, older than `retention.caseless_days`: caseless
  messages in and out (automatic mail, subject-silenced mail, the undeliverable notice)
  pseudonymised and their raw mail deleted, caseless replies (not the digest) scrubbed,
  caseless events reduced to technical keys and counts, and `address_status` rows of
  addresses no case and no waiting reply uses deleted. Quarantined mail keeps its own
  period; replies still pending or held are never touched;
- the IMAP folders (`folder_retention`, unless `retention.imap_folders` is off): the mail
  copies of what is purged now or was before are deleted from every mailbox's processed,
  quarantine and sent folder. This runs after the database purge is committed; a mailbox
  that cannot be reached is told in the report, the log and a `retention_failed` event
  (`mailbot status`), and the next run deletes what this one could not;
- a sweep of pseudonymised cases (closed ones by retention, erased ones by `privacy`): a
  worker that read such a case before it was scrubbed may still thread mail into it, with
  the citizen's address, text and a reply to them. What holds personal data there is
  scrubbed like the case was (`sweep_pseudonymised`) once the retention run after it was
  stored has ended: the digest shows staff mail that comes in on a pseudonymised case
  before it goes. Each run reads only the rows added since the run before the previous
  one (by primary key, whose maxima every `retention_run` event records).

The cases a run pseudonymises are locked (PostgreSQL: `FOR UPDATE SKIP LOCKED`): a worker
that threads mail into one waits until the run has committed (its rows are then swept by a
later run), and a case a worker is writing to is left for the next run, which scrubs it
whole (waiting instead could deadlock with a batch holding several cases). SQLite runs one
write transaction at a time (BEGIN IMMEDIATE), a worker's reading included.

`dry_run` does all of it in a transaction that is rolled back, the folders opened read-only,
so the counts it reports are exactly what a real run would do.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from .config import Settings
from .db import AddressStatus, Case, Event, Message, Outbox, RawMail
from .folder_retention import FolderReport, purge_folders
from .privacy import (
    ERASED, PSEUDONYM_DOMAIN, REFS_SHOWN, SAFE_EVENT_KEYS, WAITING, PurgeCounts, Scrubber, holds_personal_data,
    refs_text,
)
from .store import add_event

# What an old caseless event keeps: technical keys and the counts of operational events
# (digest_queued, retention_run, privacy_erase, sent_copy_failed); reasons, errors and
# recipients go.
CASELESS_EVENT_KEYS = SAFE_EVENT_KEYS | frozenset(PurgeCounts.__dataclass_fields__) - {"refs"} | frozenset({
    "day", "recipients", "request", "quarantined_raw", "quarantined_messages", "caseless", "folder", "copied",
    "missing", "address_rejected", "watermark"}) | frozenset(
    f"{kind}_deleted" for kind in ("processed", "quarantine", "sent"))

# The error of a failed folder retention names the office's mailbox and the IMAP error, no
# citizen: it stays (with `mailbot status`) when caseless events are stripped.
IMAP_FAILURE = "IMAP folders: "

# What an old quarantine reason is cut to, by how the robot words its reasons (parse, prepare,
# pipeline, importer): the kind of failure, nothing the mail said.
REASON_CATEGORIES = (
    ("empty message", "empty message"),
    ("message of ", "too large"),
    ("message nested too deeply", "nested too deeply"),
    ("unreadable message", "unreadable message"),
    ("reading the message took longer", "reading took too long"),
    ("reading the message made the parser crash", "parser crashed"),
    ("processing failed", "processing failed"),
)
CATEGORIES = frozenset(category for _, category in REASON_CATEGORIES) | {"other"}


def reason_category(reason: str) -> str:
    """The category of a quarantine reason: "too large", "processing failed"…, or "other"."""
    if reason in CATEGORIES:
        return reason
    return next((category for start, category in REASON_CATEGORIES if reason.startswith(start)), "other")


@dataclass
class RetentionReport:
    closed_cases: PurgeCounts = field(default_factory=PurgeCounts)
    quarantined: int = 0  # raw mails of old quarantined messages deleted
    quarantined_messages: int = 0  # old quarantined messages pseudonymised
    digests: int = 0
    caseless: PurgeCounts = field(default_factory=PurgeCounts)
    folders: FolderReport = field(default_factory=FolderReport)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "closed_cases": self.closed_cases.as_dict(),
                "quarantined_raw_deleted": self.quarantined, "quarantined_blanked": self.quarantined_messages,
                "digests_deleted": self.digests,
                "caseless": self.caseless.as_dict(with_refs=False), "imap_folders": self.folders.as_dict()}

    def lines(self) -> list[str]:
        """What the CLI prints; a dry run says "would be" where a real run says "were"."""
        verb = "would be" if self.dry_run else "were"
        closed, caseless = self.closed_cases, self.caseless
        more = " (--json lists every one)" if len(closed.refs) > REFS_SHOWN else ""
        return [f"closed cases pseudonymised: {closed.cases} {verb} ({refs_text(closed.refs)}){more}",
                f"messages {verb} blanked: {closed.messages}; raw mails {verb} deleted: {closed.raw_mails}",
                f"quarantined mails {verb} blanked: {self.quarantined_messages}; "
                f"quarantined raw mails {verb} deleted: {self.quarantined}",
                f"old digests {verb} deleted: {self.digests}",
                self.folders.line(verb),
                f"caseless data {verb} purged: {caseless.messages} message(s), {caseless.outbox} outgoing "
                f"mail(s), {caseless.events} event(s), {caseless.raw_mails} raw mail(s), "
                f"{caseless.addresses} address status(es)"]


def run_retention(sessions: sessionmaker, settings: Settings, now: datetime, *,
                  dry_run: bool = False) -> RetentionReport:
    policy = settings.retention
    report = RetentionReport(dry_run=dry_run)
    with sessions() as session:
        scrub = Scrubber(session)
        watermark = _watermark(session)
        sweep_pseudonymised(session, scrub)
        closed_before = now - timedelta(days=policy.closed_case_days)
        # SQLite compiles no FOR UPDATE (and needs none); see the module docstring.
        cases = session.execute(select(Case).where(
            Case.status == "closed", Case.closed_at.is_not(None), Case.closed_at < closed_before,
            Case.citizen_email.not_like(f"%@{PSEUDONYM_DOMAIN}")).order_by(Case.id)
            .with_for_update(skip_locked=True)).scalars()
        for case in cases:
            scrub.case(case)
        scrub.delete_raw()
        report.closed_cases = scrub.counts

        quarantined = expire_quarantined(session, now - timedelta(days=policy.quarantine_days))
        report.quarantined, report.quarantined_messages = quarantined.raw_mails, quarantined.messages

        digest_before = now - timedelta(days=policy.digest_days)
        report.digests = session.execute(delete(Outbox).where(
            Outbox.template == "digest", Outbox.case_id.is_(None),
            Outbox.status.in_(("sent", "failed", "cancelled")), Outbox.created_at < digest_before)).rowcount or 0

        report.caseless = purge_caseless(session, now - timedelta(days=policy.caseless_days))

        if dry_run:
            # Read inside the purge: the folders are judged by what it pseudonymised.
            report.folders = purge_folders(lambda: nullcontext(session), settings, now, dry_run=True)
            session.rollback()
        else:
            counts, caseless = report.closed_cases, report.caseless
            add_event(session, "retention_run", cases=counts.cases, messages=counts.messages,
                      raw_mails=counts.raw_mails, quarantined_raw=report.quarantined,
                      quarantined_messages=report.quarantined_messages, digests=report.digests,
                      caseless={k: v for k, v in caseless.as_dict(with_refs=False).items() if v},
                      watermark=watermark)
            session.commit()
    if not dry_run:
        report.folders = purge_folders(sessions, settings, now)
        _record_folders(sessions, report.folders)
    return report


def _record_folders(sessions: sessionmaker, folders: FolderReport) -> None:
    """An event with what left the folders, and a `retention_failed` one for `mailbot status`
    when a mailbox could not be reached (the next `retention_run` ends it)."""
    deleted = {k: v for k, v in folders.as_dict().items() if k.endswith("_deleted") and v}
    if not deleted and not folders.errors:
        return
    with sessions.begin() as session:
        if deleted:
            add_event(session, "retention_folders", **deleted)
        if folders.errors:
            add_event(session, "retention_failed", error=(IMAP_FAILURE + "; ".join(folders.errors))[:500])


WATERMARK_TABLES = {"message": Message.id, "outbox": Outbox.id, "event": Event.id}


def _watermark(session: Session) -> dict[str, int]:
    """The highest id of every table the sweep reads, as this run starts."""
    return {name: session.execute(select(func.max(column))).scalar() or 0
            for name, column in WATERMARK_TABLES.items()}


def sweep_pseudonymised(session: Session, scrub: Scrubber) -> None:
    """Scrub what a pseudonymised case gained after its scrub (see the module docstring):
    messages holding personal data, replies to a real address, events with more than the
    technical keys, stored before the previous run ended and added since the run before it
    began (ids above its watermark; no such run: all). Without a previous run, nothing."""
    runs = list(session.execute(select(Event.created_at, Event.detail).where(Event.type == "retention_run")
                                .order_by(Event.id.desc()).limit(2)).all())
    if not runs:
        return
    until = runs[0].created_at
    since = runs[1].detail.get("watermark", {}) if len(runs) > 1 else {}
    if not isinstance(since, dict):
        since = {}
    above = {name: int(since.get(name) or 0) for name in WATERMARK_TABLES}
    pseudonymised = select(Case.id).where(Case.citizen_email.like(f"%@{PSEUDONYM_DOMAIN}"))
    messages = session.execute(select(Message).where(
        Message.id > above["message"], Message.case_id.in_(pseudonymised), Message.received_at < until,
        holds_personal_data()).order_by(Message.id)).scalars()
    for message in messages:
        scrub.message(message)
    replies = session.execute(select(Outbox, Case.citizen_email).join(Case, Case.id == Outbox.case_id).where(
        Outbox.id > above["outbox"], Case.citizen_email.like(f"%@{PSEUDONYM_DOMAIN}"),
        Outbox.template != "digest", Outbox.created_at < until,
        Outbox.recipient.not_like(f"%@{PSEUDONYM_DOMAIN}")).order_by(Outbox.id)).all()
    for row, alias in replies:
        scrub.outbox(row, alias)
    events = session.execute(select(Event).where(
        Event.id > above["event"], Event.case_id.in_(pseudonymised), Event.created_at < until)
        .order_by(Event.id)).scalars()
    for event in events:
        scrub.strip_event(event)


def expire_quarantined(session: Session, before: datetime) -> PurgeCounts:
    """Quarantined mail received before `before`: what still holds anything personal (a field
    `Scrubber.message` blanks, a reason not yet cut to its category) is pseudonymised, and the
    raw bytes go once no other message needs them."""
    scrub = Scrubber(session)
    old = (Message.quarantine_reason.is_not(None), Message.received_at < before)
    personal = list(session.execute(select(Message).where(
        *old, or_(holds_personal_data(), Message.quarantine_reason.not_in(CATEGORIES)))
        .order_by(Message.id)).scalars())
    for message in personal:
        scrub.message(message)
        message.quarantine_reason = reason_category(message.quarantine_reason or "")
        # Found by its content hash, never by Message-ID: none is kept, not even hashed, unless
        # another message with these bytes holds the empty one already (the identity is unique).
        if message.message_id and not _empty_id_taken(session, message):
            message.message_id = ""
    scrub.delete_raw()
    # Raw bytes kept before because another message used them, or of mail with nothing else.
    scrub.delete_raw(set(session.execute(select(Message.sha256).where(
        *old, exists().where(RawMail.sha256 == Message.sha256))).scalars()))
    return scrub.counts


def _empty_id_taken(session: Session, message: Message) -> bool:
    return session.execute(select(Message.id).where(
        Message.id != message.id, Message.direction == message.direction, Message.message_id == "",
        Message.sha256 == message.sha256).limit(1)).first() is not None


def purge_caseless(session: Session, before: datetime) -> PurgeCounts:
    """Personal data older than `before` that belongs to no case (see the module docstring)."""
    scrub = Scrubber(session)
    waiting = select(Outbox.message_pk).where(Outbox.status.in_(WAITING), Outbox.message_pk.is_not(None))
    messages = session.execute(select(Message).where(
        Message.case_id.is_(None), Message.quarantine_reason.is_(None), Message.received_at < before,
        Message.id.not_in(waiting), holds_personal_data()).order_by(Message.id)).scalars()
    for message in messages:
        scrub.message(message)
    replies = session.execute(select(Outbox).where(
        Outbox.case_id.is_(None), Outbox.template != "digest", Outbox.status.not_in(WAITING),
        Outbox.created_at < before, Outbox.recipient.not_like(f"%@{PSEUDONYM_DOMAIN}")).order_by(Outbox.id)).scalars()
    for row in replies:
        scrub.outbox(row, ERASED)
    events = session.execute(select(Event).where(
        Event.case_id.is_(None), Event.message_pk.is_(None), Event.created_at < before).order_by(Event.id)).scalars()
    for event in events:
        ours = event.type == "retention_failed" and str(event.detail.get("error", "")).startswith(IMAP_FAILURE)
        scrub.strip_event(event, CASELESS_EVENT_KEYS | {"error"} if ours else CASELESS_EVENT_KEYS)
    # An address still on a case (its bounce memory protects the case's replies) or with a
    # reply waiting stays; the rest is forgotten once no longer updated.
    forget = delete(AddressStatus).where(
        AddressStatus.updated_at < before, AddressStatus.email.not_in(select(Case.citizen_email)),
        AddressStatus.email.not_in(select(func.lower(Case.contact_email)).where(Case.contact_email.is_not(None))),
        AddressStatus.email.not_in(select(Outbox.recipient).where(Outbox.status.in_(WAITING))))
    scrub.counts.addresses = cast(CursorResult[Any], session.execute(forget)).rowcount or 0
    scrub.delete_raw()
    return scrub.counts
