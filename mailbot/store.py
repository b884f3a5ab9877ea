"""Queries over the tables in `db`: the only place that speaks SQL to the rest of mailbot."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Text, bindparam, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from . import deferred
from .db import Case, CaseSequence, Event, Message, RawMail, Receipt, as_utc, table_of, utcnow
from .db_statements import per_transaction, run
from .import_sources import header_end
from .locks import lock_case_opening


def format_ref(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:06d}"


def allocate_ref(session: Session, prefix: str, year: int) -> str:
    """Next reference for the year. Gap-free: the counter rolls back with the transaction,
    and the row lock taken by UPDATE serialises concurrent workers (after the case-opening
    lock, which is always taken first: `locks.lock_case_opening`)."""
    lock_case_opening(session)
    key = {"b_prefix": prefix, "b_year": year}
    number = run(session, _BUMP, key).scalar_one_or_none()
    if number is None:  # the year's first case: create the counter (once, race-free)
        run(session, _insert_for(session)(CaseSequence).values(prefix=prefix, year=year, last_number=0)
                        .on_conflict_do_nothing())
        number = run(session, _BUMP, key).scalar_one()
    return format_ref(prefix, year, number)


_BUMP = (update(CaseSequence)
         .where(CaseSequence.prefix == bindparam("b_prefix"), CaseSequence.year == bindparam("b_year"))
         .values(last_number=CaseSequence.last_number + 1)
         .returning(CaseSequence.last_number))


def _insert_for(session: Session):  # type: ignore[no-untyped-def]
    """INSERT with the dialect's ON CONFLICT clause."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def receipt(session: Session, mailbox: str, uidvalidity: int, uid: int) -> Receipt | None:
    return session.execute(
        select(Receipt).where(Receipt.mailbox == mailbox, Receipt.uidvalidity == uidvalidity,
                              Receipt.uid == uid)
    ).scalar_one_or_none()


def receipts_for(session: Session, mailbox: str, uidvalidity: int,
                 uids: Sequence[int]) -> dict[int, Receipt]:
    rows = session.execute(
        select(Receipt).where(Receipt.mailbox == mailbox, Receipt.uidvalidity == uidvalidity,
                              Receipt.uid.in_(list(uids)))
    ).scalars()
    return {row.uid: row for row in rows}


def unmoved_receipts(session: Session, mailbox: str, uidvalidity: int) -> list[Receipt]:
    return list(session.execute(
        select(Receipt).where(Receipt.mailbox == mailbox, Receipt.uidvalidity == uidvalidity,
                              Receipt.moved.is_(False))
    ).scalars())


def mark_moved(session: Session, receipt_ids: Iterable[int]) -> None:
    ids = list(receipt_ids)
    if ids:
        session.execute(update(Receipt).where(Receipt.id.in_(ids)).values(moved=True))


def incoming_by_identity(session: Session, message_id: str, sha256: str, from_email: str,
                         raw: bytes | None = None) -> Row[tuple[int, str, str]] | None:
    """(id, kind, sha256) of a message we already have: the same bytes; or the same
    Message-ID from the same sender with the same content (`body_digest`): a mail the MTA
    delivered twice, or to two of our mailboxes, differs only in its trace headers. A web
    form or scan-to-mail device that reuses its Message-ID sends another citizen's mail,
    with other content: a mail of its own. Without `raw`, the content is not compared."""
    if not message_id:
        return run(session, _BY_SHA, {"sha256": sha256}).first()
    same = run(session, _BY_MESSAGE_ID, {"message_id": message_id, "sha256": sha256}).first()
    if same is not None:
        return same
    copies = run(session, _BY_SENDER, {"message_id": message_id, "from_email": from_email}).all()
    if raw is None:
        return copies[0] if copies else None
    content = body_digest(raw)
    return next((copy for copy in copies if _stored_body_digest(session, copy.sha256) == content), None)


