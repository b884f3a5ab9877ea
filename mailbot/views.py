"""Cases as plain data for `mailbot case list/show --json` and the text for people.

JSON gives the data as stored (JSON escapes it). Text goes to a terminal: every stored
string passes through `shown()` there, since names, subjects, forwarded senders and SMTP
errors come from mail, and an escape sequence or a bidi override in them would act on the
staff member's terminal. Times are UTC in JSON, local with their offset in text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .db import Case, Event, Message, Outbox, as_utc, utc_iso
from .privacy import is_pseudonymised
from .sanitize import clean_text, truncate

UTC = timezone.utc
PSEUDONYMISED = {"retention": "pseudonymised by retention", "erasure": "pseudonymised on an erasure request"}
# A whole terminal escape sequence (CSI, OSC up to BEL or ST, or a two-character one), so
# "\x1b[31mDe Lijn" shows as "De Lijn"; `clean_text` then drops any lone control left.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])|\x9b[0-?]*[ -/]*[@-~]")
SUBJECT_WIDTH = 50  # the subject column of `case list`
REASON_WIDTH = 300  # an SMTP error or a hold reason in `case show`


def shown(value: object) -> str:
    """A stored string made safe for a terminal: one visible line, no escape sequences,
    controls or format characters (bidi overrides, zero-width). None shows as ""."""
    if value is None:
        return ""
    return clean_text(_ESCAPES.sub("", str(value)))


def local_time(value: datetime | None, zone: tzinfo) -> str:
    """`2026-11-23 11:00 +01:00`: local to the office, with the offset, to the minute."""
    if value is None:
        return "-"
    moment = as_utc(value).astimezone(zone)
    offset = moment.utcoffset() or timedelta(0)
    sign, minutes = ("-" if offset < timedelta(0) else "+"), abs(int(offset.total_seconds())) // 60
    return f"{moment:%Y-%m-%d %H:%M} {sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_date(value: datetime, zone: tzinfo) -> str:
    return f"{as_utc(value).astimezone(zone):%Y-%m-%d}"


@dataclass(frozen=True)
class CaseDetail:
    """What `case show` adds to the case row: the outbox row of each reply (by the pk of
    its outgoing message), the case's events, the cases recorded as duplicates of it."""

    deliveries: dict[int, Outbox] = field(default_factory=dict)
    events: Sequence[Event] = ()
    duplicates: Sequence[str] = ()


