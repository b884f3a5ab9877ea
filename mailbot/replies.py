"""Turn a decided Reply into a rendered MIME message in the outbox (same transaction).

Flood limits are counted in the database, so they hold across restarts and
workers: over a limit the reply is stored as `held` and shown in the digest.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.orm import Session

from .addresses import undeliverable
from .compose import build_subject, compose_reply, greeting_name, make_message_id
from .config import Settings
from .db import Case, Message, Outbox, table_of
from .db_statements import run
from .decide import NEUTRAL_RECEIPT, STATUS_OVERVIEW
from .errors import RulesError
from .model import Address, Mail, Reply
from .office_time import in_office
from .outbox import STAFF_NOTICE
from .recipients import mailbox_key
from .render import Renderer
from .sanitize import HeaderError
from .store import add_event

log = logging.getLogger("mailbot.replies")

# Templates that say nothing about a case: they may go to an address not on file. Only the
# sender's own case (the one opened for this mail) has its reference in the subject
# (`reply_case_ref`), never the case they quoted.
NO_CASE_DETAILS = frozenset({"status_neutral", NEUTRAL_RECEIPT})


def own_case(case: Case | None, reply: Reply) -> bool:
    """Whether `case` is on file for the reply's recipient: theirs to know about."""
    return (case is not None and bool(case.citizen_email)
            and case.citizen_email.lower() == reply.to.email.lower())


def reply_case_ref(case: Case | None, reply: Reply) -> str:
    """The reference a reply carries in its subject (and as `case_ref`), or "".

    Every case's reference is in the subject of every reply (DESIGN), so that the answer to it
    links back. A neutral reply (`NO_CASE_DETAILS`) names the case only when it is the
    recipient's own, e.g. the case opened for a status question quoting someone else's
    reference; a stranger writing on another citizen's case learns nothing, not even its reference.
    """
    if case is None or (reply.template in NO_CASE_DETAILS and not own_case(case, reply)):
        return ""
    return case.ref


@dataclass(frozen=True)
class ReplyLimits:
    per_case_per_day: int
    per_address_per_day: int


# How long a worker waits for another worker's lock on the same recipient (PostgreSQL).
LOCK_WAIT_SECONDS = 10.0
# Salted with the schema like the identity locks (locks.py): installations sharing a database
# in separate schemas never hold each other's replies.
_TRY_LOCK_RECIPIENT = text(
    "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || ':' || :recipient, 0))")


