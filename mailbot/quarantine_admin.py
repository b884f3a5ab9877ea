"""Staff act on quarantined mail: `mailbot quarantine list` and `mailbot quarantine retry`.

A quarantined mail is a `Message` row with a `quarantine_reason` (`record.quarantine`), its
bytes in `raw_mail`, and its IMAP copy in the quarantine folder of the mailbox its receipt
names. Its state is read from the database alone (no IMAP):

- ``quarantined``: in the quarantine folder, waiting for staff;
- ``retried``: staff moved it back to the inbox (a `quarantine_retried` event) and no poll
  has quarantined it again since: the next poll reads it;
- ``resolved``: read since: an incoming message with the same bytes that is no longer
  unreadable (a case, a reply), as any mail;
- ``emptied``: retention deleted its bytes (`retention.quarantine_days`); the IMAP copy goes
  with the same retention run (`retention.imap_folders`).

A retried mail is read as new mail: it has a new UID (so no receipt), and the identity check
ignores quarantine rows (`pipeline.Intake.process`). The quarantine row stays as the record of
what happened (reason, dates, the `undeliverable` notice already sent, retention of its own);
the reading is a message row of its own, linked to it by their bytes. When the mail has no
Message-ID both would hold the same identity, and the quarantine row gives it up in the
reading's transaction (`store.free_quarantine_identity`). Mail that is still unreadable goes
back to quarantine on the same row, without a second notice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .config import ImapSettings
from .db import Case, Event, Message, RawMail, Receipt, as_utc, utc_iso
from .deferred import Ref
from .errors import FetchError
from .fetch import mailbox_name
from .model import Kind
from .locks import raw_message_id
from .store import add_event, content_sha

QUARANTINED, RETRIED, RESOLVED, EMPTIED = "quarantined", "retried", "resolved", "emptied"
RETRIED_EVENT = "quarantine_retried"
HEADER_READ = 65536  # bytes of a stored mail read for its Message-ID


@dataclass(frozen=True)
class Quarantined:
    """One quarantined mail as staff see it."""

    id: int
    received_at: datetime
    mailboxes: tuple[str, ...]  # the mailboxes it was quarantined from, latest first
    from_email: str
    from_name: str
    subject: str
    size: int
    reason: str
    case_id: int | None
    case_ref: str | None
    sha256: str
    state: str
    retried_at: datetime | None = None
    retried_by: str | None = None
    resolved_message_id: int | None = None
    resolved_case_ref: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For `--json`: times in UTC."""
        return {"id": self.id, "received_at": utc_iso(self.received_at),
                "mailbox": self.mailboxes[0] if self.mailboxes else None,
                "from_email": self.from_email, "from_name": self.from_name, "subject": self.subject,
                "size": self.size, "reason": self.reason, "case_ref": self.case_ref, "state": self.state,
                "retried_at": utc_iso(self.retried_at), "retried_by": self.retried_by,
                "resolved_message_id": self.resolved_message_id, "resolved_case_ref": self.resolved_case_ref}


def state_of(*, raw_kept: bool, resolved: bool, retried_at: datetime | None,
             last_quarantined_at: datetime | None) -> str:
    """Where a quarantined mail stands (see the module docstring). Pure."""
    if resolved:
        return RESOLVED
    if not raw_kept:
        return EMPTIED
    if retried_at is not None and (last_quarantined_at is None or retried_at > last_quarantined_at):
        return RETRIED
    return QUARANTINED


# -- reading ---------------------------------------------------------------------------------

def find(session: Session, *, ids: Sequence[int] | None = None, since: datetime | None = None,
         reason: str | None = None, limit: int | None = None) -> list[Quarantined]:
    """Quarantined mail, newest first: `ids` only, or received from `since`, whose reason
    contains `reason` (any case), at most `limit`."""
    query = select(Message, Case.ref).outerjoin(Case, Message.case_id == Case.id).where(
        Message.direction == "in", Message.quarantine_reason.is_not(None))
    if ids is not None:
        query = query.where(Message.id.in_(list(ids)))
    if since is not None:
        query = query.where(Message.received_at >= since)
    if reason:
        query = query.where(func.lower(Message.quarantine_reason).contains(reason.lower(), autoescape=True))
    rows = session.execute(query.order_by(Message.received_at.desc(), Message.id.desc()).limit(limit)).all()
    messages = [message for message, _ in rows]
    facts = _Facts.read(session, messages)
    return [facts.item(message, ref) for message, ref in rows]


