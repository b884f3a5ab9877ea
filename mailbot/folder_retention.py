"""Retention in the IMAP folders: the mail copies of purged data are deleted from the server.

The database purge (`retention`) leaves what identifies a purged mail: a pseudonymised
message keeps its Message-ID as a hash (`privacy._hash_id`) and its sha256, a scrubbed reply
keeps its outbox row and Message-ID, a digest's Message-ID names its day. So this step reads
the folders after the purge and deletes, in every mailbox (`settings.all_mailboxes`):

- processed folder: mail whose Message-ID is only known pseudonymised (no message still holds
  it in clear); mail without a Message-ID when every message with its bytes (sha256) is
  pseudonymised;
- quarantine folder: mail that arrived (INTERNALDATE) before `retention.quarantine_days`,
  unless a message with its bytes still holds personal data or came in since then;
- sent folder (if set): copies of replies whose outbox row was scrubbed (a closed case's, a
  caseless reply, an erasure's) and of digests older than `retention.digest_days`.

Nothing else is touched: mail the robot does not know stays. A folder that does not exist is
skipped. A mailbox that cannot be reached is an error in the report (the caller records a
`retention_failed` event): since the purge left its keys, the next run deletes what this one
could not, and mail purged before this step existed is caught up the same way.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import compat32

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .config import ImapSettings, Settings
from .db import Message, Outbox
from .errors import MailbotError
from .fetch import ImapFolders
from .parse import header_value, message_ids  # the Message-ID as the pipeline stored it
from .privacy import PSEUDONYM_DOMAIN, _hash_id, holds_personal_data

log = logging.getLogger("mailbot.retention")

BATCH = 500  # UIDs per FETCH and per database look-up
BODY_BYTES = 20 * 1024 * 1024  # whole mails fetched at once (at least one)
_DIGEST_ID = re.compile(r"^digest\.(\d{4}-\d{2}-\d{2})\.[^@]*@(.+)$")

SessionScope = Callable[[], AbstractContextManager[Session]]


@dataclass
class FolderReport:
    processed: int = 0  # mails deleted from the processed folders
    quarantine: int = 0
    sent: int = 0
    errors: list[str] = field(default_factory=list)  # one per mailbox that failed
    disabled: bool = False  # retention.imap_folders is off

    def as_dict(self) -> dict:
        return {"disabled": self.disabled, "processed_deleted": self.processed,
                "quarantine_deleted": self.quarantine, "sent_deleted": self.sent, "errors": list(self.errors)}

    def line(self, verb: str) -> str:
        if self.disabled:
            return "IMAP folders: not touched (retention.imap_folders is off)"
        text = (f"IMAP mails {verb} deleted: {self.processed} processed, {self.quarantine} quarantined, "
                f"{self.sent} sent copies")
        if self.errors:
            text += f"; FAILED, tried again at the next run: {'; '.join(self.errors)}"
        return text


def purge_folders(scope: SessionScope, settings: Settings, now: datetime, *, dry_run: bool = False,
                  open_account: Callable[..., ImapFolders] = ImapFolders) -> FolderReport:
    """Delete from every mailbox's folders the mail of purged data (see the module docstring).
    `scope()` gives a session for each look-up; a dry run only counts (folders read-only)."""
    report = FolderReport()
    if not settings.retention.imap_folders:
        report.disabled = True
        return report
    done: set[tuple[str, str]] = set()  # (account, folder): two mailboxes may share a folder
    for imap in settings.all_mailboxes:
        try:
            account = open_account(imap, readonly=dry_run)
        except MailbotError as err:
            _failed(report, imap, err)
            continue
        try:
            for kind, folder in _folders(imap):
                if (account.name, folder) in done:
                    continue
                if not account.select(folder):
                    log.info("retention: IMAP folder %r does not exist on %s: nothing to delete", folder, account.name)
                    done.add((account.name, folder))
                    continue
                doomed = list(_doomed(kind, account, scope, settings, now))
                account.delete(doomed)
                setattr(report, kind, getattr(report, kind) + len(doomed))
                done.add((account.name, folder))
                if doomed:
                    log.info("retention: %d mail(s) %s deleted from %r on %s", len(doomed),
                             "would be" if dry_run else "", folder, account.name)
        except MailbotError as err:
            _failed(report, imap, err)
        finally:
            account.close()
    return report


def _failed(report: FolderReport, imap: ImapSettings, err: MailbotError) -> None:
    message = f"{imap.username}@{imap.host}:{imap.port}: {err}"
    log.error("retention in the IMAP folders failed (tried again at the next run): %s", message)
    report.errors.append(message[:300])


def _folders(imap: ImapSettings) -> list[tuple[str, str]]:
    found = [("processed", imap.processed_folder), ("quarantine", imap.quarantine_folder)]
    return found + ([("sent", imap.sent_folder)] if imap.sent_folder else [])


def _doomed(kind: str, account: ImapFolders, scope: SessionScope, settings: Settings,
            now: datetime) -> Iterator[int]:
    if kind == "quarantine":
        before = now - timedelta(days=settings.retention.quarantine_days)
        uids = account.uids(before=before.date())
        for batch in _batches(uids):
            yield from _quarantine_doomed(account, batch, scope, before)
        return
    for batch in _batches(account.uids()):
        headers = account.message_ids(batch)
        ids = {uid: _message_id(header) for uid, (header, _) in headers.items()}
        with scope() as session:
            if kind == "sent":
                gone = _gone_replies(session, set(ids.values()) - {""}, settings, now)
                yield from (uid for uid, mid in ids.items() if mid in gone)
                continue
            gone = _gone_incoming(session, set(ids.values()) - {""})
            yield from (uid for uid, mid in ids.items() if mid and mid in gone)
            without = {uid: headers[uid][1] for uid, mid in ids.items() if not mid}
            candidates = _purged_sizes(session, set(without.values()))
        yield from _gone_by_content(account, [u for u, size in without.items() if size in candidates], scope)


def _batches(uids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(uids), BATCH):
        yield list(uids[start:start + BATCH])


def _message_id(header: bytes) -> str:
    """The Message-ID as `parse` stores it (first header, first id), '' when there is none."""
    msg = message_from_bytes(header, policy=compat32)
    values = [header_value(v) for k, v in msg.raw_items() if k.lower() == "message-id"]
    return next(iter(message_ids(values[0])), "") if values else ""


def _gone_incoming(session: Session, ids: set[str]) -> set[str]:
    """The Message-IDs among `ids` known only pseudonymised: hashed on an incoming message,
    and on none in clear (a copy of the same mail may still belong to an open case)."""
    if not ids:
        return set()
    hashed = {_hash_id(i): i for i in ids}
    incoming = Message.direction == "in"
    purged = set(session.execute(select(Message.message_id).where(
        incoming, Message.message_id.in_(list(hashed)))).scalars())
    kept = set(session.execute(select(Message.message_id).where(
        incoming, Message.message_id.in_(list(ids)))).scalars())
    return {hashed[h] for h in purged} - kept


def _purged_sizes(session: Session, sizes: set[int]) -> set[int]:
    """Sizes of pseudonymised incoming mail that had no Message-ID: only mail of such a size
    is fetched whole and compared by its bytes."""
    if not sizes:
        return set()
    return set(session.execute(select(Message.size).where(
        Message.direction == "in", Message.message_id == "", Message.size.in_(list(sizes)),
        ~holds_personal_data())).scalars())


def _gone_by_content(account: ImapFolders, uids: list[int], scope: SessionScope) -> Iterator[int]:
    """Of mail without a Message-ID: that whose bytes belong only to pseudonymised messages."""
    for chunk in _by_size(account, uids):
        shas = {uid: hashlib.sha256(raw).hexdigest() for uid, raw in account.bodies(chunk).items()}
        with scope() as session:
            known = _shas(session, set(shas.values()), Message.direction == "in")
            kept = _shas(session, set(shas.values()), Message.direction == "in", holds_personal_data())
        yield from (uid for uid, sha in shas.items() if sha in known and sha not in kept)


def _quarantine_doomed(account: ImapFolders, uids: list[int], scope: SessionScope,
                       before: datetime) -> Iterator[int]:
    """Old quarantined mail, unless a message with these bytes still holds personal data or
    came in after `before` (mail that waited in the inbox, or was delivered with an old date)."""
    for chunk in _by_size(account, uids):
        shas = {uid: hashlib.sha256(raw).hexdigest() for uid, raw in account.bodies(chunk).items()}
        with scope() as session:
            kept = _shas(session, set(shas.values()), Message.direction == "in",
                         or_(holds_personal_data(), Message.received_at >= before))
        yield from (uid for uid, sha in shas.items() if sha not in kept)


def _by_size(account: ImapFolders, uids: list[int]) -> Iterator[list[int]]:
    """`uids` in groups of at most BODY_BYTES (one mail alone when it is larger)."""
    chunk: list[int] = []
    total = 0
    for uid, size in sorted(account.sizes(uids).items()):
        if chunk and total + size > BODY_BYTES:
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += size
    if chunk:
        yield chunk


def _shas(session: Session, shas: set[str], *where: object) -> set[str]:
    if not shas:
        return set()
    return set(session.execute(select(Message.sha256).where(
        Message.sha256.in_(list(shas)), *where)).scalars())  # type: ignore[arg-type]


def _gone_replies(session: Session, ids: set[str], settings: Settings, now: datetime) -> set[str]:
    """Sent copies to delete: replies whose outbox row was scrubbed (its recipient is a
    pseudonym), and digests of a day before `retention.digest_days` (their row is deleted then)."""
    if not ids:
        return set()
    domain = settings.smtp.from_address.rpartition("@")[2].lower()
    last_day = (now - timedelta(days=settings.retention.digest_days)).date().isoformat()
    gone = set()
    for mid in ids:
        digest = _DIGEST_ID.match(mid)
        if digest and digest.group(2).lower() == domain and digest.group(1) < last_day:
            gone.add(mid)
    gone |= set(session.execute(select(Outbox.message_id).where(
        Outbox.message_id.in_(list(ids - gone)),
        and_(Outbox.recipient.like(f"%@{PSEUDONYM_DOMAIN}"), Outbox.template != "digest"))).scalars())
    return gone
