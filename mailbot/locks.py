"""PostgreSQL advisory locks that make several workers decide as one after the other would:
the identity locks (mails sharing a Message-ID or a sender address, taken for a whole batch
from the raw headers) and the case-opening lock (a mail about to open a case). Each is
transaction-scoped and salted with the schema. SQLite needs none: BEGIN IMMEDIATE already
runs one write transaction at a time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from .db_statements import per_transaction, run
from .import_sources import header_end
from .parse import header_addresses  # the parser's own reading of an address field


def lock_identities(session: Session, raws: Iterable[bytes]) -> None:
    """Serialise, until commit, the identity check (`store.incoming_by_identity`) and the
    matching of mails that share a Message-ID or a sender address.

    The same complaint sent to two of our mailboxes arrives as two copies that differ in
    their trace headers; their pollers run at once, and neither would see the other's
    uncommitted row: two cases, two acknowledgments. The same citizen's two mails with
    Message-IDs of their own (a complaint sent twice, a follow-up to the other mailbox)
    are matched by address, with the same blind spot: two cases, no possible_duplicate.
    On PostgreSQL the second now waits for the first one's commit, then finds its copy or
    the citizen's case. The keys of the whole batch are taken in one sorted statement, so
    two batches never wait on each other crosswise. SQLite needs nothing: BEGIN IMMEDIATE
    already runs one write transaction at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({key for raw in raws for key in _identity_keys(raw)})
    if keys:
        run(session, _LOCK_IDENTITIES, {"keys": keys})


def lock_case_opening(session: Session) -> bool:
    """Serialise, until commit, the opening of cases across workers; True when the lock
    was taken now (the caller then matches again), False when it was held already or the
    database needs none.

    The identity locks order mails that share a Message-ID or a sender address; the same
    complaint can also reach two workers from two senders: a referral by another ombudsman
    service racing the citizen's own mail, or a citizen writing from home and from work at
    once. Each worker matched without the other's uncommitted case and opened its own. Now
    a worker about to open a case waits here until the other one commits, and matches
    again (`matching_stage`): it then finds that case. Opening a case already waited for the
    reference counter's row lock, held to commit, so this costs one more look-up a
    transaction. It is taken once a transaction (again inside a savepoint: rolling one back
    releases what was taken in it), and before the counter (`allocate_ref`), so the two are
    always taken in the same order. SQLite needs nothing: BEGIN IMMEDIATE runs one write
    transaction at a time; a dry run (`DRY_RUN`) opens no case and waits for no one.
    """
    if session.get_bind().dialect.name != "postgresql" or session.info.get(DRY_RUN):
        return False
    held = per_transaction(session, _CASE_OPENING_HELD)
    root = session.get_transaction()
    scope = session.get_nested_transaction() or root
    if root in held or scope in held:
        return False
    run(session, _LOCK_CASE_OPENING)
    held[scope] = True
    return True


_CASE_OPENING_HELD = "mailbot.case_opening"
DRY_RUN = "mailbot.dry_run"  # `session.info` key: a session that writes nothing (`rules explain`) locks nothing
IDENTITY_LOCKS = 0x6D62  # the first of PostgreSQL's two advisory lock keys: mailbot identities
# Advisory locks belong to the whole database: the key is salted with the schema, so mailbot
# installations sharing a database in separate schemas never wait for each other. The keys
# stay in the sorted order of the unsalted ones, the same in every worker of one schema.
_LOCK_IDENTITIES = text(
    "SELECT count(pg_advisory_xact_lock(:space, hashtext(current_schema() || ':' || k)))"
    " FROM unnest(CAST(:keys AS integer[])) AS k"
).bindparams(space=IDENTITY_LOCKS)
CASE_OPENING_LOCK = 0x6D63  # its own key space: one lock per schema
_LOCK_CASE_OPENING = text(
    "SELECT pg_advisory_xact_lock(:space, hashtext(current_schema()))").bindparams(space=CASE_OPENING_LOCK)
_HEADER_MESSAGE_ID = re.compile(rb"^message-id:\s*<?([^<>\s]+)", re.I | re.M)
_HEADER_SENDER = re.compile(rb"^(from|sender|reply-to):([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.I | re.M)
_FIELDS_READ, _FIELD_BYTES = 4, 2048  # of each of From, Sender and Reply-To (a longer one is hostile)
_ADDRESS_KEY = b"address:"  # an address's key never equals the Message-ID one of the same text


def _head(raw: bytes) -> tuple[bytes, int]:
    """A bounded start of a raw mail, as `parse_message` reads it, and where its header block ends."""
    head = raw[:65536].removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    return head, header_end(head)


def raw_message_id(raw: bytes) -> bytes | None:
    """The bare Message-ID of a raw mail's header block, read without parsing; None without one."""
    head, end = _head(raw)
    found = _HEADER_MESSAGE_ID.search(head, 0, end)
    return found.group(1) if found else None


def _identity_keys(raw: bytes) -> list[int]:
    """32-bit keys for a mail's Message-ID header and sender addresses, read from the raw
    header block, a bounded part of it (the mails are still being parsed).

    The copies of one mail share their Message-ID header. The addresses are those matching
    may take for the citizen (`matching_stage.observe`), normalised as `parse` does: the
    first of From (of Sender without a From header) and the first of Reply-To (a web form's
    citizen). A citizen named without an address is not locked: such a mail never joins a
    case by identity (`match`), the name is read from the text, and strangers share names.
    """
    head, end = _head(raw)
    keys = [_key(found.group(1)) for found in [_HEADER_MESSAGE_ID.search(head, 0, end)] if found]
    fields: dict[bytes, list[str]] = {}
    for name, value in _HEADER_SENDER.findall(head, 0, end):
        values = fields.setdefault(name.lower(), [])
        if len(values) < _FIELDS_READ:  # the first address is all we need: bounded work
            values.append(value[:_FIELD_BYTES].decode("ascii", "surrogateescape"))
    for values in (fields.get(b"from") or fields.get(b"sender", []), fields.get(b"reply-to", [])):
        found = header_addresses(values) if values else ()
        if found:
            keys.append(_key(_ADDRESS_KEY + found[0].email.encode("utf-8", "surrogatepass")))
    return keys


def _key(value: bytes) -> int:
    return int.from_bytes(hashlib.sha256(value).digest()[:4], "big", signed=True)