@dataclass(frozen=True)
class _Facts:
    """What the state of a page of quarantined mail depends on, a few statements for all."""

    receipts: dict[int, list[tuple[str, str, datetime]]]  # id → (mailbox, disposition, at), latest first
    retried: dict[int, tuple[datetime, str]]  # id → (at, by) of the latest retry
    readings: dict[str, tuple[int, str | None]]  # sha256 → (message id, case ref) read since
    kept: set[str]  # sha256 of raw mail still stored

    @classmethod
    def read(cls, session: Session, messages: list[Message]) -> _Facts:
        ids = [m.id for m in messages]
        shas = sorted({m.sha256 for m in messages})
        receipts: dict[int, list[tuple[str, str, datetime]]] = {}
        for pk, mailbox, disposition, at in session.execute(
                select(Receipt.message_pk, Receipt.mailbox, Receipt.disposition, Receipt.created_at)
                .where(Receipt.message_pk.in_(ids)).order_by(Receipt.created_at.desc(), Receipt.id.desc())):
            if pk is not None:  # the query says so
                receipts.setdefault(pk, []).append((mailbox, disposition, as_utc(at)))
        retried: dict[int, tuple[datetime, str]] = {}
        for pk, at, detail in session.execute(
                select(Event.message_pk, Event.created_at, Event.detail)
                .where(Event.type == RETRIED_EVENT, Event.message_pk.in_(ids)).order_by(Event.id)):
            retried[pk] = (as_utc(at), str((detail or {}).get("by", "")))
        readings: dict[str, tuple[int, str | None]] = {}
        for message_id, sha, ref in session.execute(
                select(Message.id, Message.sha256, Case.ref).outerjoin(Case, Message.case_id == Case.id)
                .where(Message.direction == "in", Message.sha256.in_(shas),
                       Message.kind != str(Kind.UNREADABLE)).order_by(Message.id)):
            readings.setdefault(sha, (message_id, ref))
        kept = set(session.execute(select(RawMail.sha256).where(RawMail.sha256.in_(shas))).scalars())
        return cls(receipts, retried, readings, kept)

    def item(self, message: Message, case_ref: str | None) -> Quarantined:
        receipts = self.receipts.get(message.id, [])
        quarantined_at = [at for _, disposition, at in receipts if disposition == "quarantined"]
        retried_at, retried_by = self.retried.get(message.id, (None, None))
        reading = self.readings.get(message.sha256)
        state = state_of(raw_kept=message.sha256 in self.kept, resolved=reading is not None,
                         retried_at=retried_at, last_quarantined_at=quarantined_at[0] if quarantined_at else None)
        mailboxes = tuple(dict.fromkeys(mailbox for mailbox, disposition, _ in receipts if disposition == "quarantined"))
        return Quarantined(
            id=message.id, received_at=as_utc(message.received_at), mailboxes=mailboxes,
            from_email=message.from_email, from_name=message.from_name, subject=message.subject,
            size=message.size, reason=message.quarantine_reason or "", case_id=message.case_id,
            case_ref=case_ref, sha256=message.sha256, state=state, retried_at=retried_at, retried_by=retried_by,
            resolved_message_id=reading[0] if reading else None, resolved_case_ref=reading[1] if reading else None)


# -- retrying --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    message_pk: int
    done: bool
    text: str  # done: what was (or would be) moved where; refused: why, naming the mail


def refusal(item: Quarantined, mailboxes: dict[str, ImapSettings]) -> str | None:
    """Why `item` cannot be moved back to its inbox, or None. Pure."""
    if item.state == RESOLVED:
        on = f" on case {item.resolved_case_ref}" if item.resolved_case_ref else ""
        return f"already read again (message {item.resolved_message_id}{on})"
    if item.state == EMPTIED:
        return ("its bytes were emptied by retention (retention.quarantine_days): there is no copy "
                "to recognise it by")
    if item.state == RETRIED:
        return "already moved back to the inbox: the next poll reads it"
    if not item.mailboxes:
        return "it did not come from a mailbox (a file given to the robot): process the file again"
    if not any(name in mailboxes for name in item.mailboxes):
        return (f"it came from {item.mailboxes[0]}, which is no mailbox of config.yaml"
                if not item.mailboxes[0].startswith("import:")
                else f"it was imported ({item.mailboxes[0]}), not polled: import it again")
    return None


_SEARCHABLE = re.compile(r"^[\x21-\x7e]+$")


def searchable_message_id(head: bytes) -> str | None:
    """The Message-ID of a mail's header block, bare, when an IMAP SEARCH can take it as it is
    (printable ASCII, no quote or backslash); else None (the mail is then found by size). Pure."""
    found = raw_message_id(head)
    if found is None:
        return None
    value = found.decode("ascii", "replace")
    return value if _SEARCHABLE.match(value) and '"' not in value and "\\" not in value else None


