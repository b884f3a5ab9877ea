"""Queries behind the daily triage digest: what needs a decision, then what the robot did.

A digest day is a calendar day in the office's time zone. Sections come in the order
staff should read them: what needs a decision first (built here), then what the robot did
(`digest_info`). Which flags a message's decision added is worked out per message
(`digest_flags`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .automatic import by_subject_only
from .config import Settings
from .db import Case, Event, Message, Outbox, as_utc
from .digest_flags import TRIAGE_FLAGS, added_flags, triage_labels
from .digest_info import incoming_chart, info_sections
from .digest_items import ChartDay, Item, Section, day_window, one_group, who
from .holidays_be import subtract_working_days
from .imported_cases import opened_by_import


@dataclass
class DigestData:
    day: date
    team: str | None
    decisions: list[Section]
    info: list[Section]
    totals: dict[str, int]
    chart: list[ChartDay]
    chart_max: int


SUBJECT_ONLY = "alleen op het onderwerp als automatisch herkend: geen dossier, geen antwoord verstuurd"


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
        return [Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email),
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
    added = {m.id: added_flags(m, cases.get(m.case_id) if m.case_id else None, events.get(m.id) or {},
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
            triage.append(Item(case.ref if case else "", m.subject, who(m.from_name, m.from_email), m.kind,
                               ((SUBJECT_ONLY,) if silenced else ()) + why + scored,
                               triage_labels(m, added[m.id], replies_to, opened=m.id in opened)))
    decisions = [
        Section("needs_triage", one_group(triage)),
        Section("multi_addressed", one_group(flagged("multi_addressed", "possible_duplicate"))),
        Section("agency_in_cc", one_group(flagged("agency_in_cc"))),
        Section("contact_wishes", one_group(flagged("anonymity_requested", "prefers_phone", "alternative_email"))),
    ]
    intake_wide = team is None
    decisions.append(Section("quarantined", one_group([
        Item("", m.subject or "(geen onderwerp)", m.from_email, (m.quarantine_reason or "")[:300],
             (f"{m.size} bytes",)) for m in messages if m.quarantine_reason is not None and intake_wide])))
    decisions.append(Section("undeliverable", one_group(_undeliverable(session, start, end, messages, cases, mine))))
    held = session.execute(select(Outbox, Case).outerjoin(Case, Outbox.case_id == Case.id)
                           .where(Outbox.status == "held", Outbox.created_at < end).order_by(Outbox.id)).all()
    decisions.append(Section("held", one_group([Item(c.ref if c else "", row.template, row.recipient,
                                                     row.last_error or "",
                                                     (f"versturen: mailbot outbox release {row.id} · "
                                                      f"schrappen: mailbot outbox cancel {row.id}",))
                                                for row, c in held if mine(c)])))
    failures = session.execute(select(Event).where(Event.type == "rules_reload_failed", Event.created_at >= start,
                                                   Event.created_at < end).order_by(Event.id)).scalars()
    decisions.append(Section("rules_failed", one_group([_rules_error(str(e.detail.get("error", "")))
                                                        for e in failures if intake_wide])))
    decisions.append(_overdue(session, settings, day, team))
    info = info_sections(messages, cases, touched, start, end, mine, session, events)
    chart, chart_max = incoming_chart(session, settings, day, team)
    sent = select(func.count()).select_from(Outbox).where(
        Outbox.status == "sent", Outbox.sent_at >= start, Outbox.sent_at < end, Outbox.template != "digest")
    if team is not None:  # a team digest counts the team's mail only
        sent = sent.join(Case, Outbox.case_id == Case.id).where(Case.team == team)
    totals = {"received": sum(1 for m in messages if mine(cases.get(m.case_id) if m.case_id else None)),
              "new_cases": sum(1 for c in touched if start <= as_utc(c.created_at) < end),
              "replies_sent": session.execute(sent).scalar_one(),
              "needs_decision": sum(s.count for s in decisions)}
    return DigestData(day, team, decisions, info, totals, chart, chart_max)


def _no_investigator(session: Session, case_id: int) -> bool:
    """The case was opened with nobody to assign (decide's needs_triage of its own)."""
    opened = session.execute(select(Event).where(Event.type == "case_opened", Event.case_id == case_id)).scalars()
    return any("no investigator available" in str(r) for e in opened for r in (e.detail or {}).get("reasons") or ())


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


OVERDUE_LISTED = 100  # the oldest ones listed; the section counts them all


@dataclass
class CountedSection(Section):
    """A section that lists some of its items (the rest in a last line) and counts all."""

    total: int = 0

    @property
    def count(self) -> int:
        return self.total


def _overdue(session: Session, settings: Settings, day: date, team: str | None) -> Section:
    """Cases still without a first reaction after the working days allowed, oldest first.
    Imported cases never are: the office answered them before mailbot, outside it."""
    digest = settings.digest
    cutoff = subtract_working_days(day, digest.first_reaction_working_days, digest.extra_holidays)
    _, cutoff_end = day_window(cutoff, settings.schedule.timezone)
    waiting = [Case.first_reaction_at.is_(None), Case.status != "closed", Case.created_at < cutoff_end,
               ~opened_by_import()]
    if team is not None:
        waiting.append(Case.team == team)
    total = session.execute(select(func.count()).select_from(Case).where(*waiting)).scalar_one()
    rows = session.execute(select(Case).where(*waiting).order_by(Case.created_at, Case.id)
                           .limit(OVERDUE_LISTED)).scalars()
    zone = ZoneInfo(settings.schedule.timezone)
    items = [Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email),
                  f"binnengekomen {as_utc(c.created_at).astimezone(zone):%d-%m-%Y}",
                  tuple(x for x in (c.investigator_name or c.investigator_email or "",) if x))
             for c in rows]
    groups = one_group(items)
    if total > len(items):
        groups.append((f"… en nog {total - len(items)} dossiers, recenter dan de {len(items)} hierboven", []))
    return CountedSection("overdue", groups, total=total)
