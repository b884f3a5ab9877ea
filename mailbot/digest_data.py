"""Queries behind the daily triage digest and `mailbot status`.

A digest day is a calendar day in the office's time zone. Sections come in the order
staff should read them: what needs a decision first, then what the robot did.
Items are plain values (strings), escaped only when rendered.

Which flags a message's decision added to its case is read per message, never from the
case's accumulated flags: the `flags` list of an event on the message (the
`message_received` event when the decision's flags are recorded there, or any other event
on the message), else what the message's own recorded reasons and the case show (DMARC
failed, a status request from an address not on file, mail on a closed case).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import intent
from .automatic import by_subject_only
from .config import Settings
from .db import Case, Event, MailboxState, Message, Outbox, as_utc
from .holidays_be import subtract_working_days

DECISION_SECTIONS = ("needs_triage", "multi_addressed", "agency_in_cc", "contact_wishes",
                     "quarantined", "undeliverable", "held", "rules_failed", "overdue")
INFO_SECTIONS = ("new_cases", "quick_service", "agency_forwards", "solutions", "status_requests")
CHART_KINDS = ("new_complaint", "follow_up", "agency_forward", "status_request", "automatic",
               "unreadable")


@dataclass(frozen=True)
class Item:
    ref: str = ""
    title: str = ""
    who: str = ""
    detail: str = ""
    extras: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # why it is listed: keys of `triage` in labels.j2


@dataclass
class Section:
    key: str
    groups: list[tuple[str, list[Item]]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(items) for _, items in self.groups)


@dataclass(frozen=True)
class ChartDay:
    day: date
    counts: tuple[tuple[str, int], ...]
    total: int


@dataclass
class DigestData:
    day: date
    team: str | None
    decisions: list[Section]
    info: list[Section]
    totals: dict[str, int]
    chart: list[ChartDay]
    chart_max: int


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _who(name: str | None, email: str | None) -> str:
    return f"{name} <{email}>" if name and email else (email or name or "")


SUBJECT_ONLY = "alleen op het onderwerp als automatisch herkend: geen dossier, geen antwoord verstuurd"


def _one(items: list[Item]) -> list[tuple[str, list[Item]]]:
    return [("", items)] if items else []


def collect(session: Session, settings: Settings, day: date, *, team: str | None = None) -> DigestData:
    """Everything the digest of `day` shows (only `team`'s cases when a team is given)."""
    start, end = day_window(day, settings.schedule.timezone)
    in_window = (Message.direction == "in", Message.received_at >= start, Message.received_at < end)
    messages = list(session.execute(select(Message).where(*in_window).order_by(Message.id)).scalars())
    case_ids = {m.case_id for m in messages if m.case_id}
    cases = {c.id: c for c in session.execute(select(Case).where(or_(
        Case.id.in_(case_ids), (Case.created_at >= start) & (Case.created_at < end)))).scalars()}

    def mine(case: Case | None) -> bool:
        return team is None or (case is not None and case.team == team)

    touched = sorted((c for c in cases.values() if mine(c)), key=lambda c: c.ref)
    events: dict[int, dict] = {}
    linked: dict[int, list[dict]] = defaultdict(list)  # other events on a message
    for e in session.execute(select(Event).where(Event.message_pk.in_([m.id for m in messages]))
                             .order_by(Event.id)).scalars():
        if e.message_pk is None:
            continue
        if e.type == "message_received":
            events[e.message_pk] = e.detail or {}
        else:
            linked[e.message_pk].append(e.detail or {})
    replies_to = _replies_to(session, messages)

    def flagged(*flags: str) -> list[Item]:
        return [Item(c.ref, c.subject, _who(c.citizen_name, c.citizen_email),
                     ", ".join(f for f in flags if f in c.flags),
                     tuple(s for s in c.also_sent_to) + ((f"duplicaat van {c.duplicate_of.ref}",)
                                                         if c.duplicate_of else ())
                     + tuple(f"{label} {value}" for label, value in (("tel.", c.contact_phone),
                                                                     ("e-mail:", c.contact_email)) if value))
                for c in touched if any(f in c.flags for f in flags)]

    first_of_day: dict[int | None, int] = {}
    for m in messages:
        first_of_day.setdefault(m.case_id, m.id)
    opened = {m.id for m in messages if m.case_id in cases and m.id == first_of_day[m.case_id]
              and start <= as_utc(cases[m.case_id].created_at) < end}
    added = {m.id: _added_flags(m, cases.get(m.case_id) if m.case_id else None, events.get(m.id) or {},
                                linked.get(m.id, []), opened=m.id in opened) for m in messages}
    # A case opened today and flagged later today: its opening mail keeps needs_triage only
    # with reasons of its own (the later mail is listed itself).
    flagged_later = {m.case_id for m in messages if m.case_id and m.id not in opened
                     and "needs_triage" in added[m.id]}
    for m in messages:
        if (m.case_id and m.id in opened and m.case_id in flagged_later and "flags" not in (events.get(m.id) or {})
                and not added[m.id] & {"spoofed_sender", "status_unmatched", "status_from_unknown_address"}
                and not _no_investigator(session, m.case_id)):
            added[m.id].discard("needs_triage")
    triage = []
    for m in messages:
        case = cases.get(m.case_id) if m.case_id else None
        detail = events.get(m.id) or {}
        evidence = detail.get("evidence") or []
        uncertain = [e for e in evidence if float(e.get("score", 0)) < settings.matching.fuzzy_threshold]
        # A decision that put the message before staff: a new case flagged needs_triage, or
        # mail that flagged an existing case (DMARC failed, status asked from another address…).
        flagged_here = case is not None and bool(added[m.id] & TRIAGE_FLAGS)
        # Silenced on its subject alone and tied to no case: maybe a citizen nobody answered.
        silenced = (case is None and m.kind == "automatic"
                    and by_subject_only((m.details or {}).get("auto_reason")))
        if mine(case) and (uncertain or flagged_here or silenced):
            scored = tuple(f"{e.get('method', '')}: {e.get('detail', '')} (score {float(e.get('score', 0)):.0f})"
                           for e in evidence)
            why = tuple(str(d.get("reason") or d.get("triage_reason"))[:300] for d in (detail, *linked.get(m.id, []))
                        if (d.get("reason") or d.get("triage_reason")) and "needs_triage" in (d.get("flags") or ()))
            triage.append(Item(case.ref if case else "", m.subject, _who(m.from_name, m.from_email), m.kind,
                               ((SUBJECT_ONLY,) if silenced else ()) + why + scored,
                               _triage_labels(m, added[m.id], replies_to, opened=m.id in opened)))
    decisions = [
        Section("needs_triage", _one(triage)),
        Section("multi_addressed", _one(flagged("multi_addressed", "possible_duplicate"))),
        Section("agency_in_cc", _one(flagged("agency_in_cc"))),
        Section("contact_wishes", _one(flagged("anonymity_requested", "prefers_phone", "alternative_email"))),
    ]
    intake_wide = team is None
    decisions.append(Section("quarantined", _one([
        Item("", m.subject or "(geen onderwerp)", m.from_email, (m.quarantine_reason or "")[:300],
             (f"{m.size} bytes",)) for m in messages if m.quarantine_reason is not None and intake_wide])))
    decisions.append(Section("undeliverable", _one(_undeliverable(session, start, end, messages, cases, mine))))
    held = session.execute(select(Outbox, Case).outerjoin(Case, Outbox.case_id == Case.id)
                           .where(Outbox.status == "held", Outbox.created_at < end).order_by(Outbox.id)).all()
    decisions.append(Section("held", _one([Item(c.ref if c else "", row.template, row.recipient, row.last_error or "",
                                                (f"versturen: mailbot outbox release {row.id} · "
                                                 f"schrappen: mailbot outbox cancel {row.id}",))
                                           for row, c in held if mine(c)])))
    failures = session.execute(select(Event).where(Event.type == "rules_reload_failed", Event.created_at >= start,
                                                   Event.created_at < end).order_by(Event.id)).scalars()
    decisions.append(Section("rules_failed", _one([_rules_error(str(e.detail.get("error", "")))
                                                   for e in failures if intake_wide])))
    decisions.append(Section("overdue", _one(_overdue(session, settings, day, end, mine))))
    info = _info(messages, cases, touched, start, end, mine, session, events)
    chart, chart_max = _chart(session, settings, day, team)
    sent = select(func.count()).select_from(Outbox).where(
        Outbox.status == "sent", Outbox.sent_at >= start, Outbox.sent_at < end, Outbox.template != "digest")
    if team is not None:  # a team digest counts the team's mail only
        sent = sent.join(Case, Outbox.case_id == Case.id).where(Case.team == team)
    totals = {"received": sum(1 for m in messages if mine(cases.get(m.case_id) if m.case_id else None)),
              "new_cases": sum(1 for c in touched if start <= as_utc(c.created_at) < end),
              "replies_sent": session.execute(sent).scalar_one(),
              "needs_decision": sum(s.count for s in decisions)}
    return DigestData(day, team, decisions, info, totals, chart, chart_max)


# Flags that put a message in "Te beoordelen"; bookkeeping flags are never shown as a reason.
TRIAGE_FLAGS = frozenset({"needs_triage", "spoofed_sender", "status_from_unknown_address", "status_unmatched",
                          "on_closed_case"})
QUIET_FLAGS = frozenset({"agency_in_cc_reminded", "multi_addressed_told"})
# Flags a message can add that other sections already show (contact wishes, Cc, …).
SHOWN_ELSEWHERE = frozenset({"multi_addressed", "possible_duplicate", "agency_in_cc", "anonymity_requested",
                             "prefers_phone", "alternative_email", "solution_offered", "solution_accepted",
                             "referred_by", "undeliverable"})
TRIAGE_ORDER = ("spoofed_sender", "on_closed_case", "status_from_unknown_address", "status_unmatched")
# Reasons decide/classify record on the message that tell a flag the decision added.
REASON_FLAGS = (("DMARC failed", "spoofed_sender"), ("sender not proven: dmarc=fail", "spoofed_sender"),
                ("message on a closed case", "on_closed_case"))
STATUS_REASONS = ("status request in the text", "also asks for the status")


def _added_flags(m: Message, case: Case | None, detail: dict, linked: list[dict], *, opened: bool) -> set[str]:
    """The flags `m`'s decision put on its case: recorded on an event of the message, or
    told by the message's own reasons and the case (for mail recorded without them)."""
    added: set[str] = set()
    for d in (detail, *linked):
        recorded = d.get("flags")
        if isinstance(recorded, (list, tuple)):
            added |= {str(f) for f in recorded}
    if case is None or isinstance(detail.get("flags"), (list, tuple)):
        return added  # the decision's own flags were recorded with the message: exact
    reasons = [str(r) for r in detail.get("reasons") or ()]
    for prefix, flag in REASON_FLAGS:
        if any(r.startswith(prefix) for r in reasons):
            added |= {flag, "needs_triage"}
    asked_status = m.kind == "status_request" or any(r in STATUS_REASONS for r in reasons)
    if opened:  # what the case was opened with came from this message
        added |= set(case.flags) & {"needs_triage"}
        if asked_status:
            added |= set(case.flags) & {"status_unmatched", "status_from_unknown_address"}
    else:
        if (asked_status and "status_from_unknown_address" in case.flags
                and (m.from_email or "").lower() != (case.citizen_email or "").lower()):
            added.add("status_from_unknown_address")
        if case.status == "closed" and case.closed_at is not None and as_utc(case.closed_at) <= as_utc(m.received_at):
            added |= {"on_closed_case", "needs_triage"}
    return added


def _no_investigator(session: Session, case_id: int) -> bool:
    """The case was opened with nobody to assign (decide's needs_triage of its own)."""
    opened = session.execute(select(Event).where(Event.type == "case_opened", Event.case_id == case_id)).scalars()
    return any("no investigator available" in str(r) for e in opened for r in (e.detail or {}).get("reasons") or ())


def _triage_labels(m: Message, added: set[str], replies_to: dict[str, list[tuple[str, str]]], *,
                   opened: bool) -> tuple[str, ...]:
    """Why a message is in "Te beoordelen" (keys of `triage` in labels.j2), with the answer
    the sender got when they asked for the status from an address not on file."""
    shown = [f for f in TRIAGE_ORDER if f in added
             and not (f == "status_unmatched" and "status_from_unknown_address" in added)]
    shown += sorted(added - TRIAGE_FLAGS - QUIET_FLAGS - SHOWN_ELSEWHERE)  # e.g. a flag staff have no label for
    if not shown and "needs_triage" in added and not opened:
        shown.append("needs_triage")  # a reason not recorded: at least say it was flagged
    if {"status_from_unknown_address", "status_unmatched"} & added or ("spoofed_sender" in added
                                                                       and m.kind == "status_request"):
        states = [status for template, status in replies_to.get(m.message_id or "", [])
                  if template == "status_neutral"]
        shown.append(f"reply_{states[-1]}" if states else "no_reply")
    return tuple(shown)



def _replies_to(session: Session, messages: list[Message]) -> dict[str, list[tuple[str, str]]]:
    """(template, outbox status) of our replies, by the Message-ID of the mail they answer."""
    ids = [m.message_id for m in messages if m.message_id]
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if not ids:
        return found
    for in_reply_to, template, status in session.execute(
            select(Message.in_reply_to, Outbox.template, Outbox.status).join(Outbox, Outbox.message_pk == Message.id)
            .where(Message.direction == "out", Message.in_reply_to.in_(ids)).order_by(Outbox.id)):
        found[in_reply_to].append((template, status))
    return found


def _rules_error(error: str) -> Item:
    lines = error.strip().splitlines() or [""]
    return Item("", lines[0][:300], "", " / ".join(line.strip() for line in lines[1:6])[:1000])


def _undeliverable(session: Session, start: datetime, end: datetime, messages: list[Message],
                   cases: dict[int, Case], mine) -> list[Item]:
    items = []
    failed = session.execute(select(Event).where(Event.type == "reply_failed", Event.created_at >= start,
                                                 Event.created_at < end).order_by(Event.id)).scalars()
    for event in failed:
        row = session.get(Outbox, event.detail.get("outbox_id")) if event.detail.get("outbox_id") else None
        case = session.get(Case, event.case_id) if event.case_id else None
        if row is not None and row.template != "digest" and mine(case):
            items.append(Item(case.ref if case else "", row.template, row.recipient, (row.last_error or "")[:300]))
    for m in messages:
        case = cases.get(m.case_id) if m.case_id else None
        if m.kind == "automatic" and case is not None and "undeliverable" in case.flags and mine(case):
            items.append(Item(case.ref, m.subject, case.citizen_email, str(m.details.get("auto_reason", ""))[:300]))
    return items


def _overdue(session: Session, settings: Settings, day: date, end: datetime, mine) -> list[Item]:
    digest = settings.digest
    cutoff = subtract_working_days(day, digest.first_reaction_working_days, digest.extra_holidays)
    _, cutoff_end = day_window(cutoff, settings.schedule.timezone)
    rows = session.execute(select(Case).where(Case.first_reaction_at.is_(None), Case.status != "closed",
                                              Case.created_at < cutoff_end).order_by(Case.created_at)).scalars()
    zone = ZoneInfo(settings.schedule.timezone)
    return [Item(c.ref, c.subject, _who(c.citizen_name, c.citizen_email),
                 f"binnengekomen {as_utc(c.created_at).astimezone(zone):%d-%m-%Y}",
                 tuple(x for x in (c.investigator_name or c.investigator_email or "",) if x))
            for c in rows if mine(c)]


REPLY_STATES = {"sent": "antwoord verstuurd", "pending": "antwoord in de wachtrij",
                "held": "antwoord tegengehouden", "failed": "antwoord mislukt"}
OUTCOME_LABELS = {"refer_ombudsman": "doorverwezen naar de bevoegde ombudsdienst",
                  "refer_agency": "doorverwezen naar de dienst zelf (eerstelijn)",
                  "answer": "inhoudelijk beantwoord", "ask_info": "bijkomende informatie gevraagd"}


def _info(messages: list[Message], cases: dict[int, Case], touched: list[Case], start: datetime,
          end: datetime, mine, session: Session, events: dict[int, dict]) -> list[Section]:
    new = [c for c in touched if start <= as_utc(c.created_at) < end]
    groups: dict[str, list[Item]] = defaultdict(list)
    for c in new:
        label = " · ".join(x for x in (c.team or "", c.investigator_name or c.investigator_email or "") if x)
        groups[label or "niet toegewezen"].append(
            Item(c.ref, c.subject, _who(c.citizen_name, c.citizen_email),
                 c.language + ("" if c.priority == "normal" else f", prioriteit {c.priority}")))
    quick = [Item(c.ref, c.subject, _who(c.citizen_name, c.citizen_email), OUTCOME_LABELS.get(c.outcome, c.outcome))
             for c in new if c.outcome != "investigation"]
    forwards = [Item(cases[m.case_id].ref if m.case_id in cases else "", m.original_subject or m.subject,
                     m.original_sender or "", f"doorgestuurd door {_who(m.from_name, m.from_email)}")
                for m in messages if m.kind == "agency_forward" and mine(cases.get(m.case_id) if m.case_id else None)]
    replies = defaultdict(list)
    for row in session.execute(select(Outbox).where(Outbox.template.in_(("status", "status_neutral")),
                                                    Outbox.created_at >= start, Outbox.created_at < end)).scalars():
        replies[row.case_id].append(row)
    status = []
    for m in messages:
        case = cases.get(m.case_id) if m.case_id else None
        if m.kind == "status_request" and case is not None and mine(case):
            rows = replies.get(case.id, [])
            answer = ", ".join(REPLY_STATES.get(r.status, r.status) + ("" if r.template == "status" else
                                                                       " (neutraal: ander adres)")
                               for r in rows) or "geen automatisch antwoord"
            status.append(Item(case.ref, m.subject, _who(m.from_name, m.from_email), answer))
    solutions = [item for m in messages if m.case_id in cases and mine(cases[m.case_id])
                 for item in _solution(m, cases[m.case_id], events.get(m.id) or {})]
    return [Section("new_cases", sorted(groups.items())), Section("quick_service", _one(quick)),
            Section("agency_forwards", _one(forwards)), Section("solutions", _one(solutions)),
            Section("status_requests", _one(status))]


SOLUTION_LABELS = {"offered": "de dienst stelt een oplossing voor",
                   "accepted": "de burger aanvaardt de oplossing van de dienst"}


def _solution(m: Message, case: Case, detail: dict) -> list[Item]:
    """News for the case (policy 4): the agency offered a solution, or the citizen accepts it.
    Which message brought it: the decision's recorded flags, else the message's own text."""
    if not {"solution_offered", "solution_accepted"} & set(case.flags):
        return []
    recorded = detail.get("flags")
    if isinstance(recorded, (list, tuple)):
        offered, accepted = "solution_offered" in recorded, "solution_accepted" in recorded
    else:
        facts = intent.detect_facts(f"{m.subject}\n{m.body_text or ''}")
        offered, accepted = facts.solution_offered, facts.solution_accepted
    if not (offered or accepted):
        return []
    agency = (f"dienst: {m.original_sender}",) if m.original_sender else ()
    return [Item(case.ref, m.original_subject or m.subject, _who(m.from_name, m.from_email),
                 SOLUTION_LABELS["accepted" if accepted else "offered"], agency)]


def _chart(session: Session, settings: Settings, day: date, team: str | None = None) -> tuple[list[ChartDay], int]:
    days = settings.digest.chart_days
    first = day - timedelta(days=days - 1)
    start, _ = day_window(first, settings.schedule.timezone)
    _, end = day_window(day, settings.schedule.timezone)
    zone = ZoneInfo(settings.schedule.timezone)
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    query = select(Message.received_at, Message.kind).where(
        Message.direction == "in", Message.received_at >= start, Message.received_at < end)
    if team is not None:  # the team's cases only, like the rest of a team digest
        query = query.join(Case, Message.case_id == Case.id).where(Case.team == team)
    for received, kind in session.execute(query):
        counts[as_utc(received).astimezone(zone).date()][kind] += 1
    chart = []
    for offset in range(days):
        d = first + timedelta(days=offset)
        c = counts.get(d, Counter())
        chart.append(ChartDay(d, tuple((k, c[k]) for k in CHART_KINDS if c[k]), sum(c.values())))
    return chart, max((d.total for d in chart), default=0)


# ---- `mailbot status` ----------------------------------------------------------------

ERROR_EVENTS = ("poll_failed", "reply_failed", "rules_reload_failed", "digest_failed", "retention_failed")


def _sending(session: Session) -> dict:
    """Replies waiting for a retry, the oldest waiting reply and the newest SMTP error: a long
    SMTP outage shows here before any reply fails for good."""
    retrying, oldest = session.execute(
        select(func.count().filter(Outbox.last_error.is_not(None)), func.min(Outbox.created_at))
        .where(Outbox.status == "pending")).one()
    latest = session.execute(
        select(Outbox.last_error, Outbox.attempts)
        .where(Outbox.status == "pending", Outbox.last_error.is_not(None))
        .order_by(Outbox.next_attempt_at.desc()).limit(1)).first()
    return {"retrying": int(retrying or 0),
            "oldest_pending_at": as_utc(oldest).isoformat() if oldest else None,
            "last_error": latest.last_error[:300] if latest else None,
            "last_error_attempts": latest.attempts if latest else None}


def operational_status(session: Session, mailboxes: list[str], now: datetime) -> dict:
    """Last poll per mailbox, outbox queue sizes, quarantine count and the last errors."""
    states = {s.mailbox: s for s in session.execute(select(MailboxState)).scalars()}
    boxes = []
    for name in mailboxes:
        state = states.get(name)
        last = as_utc(state.last_poll_at) if state and state.last_poll_at else None
        until = as_utc(state.lease_until) if state and state.lease_until else None
        boxes.append({"mailbox": name, "last_poll_at": last.isoformat() if last else None,
                      "age_seconds": round((now - last).total_seconds()) if last else None,
                      "lease_owner": state.lease_owner if state and until and until > now else None})
    queue = dict(session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
    errors = session.execute(select(Event).where(Event.type.in_(ERROR_EVENTS))
                             .order_by(Event.id.desc()).limit(5)).scalars()
    return {
        "mailboxes": boxes,
        "outbox": {k: int(queue.get(k, 0)) for k in ("pending", "held", "failed")},
        "sending": _sending(session),
        "quarantined": session.execute(select(func.count()).select_from(Message)
                                       .where(Message.quarantine_reason.is_not(None))).scalar_one(),
        "last_errors": [{"at": as_utc(e.created_at).isoformat(), "type": e.type,
                         "error": str(e.detail.get("error") or e.detail.get("template") or "")[:300]}
                        for e in errors],
    }