class Folders(Protocol):
    """What retry needs of one IMAP account (`fetch.ImapFolders`)."""

    def select(self, folder: str) -> bool: ...
    def search_copies(self, message_id: str | None, size: int) -> list[int]: ...
    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]: ...
    def move(self, uids: Sequence[int], folder: str) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Wanted:
    item: Quarantined
    message_id: str | None


def retry(sessions: sessionmaker, mailboxes: Iterable[ImapSettings], ids: Sequence[int] | None, *,
          dry_run: bool, by: str, open_folders: Callable[[ImapSettings, bool], Folders]) -> list[Outcome]:
    """Move each quarantined mail of `ids` (None: every one still in quarantine) from the
    quarantine folder of its mailbox back to that mailbox's inbox, with an event naming `by`.
    The copy is found by Message-ID (else size) and moved only when its bytes are the stored
    ones. Read, then IMAP, then write: no transaction is held open over the network.
    `dry_run`: the folders are only examined, nothing is moved or recorded."""
    configured = {mailbox_name(imap): imap for imap in mailboxes}
    outcomes: dict[int, Outcome] = {}
    wanted: dict[str, list[_Wanted]] = {}
    with sessions() as session:
        items = find(session, ids=ids)
        if ids is None:
            items = [item for item in items if item.state == QUARANTINED and refusal(item, configured) is None]
        found = {item.id for item in items}
        for missing in [i for i in dict.fromkeys(ids or ()) if i not in found]:
            outcomes[missing] = Outcome(missing, False, f"no quarantined mail {missing}")
        for item in items:
            refused = refusal(item, configured)
            if refused is not None:
                outcomes[item.id] = Outcome(item.id, False, f"quarantined mail {item.id}: {refused}")
                continue
            name = next(n for n in item.mailboxes if n in configured)
            head = session.execute(select(func.substr(RawMail.data, 1, HEADER_READ))
                                   .where(RawMail.sha256 == item.sha256)).scalar() or b""
            wanted.setdefault(name, []).append(_Wanted(item, searchable_message_id(bytes(head))))
    moved: list[tuple[Quarantined, str, int]] = []
    for name, group in wanted.items():
        for item, outcome, copies in _retry_in(configured[name], group, dry_run, open_folders):
            outcomes[item.id] = outcome
            if copies and not dry_run:
                moved.append((item, name, copies))
    if moved:
        with sessions.begin() as session:
            for item, name, copies in moved:
                add_event(session, RETRIED_EVENT, message=Ref(item.id),
                          case=Ref(item.case_id) if item.case_id is not None else None,
                          by=by, mailbox=name, copies=copies)
    order = list(dict.fromkeys(ids)) if ids is not None else [item.id for item in items]
    return [outcomes[i] for i in order if i in outcomes]


def _retry_in(imap: ImapSettings, group: list[_Wanted], dry_run: bool,
              open_folders: Callable[[ImapSettings, bool], Folders]) -> list[tuple[Quarantined, Outcome, int]]:
    """The mails of one mailbox: (item, outcome, copies moved) each."""
    where = f"{imap.quarantine_folder!r} of {mailbox_name(imap)}"
    try:
        account = open_folders(imap, dry_run)
    except FetchError as err:
        return [(w.item, Outcome(w.item.id, False, f"quarantined mail {w.item.id}: {err}"), 0) for w in group]
    done = []
    try:
        if not account.select(imap.quarantine_folder):
            return [(w.item, Outcome(w.item.id, False, f"quarantined mail {w.item.id}: no folder {where}"), 0)
                    for w in group]
        for w in group:
            try:
                uids = same_mail(account, w.item.sha256, account.search_copies(w.message_id, w.item.size))
                if not uids:
                    done.append((w.item, Outcome(w.item.id, False, (
                        f"quarantined mail {w.item.id}: no copy with its content in {where} "
                        "(moved or deleted by hand?)")), 0))
                    continue
                if not dry_run:
                    account.move(uids, imap.folder)
            except FetchError as err:
                done.append((w.item, Outcome(w.item.id, False, f"quarantined mail {w.item.id}: {err}"), 0))
                continue
            copies = f"{len(uids)} cop{'y' if len(uids) == 1 else 'ies'}"
            text = (f"would move {copies} from {where} to {imap.folder!r}" if dry_run else
                    f"moved {copies} from {where} to {imap.folder!r}: the next poll reads it again")
            done.append((w.item, Outcome(w.item.id, True, f"{w.item.id}: {text}"), len(uids)))
    finally:
        account.close()
    return done


def same_mail(account: Folders, sha256: str, candidates: Sequence[int]) -> list[int]:
    """Of `candidates`, the mail whose bytes are those stored (content hash), read one at a
    time: only the quarantined mail itself is ever moved."""
    return [uid for uid in candidates
            for raw in account.bodies([uid]).values() if content_sha(raw) == sha256]