def _lock_recipient(session: Session, recipient: str) -> bool:
    """Serialise the limit check per recipient until the transaction ends.

    On PostgreSQL two workers could otherwise both count 9 and both queue the 10th
    reply: a transaction-scoped advisory lock on the address makes the second wait for
    the first one's commit. `pg_try_advisory_xact_lock` in a loop never deadlocks; when
    it cannot get the lock in time the caller holds the reply (safe, shown to staff).
    SQLite needs nothing: every write transaction is BEGIN IMMEDIATE, one at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        if run(session, _TRY_LOCK_RECIPIENT, {"recipient": recipient}).scalar_one():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def over_limit(session: Session, *, recipient: str, case_id: int | None, now: datetime,
               limits: ReplyLimits) -> str | None:
    """Why a reply must be held, or None. Counted in the database over the last 24 h.

    Tiers, narrowest first: per case, then per address. Every reply queued in the
    window counts (pending, sent or failed), except held ones; a staff notice on the case
    (`staff_notice`) is no reply and never counts. An address counts with its
    +tag variants (`desk+1@`, `desk+2@` are one mailbox): a robot answering from a new tag
    each time would otherwise never reach the limit.
    """
    key = mailbox_key(recipient)
    if not _lock_recipient(session, key):
        return "the reply limits could not be checked (another worker holds the address)"
    counts = run(session, _RECENT_REPLIES, {
        "case_id": case_id, "key": key, "since": now - timedelta(hours=24)}).one()
    per_case, per_address = (int(n) for n in counts)
    if case_id is not None and per_case >= limits.per_case_per_day:
        return f"more than {limits.per_case_per_day} automatic replies for this case in 24 h"
    if per_address >= limits.per_address_per_day:
        return f"more than {limits.per_address_per_day} automatic replies to this address in 24 h"
    return None


# One statement for both tiers, built once; each side of the OR uses its own index.
_SAME_MAILBOX = Outbox.recipient_key == bindparam("key")
_RECENT_REPLIES = (
    select(func.count().filter(Outbox.case_id == bindparam("case_id")),
           func.count().filter(_SAME_MAILBOX))
    .where(Outbox.created_at > bindparam("since"), Outbox.status != "held", Outbox.template != STAFF_NOTICE,
           _SAME_MAILBOX | (Outbox.case_id == bindparam("case_id"))))


def refusal(session: Session, settings: Settings, reply: Reply, case: Case | None) -> str | None:
    """Why `reply` must not be sent at all, or None: the last check before the outbox.

    decide and recipients already choose the recipient; this guards their result:
    never ourselves, never a web-form robot (it reaches no citizen), never an undeliverable
    address, and a reply that may name the case only to the address on file for the case.
    """
    email = reply.to.email.lower()
    own = {settings.smtp.from_address.lower(), settings.imap.username.lower()}
    if email in own:
        return "the recipient is one of our own addresses"
    if email in {w.lower() for w in settings.webform_senders}:
        return "the recipient is a web form's sender address, not the citizen"
    if undeliverable(session, email):
        return "the address is marked undeliverable"
    if (case is not None and reply.template not in NO_CASE_DETAILS
            and email != case.citizen_email.lower()):
        return "case details go only to the address on file for the case"
    return None


def reply_context(settings: Settings, case: Case | None, reply: Reply, mail: Mail) -> dict[str, Any]:
    """Every variable any template may use (see template_vars.SAMPLES); callers add specifics."""
    office = settings.office
    investigator = None
    if case is not None and case.investigator_email:
        investigator = {"name": case.investigator_name or "", "email": case.investigator_email,
                        "phone": case.investigator_phone or ""}
    forwarded = mail.forwarded[0] if mail.forwarded else None
    nobody = {"name": "", "email": "", "phone": "", "website": "", "address": ""}
    return {
        "office": {"name": office.name, "phone": office.phone, "address": office.address,
                   "website": office.website, "email": settings.smtp.from_address},
        "case_ref": case.ref if case else "",
        "citizen_name": greeting_name(reply.to),  # "" for a mailbox label: neutral greeting
        "original_subject": reply.subject,
        "investigator": investigator or {"name": "", "email": "", "phone": ""},
        "status": case.status if case else "open",
        # How the first reaction went: a quick-service case is not "being investigated".
        "outcome": case.outcome if case else "investigation",
        "services": list(case.also_sent_to) if case else [],
        "service": nobody, "agency": nobody,
        "answer_text": "", "questions": [], "we_forwarded": False,
        # The agency by name ("Klantendienst De Lijn"), not "Name <address>"; the address when nameless.
        "forwarded": {"sender": (forwarded.sender.name or forwarded.sender.email)
                      if forwarded and forwarded.sender else "",
                      "subject": forwarded.subject if forwarded else "",
                      # The office's day: 23:30 UTC on the 30th is the 31st in Brussels.
                      "date": (f"{in_office(forwarded.date, settings.schedule.timezone):%d-%m-%Y}"
                               if forwarded and forwarded.date else "")},
        "cases": [],  # status_overview: `overview_cases`
        "reason": "unreadable", "max_size_mb": settings.limits.max_message_bytes // (1024 * 1024),
        "max_size_kb": settings.limits.max_message_bytes // 1024,
    }


def reply_setup(settings: Settings, case: Case | None, reply: Reply, mail: Mail,
                extra_context: dict[str, Any] | None = None) -> tuple[Reply, dict[str, Any], str]:
    """The reply as sent (its subject the citizen's own for a referral's cover mail), its
    template context and the reference for its subject; `queue_reply` and `rules explain`."""
    if referral_cover(case, reply, mail):  # the citizen never saw the other service's cover mail
        reply = replace(reply, subject=forwarded_subject(reply, mail))
    context = reply_context(settings, case, reply, mail) | dict(reply.context) | (extra_context or {})
    case_ref = reply_case_ref(case, reply)
    context["case_ref"] = case_ref
    return reply, context, case_ref


def reply_subject(settings: Settings, renderer: Renderer, reply: Reply, *, case: Case | None, mail: Mail,
                  extra_context: dict[str, Any] | None = None) -> str:
    """The Subject the reply would be sent with (`compose.build_subject`, as `compose_reply`).
    Raises RulesError when its template fails."""
    reply, context, case_ref = reply_setup(settings, case, reply, mail, extra_context)
    rendered = renderer.render(reply.template, reply.language, context)
    return build_subject(rendered.subject_prefix, case_ref, reply.subject, language=rendered.language)


def queue_reply(session: Session, settings: Settings, renderer: Renderer, reply: Reply, *,
                case: Case | None, mail: Mail, now: datetime,
                extra_context: dict[str, Any] | None = None, message: Message | None = None) -> str | None:
    """Render, compose and store one reply; held instead of pending when over a limit.

    Returns the outbox status (`pending` or `held`), or None (with a `reply_skipped`
    event) when `refusal` forbids the reply, or (`_unanswered`: flagged for staff) the
    template fails to render or a header value is unusable.
    """
    refused = refusal(session, settings, reply, case)
    if reply.template == STATUS_OVERVIEW and not refused:
        listed = overview_cases(session, reply)
        if len(listed) != len(reply.context.get("case_refs") or ()) or not listed:
            refused = "a case of the status overview is not on file for the recipient"
        extra_context = {**(extra_context or {}), "cases": listed}
    if refused:
        add_event(session, "reply_skipped", case=case, template=reply.template, reason=refused)
        return None
    cover = referral_cover(case, reply, mail)
    reply, context, case_ref = reply_setup(settings, case, reply, mail, extra_context)
    try:
        rendered = renderer.render(reply.template, reply.language, context)
    except RulesError as err:
        _unanswered(session, case, message, reply.template, f"its template failed: {err}")
        return None
    references = [*mail.references[-10:], mail.message_id] if mail.message_id else list(mail.references[-10:])
    in_reply_to = mail.message_id or None
    if cover:  # nor its Message-ID: a reply "to" it would thread under a mail they do not have
        references, in_reply_to = [], None
    # Reply-To names who handles the case: not for a reply that may go to an address not on file.
    investigator = (Address(case.investigator_name or "", case.investigator_email)
                    if case and case.investigator_email and reply.template not in NO_CASE_DETAILS else None)
    try:
        message_id = make_message_id(settings.smtp.from_address.rpartition("@")[2] or "localhost")
        composed = compose_reply(
            rendered=rendered, from_address=settings.smtp.from_address,
            from_name=settings.smtp.from_name or settings.office.name, to=reply.to,
            reply_to=investigator, case_ref=case_ref,
            original_subject=reply.subject, in_reply_to=in_reply_to,
            references=references, message_id=message_id,
            date=in_office(now, settings.schedule.timezone),  # RFC 5322 3.3: local time, its offset
        )
    except HeaderError as err:  # an address or our own From that no header can carry
        _unanswered(session, case, message, reply.template, f"a header could not be written: {err}")
        return None
    data = bytes(composed)
    bare_id = message_id.strip("<>")
    case_id = case.id if case else None
    # Core inserts: an ORM object for each of these rows cost more than rendering the reply.
    out_pk = run(session, _INSERT_SENT, dict(
        direction="out", kind="outgoing", message_id=bare_id, case_id=case_id,
        in_reply_to=in_reply_to or "", references=references, from_email=settings.smtp.from_address,
        from_name="", to_addrs=[reply.to.email], cc_addrs=[], subject=composed.subject,
        sent_at=now, received_at=now, body_text=rendered.text, sha256=_sha(data), size=len(data),
        language=rendered.language, details={"template": reply.template},
    )).scalar_one()
    limits = ReplyLimits(settings.limits.replies_per_case_per_day, settings.limits.replies_per_address_per_day)
    held = over_limit(session, recipient=reply.to.email, case_id=case_id, now=now, limits=limits)
    status = "held" if held else "pending"
    run(session, _INSERT_OUTBOX, dict(
        case_id=case_id, message_pk=out_pk, template=reply.template, recipient=reply.to.email,
        message_id=bare_id, mime=data, status=status, last_error=held, attempts=0,
        created_at=now, next_attempt_at=now))
    add_event(session, "reply_held" if held else "reply_queued", case=case,
              template=reply.template, language=rendered.language, reason=held)
    return status


def _unanswered(session: Session, case: Case | None, message: Message | None, template: str, why: str) -> None:
    """A reply that could not be made is not the mail's fault: the mail and its case stay
    recorded, the case is flagged `needs_triage` and the digest lists the reason under the
    message that went unanswered."""
    log.error("reply %s not sent%s: %s", template, f" on case {case.ref}" if case else "", why)
    if case is not None and "needs_triage" not in case.flags:
        case.flags = sorted({*case.flags, "needs_triage"})
    add_event(session, "reply_skipped", case=case, message=message, template=template,
              reason=f"reply {template} not sent, {why}"[:1000], flags=["needs_triage"])


def overview_cases(session: Session, reply: Reply) -> list[dict[str, Any]]:
    """The cases of a status overview (`decide._status_overview`), as its template shows them:
    only those on file for the recipient, checked again here where the database is."""
    refs = [str(r) for r in reply.context.get("case_refs") or ()]
    if not refs:
        return []
    rows = session.execute(select(Case).where(Case.ref.in_(refs))).scalars()
    mine = {c.ref: c for c in rows if (c.citizen_email or "").lower() == reply.to.email.lower()}
    return [{"ref": c.ref, "subject": c.subject, "status": c.status, "outcome": c.outcome,
             "investigator": {"name": c.investigator_name or "", "email": c.investigator_email or "",
                              "phone": c.investigator_phone or ""}}
            for c in (mine[r] for r in refs if r in mine)]


def referral_cover(case: Case | None, reply: Reply, mail: Mail) -> bool:
    """Whether `mail` is another ombudsman service's cover mail for the citizen's complaint
    (case flag `referred_by`) and `reply` goes to the citizen, who never saw that mail."""
    sender = mail.from_.email.lower() if mail.from_ else ""
    return (case is not None and "referred_by" in (case.flags or ())
            and bool(mail.forwarded) and sender != reply.to.email.lower())


def forwarded_subject(reply: Reply, mail: Mail) -> str:
    """The subject the citizen gave their complaint: the forwarded message from their address,
    else the first forwarded message with a subject, else the cover mail's own."""
    to = reply.to.email.lower()
    mine = [f for f in mail.forwarded if f.sender is not None and f.sender.email.lower() == to]
    for part in (*mine, *mail.forwarded):
        if part.subject.strip():
            return part.subject
    return reply.subject


# Built once; the sent message's id links its outbox row.
_INSERT_SENT = insert(table_of(Message)).returning(table_of(Message).c.id)
_INSERT_OUTBOX = insert(table_of(Outbox))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