def free_quarantine_identity(session: Session, quarantined_id: int) -> None:
    """A quarantined mail is read after all (moved back to the inbox once the cause was
    fixed): its quarantine row gives up the identity the reading is recorded under. It is
    known by content only (Message-ID "", `record.quarantine`), which is the identity of
    the reading too when the mail has no Message-ID (unique: `uq_message_identity`). It
    keeps its reason, dates and notice under a pseudonymous id ("h:", never personal data,
    never a real Message-ID, as `privacy` hashes them); retention finds it by content."""
    marker = "h:" + hashlib.sha256(f"quarantined:{quarantined_id}".encode()).hexdigest()[:40]
    run(session, update(Message).where(Message.id == quarantined_id).values(message_id=marker))


def content_sha(raw: bytes) -> str:
    """The content hash a message is known by (`Message.sha256`, `RawMail`): of its bytes
    with CRLF line ends, the form IMAP delivers, so a copy with LF ends (from an mbox, a
    Maildir file, a tool) is the same mail. Mail from IMAP hashes as its raw bytes."""
    bare = raw.count(b"\n") != raw.count(b"\r\n")  # two C scans; no copy for IMAP's CRLF mail
    return hashlib.sha256(_BARE_LF.sub(b"\r\n", raw) if bare else raw).hexdigest()


_BARE_LF = re.compile(rb"(?<!\r)\n")


def body_digest(raw: bytes) -> str:
    """What "the same mail" means for two copies with one Message-ID: the bytes after the
    header block (the text and every attachment), whatever the line ends and trailing
    blank lines (an mbox copy has LF and a separator line, an IMAP copy CRLF)."""
    body = raw[header_end(raw):].replace(b"\r\n", b"\n").rstrip(b"\n")
    return hashlib.sha256(body).hexdigest()


def _stored_body_digest(session: Session, sha256: str) -> str | None:
    """`body_digest` of a message we have, from its raw bytes (None when they are gone)."""
    data = per_transaction(session, _RAW_PENDING).get(sha256)  # stored in this transaction
    if data is None:
        data = run(session, _RAW_DATA, {"sha256": sha256}, flush=False).scalar()
    return body_digest(data) if data is not None else None


_INCOMING = select(Message.id, Message.kind, Message.sha256).where(Message.direction == "in")
_BY_MESSAGE_ID = _INCOMING.where(Message.message_id == bindparam("message_id"),
                                 Message.sha256 == bindparam("sha256")).limit(1)
# A web form that reuses one Message-ID has many: the content is compared with the latest.
SAME_ID_COMPARED = 20
_BY_SENDER = (_INCOMING.where(Message.message_id == bindparam("message_id"),
                              Message.from_email == bindparam("from_email"))
              .order_by(Message.id.desc()).limit(SAME_ID_COMPARED))
# A quarantined mail read again after a fix has two rows with these bytes: the readable one first.
_BY_SHA = (_INCOMING.where(Message.sha256 == bindparam("sha256"))
           .order_by(Message.kind == "unreadable", Message.id).limit(1))
_RAW_DATA = select(RawMail.data).where(RawMail.sha256 == bindparam("sha256"))


RAW_HELD_BYTES = 8 * 1024 * 1024  # raw mail kept for the bulk insert at commit, per transaction


def store_raw(session: Session, sha256: str, data: bytes) -> None:
    """Keep the bytes once per content hash: inserted unless present, in bulk at commit
    (nothing reads them back in the transaction that stores them). Past `RAW_HELD_BYTES`
    in one transaction they are inserted at once, so an import's batch of large mails
    does not stay in memory until its commit."""
    statement = _raw_insert(session.get_bind().dialect.name)
    row = {"sha256": sha256, "data": data}
    held = per_transaction(session, _RAW_HELD)
    total = held.get("bytes", 0) + len(data)
    if total > RAW_HELD_BYTES:
        run(session, statement, row, flush=False)
        return
    held["bytes"] = total
    deferred.add(session, table_of(RawMail), row, statement=statement)
    per_transaction(session, _RAW_PENDING)[sha256] = data  # the identity check may compare it


_RAW_HELD = "mailbot.raw_held"  # this transaction's bytes waiting in `deferred`
_RAW_PENDING = "mailbot.raw_pending"  # sha256 → those bytes