def deliveries_of(session: Session, message_ids: Iterable[int]) -> dict[int, Outbox]:
    """The outbox row of each outgoing message: a reply's message is recorded when it is
    queued, and only the outbox says whether it left."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = session.execute(select(Outbox).where(Outbox.message_pk.in_(ids)).order_by(Outbox.id)).scalars()
    return {row.message_pk: row for row in rows if row.message_pk is not None}


def load_detail(session: Session, case: Case) -> CaseDetail:
    events = session.execute(select(Event).where(Event.case_id == case.id)
                             .order_by(Event.created_at, Event.id)).scalars()
    duplicates = session.execute(select(Case.ref).where(Case.duplicate_of_id == case.id)
                                 .order_by(Case.created_at, Case.id)).scalars()
    return CaseDetail(deliveries=deliveries_of(session, (m.id for m in case.messages if m.direction == "out")),
                      events=list(events), duplicates=list(duplicates))


def in_order(messages: Iterable[Message]) -> list[Message]:
    """By when they came in, then by id: an import can record mail out of order."""
    return sorted(messages, key=lambda m: (as_utc(m.received_at), m.id))


def delivery_dict(row: Outbox | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"outbox_id": row.id, "template": row.template, "recipient": row.recipient, "status": row.status,
            "reason": row.last_error, "attempts": row.attempts, "sent_at": utc_iso(row.sent_at),
            "next_attempt_at": utc_iso(row.next_attempt_at) if row.status == "pending" else None}


def message_dict(message: Message, delivery: Outbox | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "message_id": message.message_id,
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_email,
        "subject": message.subject,
        "received_at": utc_iso(message.received_at),
        "original_sender": message.original_sender,
    }
    if message.direction == "out":
        data["delivery"] = delivery_dict(delivery)
    return data


def event_dict(event: Event) -> dict[str, Any]:
    return {"at": utc_iso(event.created_at), "type": event.type, "detail": event.detail}


def case_dict(case: Case, *, with_messages: bool = True, detail: CaseDetail | None = None,
              deliveries: dict[int, Outbox] | None = None) -> dict[str, Any]:
    """The DESIGN.md fields (fixed), then the ones added since; `detail` adds the history
    and the duplicates (`case show`)."""
    data: dict[str, Any] = {
        "ref": case.ref,
        "status": case.status,
        "citizen_email": case.citizen_email,
        "citizen_name": case.citizen_name,
        "investigator_email": case.investigator_email,
        "investigator_name": case.investigator_name,
        "team": case.team,
        "language": case.language,
        "subject": case.subject,
        "outcome": case.outcome,
        "created_at": utc_iso(case.created_at),
        "closed_at": utc_iso(case.closed_at),
        "flags": sorted(case.flags),
        "also_sent_to": list(case.also_sent_to),
        "duplicate_of": case.duplicate_of.ref if case.duplicate_of else None,
        "contact": {"phone": case.contact_phone, "email": case.contact_email},
        "investigator_phone": case.investigator_phone,
        "priority": case.priority,
        "tags": list(case.tags),
        "pseudonymised": is_pseudonymised(case),
    }
    if with_messages:
        sent = detail.deliveries if detail is not None else deliveries or {}
        data["messages"] = [message_dict(m, sent.get(m.id)) for m in in_order(case.messages)]
    if detail is not None:
        data["duplicates"] = list(detail.duplicates)
        data["history"] = [event_dict(e) for e in detail.events]
    return data


def citizen_label(case: Case) -> str:
    """Who the case is from, in one cell: the address, else the name (a web form without one)."""
    return shown(case.citizen_email) or shown(case.citizen_name) or "-"


def case_table(cases: Sequence[Case], *, zone: tzinfo = UTC, message_counts: dict[int, int] | None = None) -> str:
    """A fixed-width table for people; `message_counts` by case id (else the loaded messages)."""
    header = ("REF", "STATUS", "CREATED", "CITIZEN", "INVESTIGATOR", "LANG", "MSGS", "FLAGS", "SUBJECT")
    rows = [(shown(c.ref), shown(c.status), local_date(c.created_at, zone), citizen_label(c),
             shown(c.investigator_email) or "-", shown(c.language),
             str(message_counts.get(c.id, 0) if message_counts is not None else len(c.messages)),
             ",".join(shown(f) for f in sorted(c.flags)) or "-", truncate(shown(c.subject), SUBJECT_WIDTH) or "-")
            for c in cases]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def case_text(case: Case, detail: CaseDetail | None = None, *, zone: tzinfo = UTC) -> str:
    """`case show` for a person: every stored string cleaned, times local."""
    detail = detail or CaseDetail()
    investigator = shown(case.investigator_name) or "-"
    investigator += f" <{shown(case.investigator_email) or '-'}>"
    if case.investigator_phone:
        investigator += f", {shown(case.investigator_phone)}"
    contact = ", ".join(shown(v) for v in (case.contact_phone, case.contact_email) if v)
    lines = [f"{shown(case.ref)}  ({shown(case.status)})",
             f"  subject:      {shown(case.subject) or '-'}",
             f"  citizen:      {shown(case.citizen_name)} <{shown(case.citizen_email)}>",
             *([f"  personal data: {_pseudonymised(detail.events, zone)}"] if is_pseudonymised(case) else []),
             f"  investigator: {investigator}",
             f"  team:         {shown(case.team) or '-'}",
             f"  outcome:      {shown(case.outcome)}",
             f"  priority:     {shown(case.priority)}",
             f"  tags:         {', '.join(shown(t) for t in case.tags) or '-'}",
             f"  language:     {shown(case.language)}",
             f"  created:      {local_time(case.created_at, zone)}",
             *([f"  closed:       {local_time(case.closed_at, zone)}"] if case.closed_at else []),
             f"  flags:        {', '.join(shown(f) for f in sorted(case.flags)) or '-'}",
             f"  also sent to: {', '.join(shown(s) for s in case.also_sent_to) or '-'}",
             f"  duplicate of: {shown(case.duplicate_of.ref) if case.duplicate_of else '-'}",
             f"  duplicates:   {', '.join(shown(r) for r in detail.duplicates) or '-'}",
             f"  contact:      {contact or '-'}",
             "  messages:"]
    for message in in_order(case.messages):
        lines += message_lines(message, detail.deliveries.get(message.id), zone)
    history = [line for e in detail.events if (line := history_line(e, zone)) is not None]
    lines += ["  history:", *history] if history else []
    return "\n".join(lines)


def message_lines(m: Message, delivery: Outbox | None, zone: tzinfo) -> list[str]:
    arrow = "→" if m.direction == "out" else "←"
    who = f"to {shown(delivery.recipient)}" if delivery is not None else shown(m.from_email)
    # A letter the citizen forwards is the agency's; a referral's or a colleague's forward, the citizen's.
    source = "from the agency" if m.kind == "agency_forward" else "forwarded, first from"
    extra = f" ({source}: {shown(m.original_sender)})" if m.original_sender else ""
    head = f"    {arrow} {local_time(m.received_at, zone)} {shown(m.kind):<15} {who}: {shown(m.subject)}{extra}"
    return [head] if m.direction != "out" else [head, f"        {delivery_text(delivery, zone)}"]


def delivery_text(row: Outbox | None, zone: tzinfo) -> str:
    """Whether a reply left: its message row is written when it is queued, sent or not."""
    if row is None:
        return "delivery: no outbox record"
    reason = truncate(shown(row.last_error), REASON_WIDTH)
    state = {
        "sent": f"sent {local_time(row.sent_at, zone)}",
        "pending": (f"waiting: retrying ({row.attempts} attempts so far): {reason}" if reason
                    else "waiting to be sent"),
        "held": f"held for staff (mailbot outbox release/cancel {row.id}): {reason or '-'}",
        "failed": f"failed (mailbot outbox retry/cancel {row.id}): {reason or '-'}",
        "cancelled": "cancelled, never sent" + (f": {reason}" if reason else ""),
    }.get(row.status, shown(row.status))
    return f"{shown(row.template)}: {state}"


def history_line(event: Event, zone: tzinfo) -> str | None:
    """One line of the case's history for people, or None for bookkeeping events (every
    event is in the JSON)."""
    text = _history_text(event.type, event.detail or {})
    return f"    {local_time(event.created_at, zone)}  {text}" if text is not None else None


def _pseudonymised(events: Sequence[Event], zone: tzinfo) -> str:
    """When and why the case lost its personal data (cases scrubbed before the event existed
    say only that)."""
    found = [e for e in events if e.type == "case_pseudonymised"]
    if not found:
        return "pseudonymised (retention or an erasure request)"
    why = str((found[0].detail or {}).get("why", ""))
    return f"{PSEUDONYMISED.get(why, 'pseudonymised')} on {local_time(found[0].created_at, zone)}"


def _history_text(kind: str, d: dict[str, Any]) -> str | None:
    by_note = f" by {shown(d.get('by')) or '-'}" + (f": {shown(d['note'])}" if d.get("note") else "")
    reply = f"reply {shown(d.get('template')) or '-'}"
    texts = {
        "case_opened": (f"opened: outcome {shown(d.get('outcome')) or '-'}, team {shown(d.get('team')) or '-'}, "
                        f"investigator {shown(d.get('investigator')) or '-'}"),
        "case_imported": "opened by `mailbot import` (handled outside mailbot before)",
        "case_pseudonymised": PSEUDONYMISED.get(str(d.get("why", "")), "pseudonymised"),
        "case_import_kept_open": "kept open by the import (recent mail, --open-after)",
        "case_closed": "closed" + by_note,
        "case_reopened": "reopened" + by_note,
        "reply_held": f"{reply} held: {shown(d.get('reason')) or '-'}",
        "reply_skipped": f"{reply} not made: {shown(d.get('reason')) or '-'}",
        "reply_failed": f"{reply} failed: {shown(d.get('reason')) or '-'}",
        "reply_released": f"{reply} released" + by_note,
        "reply_retried": f"{reply} retried" + by_note,
        "reply_cancelled": f"{reply} cancelled" + by_note,
        "match_review": _review_text(d),
        "staff_notified": f"staff told: {', '.join(shown(a) for a in d.get('to') or ()) or '-'}",
        "quarantined_on_case": "a mail on this case was quarantined",
        "quarantine_retried": "a quarantined mail was moved back to the inbox" + by_note,
    }
    text = texts.get(kind)
    flags = ", ".join(shown(f) for f in d.get("flags") or ())
    if flags:  # the reason is the event's own text when it has one (a reply not made)
        text = f"{text}; flagged {flags}" if text else f"flagged {flags}: {_flag_reason(d)}"
    return truncate(text, 2 * REASON_WIDTH) if text is not None else None


def _flag_reason(d: dict[str, Any]) -> str:
    """Why a message's decision flagged the case: the matching evidence, else its reasons."""
    evidence = [shown(e.get("detail")) for e in d.get("evidence") or () if isinstance(e, dict)]
    return "; ".join(filter(None, evidence)) or "; ".join(shown(r) for r in d.get("reasons") or ()) or "-"


def _review_text(d: dict[str, Any]) -> str:
    if d.get("duplicate_of"):
        return f"possible duplicate of {shown(d['duplicate_of'])}"
    candidates = [shown(c.get("detail")) for c in d.get("candidates") or () if isinstance(c, dict)]
    return "for review: " + ("; ".join(filter(None, candidates)) or "-")


def message_counts(session: Session, case_ids: Sequence[int]) -> dict[int, int]:
    """Messages per case, through the index on `message.case_id` (no bodies loaded)."""
    if not case_ids:
        return {}
    rows = session.execute(select(Message.case_id, func.count()).where(Message.case_id.in_(list(case_ids)))
                           .group_by(Message.case_id))
    return {case_id: count for case_id, count in rows if case_id is not None}