@lru_cache(maxsize=4)
def _raw_insert(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(RawMail).on_conflict_do_nothing()


def case_by_ref(session: Session, ref: str) -> Case | None:
    return session.execute(select(Case).where(Case.ref == ref)).scalar_one_or_none()


def cases_by_refs(session: Session, refs: Iterable[str]) -> list[Case]:
    refs = list(refs)
    if not refs:
        return []
    return list(session.execute(select(Case).where(Case.ref.in_(refs))).scalars())


def case_ids_by_message_ids(session: Session, message_ids: Iterable[str]) -> list[tuple[str, int]]:
    """(Message-ID, case id) for known messages among `message_ids`, most recent first."""
    ids = [m for m in message_ids if m]
    if not ids:
        return []
    rows = session.execute(
        select(Message.message_id, Message.case_id)
        .where(Message.message_id.in_(ids), Message.case_id.is_not(None))
        .order_by(Message.id.desc())
    )
    return [(mid, cid) for mid, cid in rows if cid is not None]  # not None: the query says so


def outgoing_by_message_id(session: Session, message_id: str) -> Message | None:
    return session.execute(
        select(Message).where(Message.direction == "out", Message.message_id == message_id).limit(1)
    ).scalar_one_or_none()


def investigator_loads(session: Session, emails: Iterable[str]) -> dict[str, tuple[int, datetime | None]]:
    """Per investigator: (open cases, when last assigned), in one statement whose cost
    does not grow with the archive: open cases are counted through the (status,
    investigator) index, the last assignment is one index probe per person."""
    emails = tuple(emails)
    if not emails:
        return {}
    # Read once per transaction (a batch), then kept up to date by `note_assignment`:
    # counting open cases costs more as the open caseload grows.
    read = per_transaction(session, _LOADS)
    if emails not in read:
        row = run(session, _load_statement(emails)).one()
        counts, lasts = row[:len(emails)], row[len(emails):]
        read[emails] = {email: (int(count or 0), as_utc(last) if last else None)
                        for email, count, last in zip(emails, counts, lasts)}
    return dict(read[emails])


def note_assignment(session: Session, email: str, when: datetime) -> None:
    """A case was just assigned to `email` in this transaction: count it in the loads read."""
    for loads in per_transaction(session, _LOADS).values():
        if email in loads:
            count, last = loads[email]
            loads[email] = (count + 1, max(filter(None, (last, when))))


_LOADS = "mailbot.investigator_loads"  # this transaction's loads, per set of investigators


@lru_cache(maxsize=8)
def _load_statement(emails: tuple[str, ...]) -> Any:
    """Built once per set of investigators: constructing it costs more than running it."""
    open_counts = [select(func.count()).where(Case.status == "open", Case.investigator_email == email)
                   .scalar_subquery() for email in emails]
    last_assigned = [select(func.max(Case.created_at)).where(Case.investigator_email == email)
                     .scalar_subquery() for email in emails]
    return select(*open_counts, *last_assigned)


def add_event(session: Session, type_: str, *, case: deferred.HasId | None = None,
              message: deferred.HasId | None = None, **detail: object) -> None:
    """Add to the audit trail; written in bulk when the transaction commits (`deferred`)."""
    deferred.add(session, table_of(Event),
                 {"type": type_, "detail": dict(detail), "created_at": utcnow()},
                 ids={"case_id": case, "message_pk": message})


def list_cases(session: Session, *, status: str | None = None, citizen: str | None = None,
               flag: str | None = None, team: str | None = None, investigator: str | None = None,
               created_from: datetime | None = None, created_before: datetime | None = None,
               limit: int = 200, offset: int = 0, with_messages: bool = False) -> tuple[list[Case], int]:
    """`mailbot case list`: a page of the cases that pass every filter given, newest first,
    and how many pass them in all. `citizen`: a whole address is looked up in the index on
    the address; anything else is a case-insensitive part of the address or the name.
    `investigator` likewise, by address or a part of the name."""
    where = _case_filters(status=status, citizen=citizen, flag=flag, team=team, investigator=investigator,
                          created_from=created_from, created_before=created_before)
    query = (select(Case).where(*where).order_by(Case.created_at.desc(), Case.id.desc())
             .limit(limit).offset(offset))
    if with_messages:
        query = query.options(selectinload(Case.messages), selectinload(Case.duplicate_of))
    cases = list(session.execute(query).scalars())
    if len(cases) < limit and (cases or offset == 0):  # the whole rest is on this page: no count needed
        return cases, offset + len(cases)
    return cases, session.execute(select(func.count()).select_from(Case).where(*where)).scalar_one()


def _case_filters(*, status: str | None, citizen: str | None, flag: str | None, team: str | None,
                  investigator: str | None, created_from: datetime | None,
                  created_before: datetime | None) -> list[Any]:
    where: list[Any] = []
    if status:
        where.append(Case.status == status)
    if citizen:
        where.append(_person(citizen, Case.citizen_email, Case.citizen_name, stored_lower=True))
    if flag:  # flags is a JSON list of words: the quoted word in its text
        where.append(cast(Case.flags, Text).contains(f'"{flag}"', autoescape=True))
    if team:
        where.append(Case.team == team)
    if investigator:
        where.append(_person(investigator, Case.investigator_email, Case.investigator_name, stored_lower=False))
    if created_from is not None:
        where.append(Case.created_at >= created_from)
    if created_before is not None:
        where.append(Case.created_at < created_before)
    return where


def _person(value: str, address: Any, name: Any, *, stored_lower: bool) -> Any:
    """A whole address: equal to the stored one, through its index when the column is stored
    lower-cased (a citizen's: `forwards.make_address`; an investigator's comes from the rules
    as typed); else a case-insensitive part of the address or the name (a scan)."""
    wanted = value.strip().lower()
    if _WHOLE_ADDRESS.match(wanted):
        return address == wanted if stored_lower else func.lower(address) == wanted
    return or_(func.lower(address).contains(wanted, autoescape=True),
               func.lower(name).contains(wanted, autoescape=True))


_WHOLE_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


CLOSED = "closed"


def close_case(session: Session, case: Case, *, now: datetime, by: str, note: str = "") -> bool:
    """Close `case`: retention counts from `closed_at`. False, and nothing changes, when it
    already is closed. The event holds who closed it and the staff's own note, nothing
    copied from the case."""
    if case.status == CLOSED:
        return False
    previous = case.status
    case.status, case.closed_at, case.updated_at = CLOSED, now, now
    add_event(session, "case_closed", case=case, by=by, note=note, old=previous, new=CLOSED)
    return True


def close_open_cases(session: Session, case_ids: Sequence[int], *, now: datetime, by: str, note: str = "",
                     closed_at: Any = None) -> int:
    """`close_case` for many open cases at once (an import closes thousands): one UPDATE,
    the same events, written in bulk. Cases not open are left as they are; how many closed.
    `closed_at` (a value or an SQL expression on the case) is when they count as closed: now
    by default."""
    closed = list(session.execute(
        update(Case).where(Case.id.in_(list(case_ids)), Case.status == "open")
        .values(status=CLOSED, closed_at=now if closed_at is None else closed_at, updated_at=now).returning(Case.id)
        .execution_options(synchronize_session=False)).scalars())
    for case_id in closed:
        add_event(session, "case_closed", case=deferred.Ref(case_id), by=by, note=note, old="open", new=CLOSED)
    return len(closed)


def reopen_case(session: Session, case: Case, *, now: datetime, by: str, note: str = "") -> bool:
    """Open a closed case again (it leaves retention's reach); False when it is not closed."""
    if case.status != CLOSED:
        return False
    closed_at = case.closed_at
    case.status, case.closed_at, case.updated_at = "open", None, now
    add_event(session, "case_reopened", case=case, by=by, note=note, old=CLOSED, new="open",
              closed_at=closed_at.isoformat() if closed_at else None)
    return True

