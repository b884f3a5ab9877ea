"""Queries behind the daily triage digest: what needs a decision, then what the robot did.

A digest day is a calendar day in the office's time zone. Sections come in the order
staff should read them: what needs a decision first (built here; the operational ones in
`digest_operations`), then what the robot did (`digest_info`). Which flags a message's decision added is worked out per message
(`digest_flags`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .automatic import by_subject_only
from .config import Settings
from .db import AddressStatus, Case, Event, Message, Outbox, as_utc
from .digest_flags import TRIAGE_FLAGS, added_flags, triage_labels
from .digest_info import idle_open, incoming_chart, info_sections, service_names
from .digest_items import (
    DECISION_LISTED, TRIAGE_LISTED, ChartDay, CountedSection, Item, Said, Section, capped, day_window,
    evidence_said, one_group, recorded, service_said, template_said, who,
)
from .digest_operations import outages, rules_reloads, staff_notices, waiting
from .holidays_be import subtract_working_days
from .imported_cases import opened_by_import
from .model import Kind
from .outbox import STAFF_MAIL


@dataclass
class DigestData:
    day: date
    team: str | None
    decisions: list[Section]
    info: list[Section]
    totals: dict[str, int]
    chart: list[ChartDay]
    chart_max: int


STAFF_UNFILED = "staff_unfiled"  # triage key (labels.j2): a colleague's mail that names no case
SUBJECT_ONLY = "alleen op het onderwerp als automatisch herkend: geen dossier, geen antwoord verstuurd"


def collect(session: Session, settings: Settings, day: date, *, team: str | None = None) -> DigestData:
    """Everything the digest of `day` shows (only `team`'s cases when a team is given)."""
    start, end = day_window(day, settings.schedule.timezone)
    in_window = (Message.direction == "in", Message.received_at >= start, Message.received_at < end)
    services = service_names(session, settings.rules_dir)
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
    webforms = {address.lower() for address in settings.webform_senders}
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
        # A colleague's mail to the mailbox that names no case: staff file it where it belongs.
        unfiled = case is None and m.kind == str(Kind.STAFF_MESSAGE)
        if mine(case) and (uncertain or flagged_here or silenced or unfiled):
            scored = tuple(evidence_said(e, services=services) for e in evidence)
            why = tuple(recorded(str(d.get("reason") or d.get("triage_reason"))) for d in (detail, *linked.get(m.id, []))
                        if (d.get("reason") or d.get("triage_reason")) and "needs_triage" in (d.get("flags") or ()))
            # No address to answer (a web form without one): the phone staff are told to call.
            phone = ((f"tel. {case.contact_phone}",) if case is not None and case.contact_phone
                     and not case.citizen_email else ())
            triage.append(Item(case.ref if case else "", m.subject, _sender(m, case, webforms), m.kind,
                               ((SUBJECT_ONLY,) if silenced else ()) + why + scored + phone,
                               triage_labels(m, added[m.id], replies_to, opened=m.id in opened)
                               + ((STAFF_UNFILED,) if unfiled else ())))
    zone = ZoneInfo(settings.schedule.timezone)
    by_message = _FlagItems(messages, cases, events, linked, added, opened, mine, zone, services)
    decisions = [
        capped("needs_triage", one_group(triage), TRIAGE_LISTED),
        capped("multi_addressed", one_group(by_message.items("multi_addressed", "possible_duplicate")),
               DECISION_LISTED),
        capped("agency_in_cc", one_group(by_message.items("agency_in_cc")), DECISION_LISTED),
        capped("contact_wishes", one_group(by_message.items("anonymity_requested", "prefers_phone",
                                                            "alternative_email")), DECISION_LISTED),
    ]
    intake_wide = team is None
    decisions.append(capped("quarantined", one_group([
        Item(cases[m.case_id].ref if m.case_id in cases else "", m.subject or "(geen onderwerp)",
             who(m.from_name, m.from_email), recorded(m.quarantine_reason or ""), (f"{m.size} bytes",))
        for m in messages if m.quarantine_reason is not None and intake_wide]), DECISION_LISTED))
    decisions.append(capped("undeliverable", one_group(_undeliverable(session, start, end, messages, cases, mine,
                                                                      zone)),
                            DECISION_LISTED))
    decisions.append(capped("not_sent", one_group(waiting(session, end, mine, zone)
                                                  + (outages(session, start, end, zone) if intake_wide else [])),
                            DECISION_LISTED))
    held = session.execute(select(Outbox, Case).outerjoin(Case, Outbox.case_id == Case.id)
                           .where(Outbox.status == "held", Outbox.created_at < end).order_by(Outbox.id)).all()
    decisions.append(capped("held", one_group([Item(c.ref if c else "", template_said(row.template), row.recipient,
                                                    recorded(row.last_error or ""),
                                                    (f"versturen: mailbot outbox release {row.id} · "
                                                     f"schrappen: mailbot outbox cancel {row.id}",))
                                               for row, c in held if mine(c)]), DECISION_LISTED))
    decisions.append(capped("staff_notices", one_group(staff_notices(session, start, end, mine, zone)),
                            DECISION_LISTED))
    decisions.append(capped("rules_failed", one_group(rules_reloads(session, start, end, zone) if intake_wide
                                                      else []), DECISION_LISTED))
    decisions.append(_overdue(session, settings, day, team))
    info = info_sections(messages, cases, touched, start, end, mine, session, events, added=added,
                         replies_to=replies_to, prefix=settings.office.reference_prefix,
                         tz=settings.schedule.timezone)
    idle = idle_open(session, settings, day, team)
    info += [idle] if idle is not None else []
    chart, chart_max = incoming_chart(session, settings, day, team)
    sent = select(func.count()).select_from(Outbox).where(
        Outbox.status == "sent", Outbox.sent_at >= start, Outbox.sent_at < end,
        Outbox.template.not_in(STAFF_MAIL))
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


def _undeliverable(session: Session, start: datetime, end: datetime, messages: list[Message],
                   cases: dict[int, Case], mine, zone: ZoneInfo) -> list[Item]:
    items = []
    failed = session.execute(select(Event).where(Event.type == "reply_failed", Event.created_at >= start,
                                                 Event.created_at < end).order_by(Event.id)).scalars()
    for event in failed:
        row = session.get(Outbox, event.detail.get("outbox_id")) if event.detail.get("outbox_id") else None
        case = session.get(Case, event.case_id) if event.case_id else None
        if row is not None and row.template not in STAFF_MAIL and mine(case):  # staff mail: `digest_operations.staff_notices`
            items.append(Item(case.ref if case else "", template_said(row.template), row.recipient,
                              recorded(row.last_error or "")))
    for m in messages:
        case = cases.get(m.case_id) if m.case_id else None
        if m.kind == "automatic" and case is not None and "undeliverable" in case.flags and mine(case):
            items.append(_bounce(session, m, case, zone))
    return items


def _sender(m: Message, case: Case | None, webforms: set[str]) -> str:
    """Who wrote: for a web form's mail the citizen the case names, not the form robot."""
    if case is not None and (m.from_email or "").lower() in webforms and (case.citizen_name or case.citizen_email):
        return who(case.citizen_name, case.citizen_email)
    return who(m.from_name, m.from_email)


def _bounce(session: Session, m: Message, case: Case, zone: ZoneInfo) -> Item:
    """A bounce of our reply: which reply came back (the last one sent to the address on file
    before the bounce) and why (the status and diagnostic `addresses.record_bounce` stored)."""
    auto_reason = str((m.details or {}).get("auto_reason", ""))
    address = (case.citizen_email or "").lower()
    reply = session.execute(select(Outbox).where(
        Outbox.case_id == case.id, Outbox.status == "sent", Outbox.created_at <= m.received_at,
        Outbox.template != "digest", func.lower(Outbox.recipient) == address)
        .order_by(Outbox.created_at.desc(), Outbox.id.desc()).limit(1)).scalars().first() if address else None
    status = session.get(AddressStatus, address) if address else None
    if not auto_reason.startswith("bounce"):
        why = recorded(auto_reason)
    elif (status is not None and status.source == "bounce" and status.status == "undeliverable"
          and status.reason and status.reason != "permanent bounce"):
        code, _, diagnostic = status.reason.partition(" ")
        why = (Said("bounce.dsn", (("status", code), ("diagnostic", diagnostic[:300])), auto_reason)
               if re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", code) else
               Said("bounce.diagnostic", (("diagnostic", status.reason[:300]),), auto_reason))
    else:
        why = Said("bounce", (), auto_reason)
    title = (Said("bounced_reply", (("template", template_said(reply.template)),
                                    ("sent", f"{as_utc(reply.created_at).astimezone(zone):%d-%m-%Y %H:%M}")))
             if reply is not None else Said("bounced_reply_unknown"))
    return Item(case.ref, title, case.citizen_email, why,
                (Said("bounce_subject", (("subject", (m.subject or "")[:300]),), m.subject or ""),))


OVERDUE_LISTED = 100  # the oldest ones listed; the section counts them all


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


class _FlagItems:
    """The flag sections (several services, agency in Cc, contact wishes) from the flags each
    of the day's messages added to its case, never from the case's accumulated flags: a case
    flagged days ago is not listed again for a plain follow-up. A case is listed once per
    section, with the flags of that section its messages added today and the section's extras."""

    def __init__(self, messages: list[Message], cases: dict[int, Case], events: dict[int, dict],
                 linked: dict[int, list[dict]], added: dict[int, set[str]], opened: set[int], mine,
                 zone: ZoneInfo, services: dict[str, str]) -> None:
        self.messages, self.cases, self.events, self.linked = messages, cases, events, linked
        self.added, self.opened, self.mine, self.zone = added, opened, mine, zone
        self.services = services  # id → Dutch name, from the rules in force

    def flags(self, m: Message, case: Case) -> set[str]:
        """What `m` added: its recorded flags; for mail recorded without them (older rows), the
        case's flags when `m` opened the case, else none."""
        if isinstance((self.events.get(m.id) or {}).get("flags"), (list, tuple)):
            return self.added[m.id]
        return self.added[m.id] | (set(case.flags) if m.id in self.opened else set())

    def items(self, *wanted: str) -> list[Item]:
        found: dict[int, tuple[Case, list[Message], set[str]]] = {}
        for m in self.messages:
            case = self.cases.get(m.case_id) if m.case_id else None
            if case is None or not self.mine(case):
                continue
            got = self.flags(m, case) & set(wanted)
            if got:
                entry = found.setdefault(case.id, (case, [], set()))
                entry[1].append(m)
                entry[2].update(got)
        return [Item(case.ref, case.subject, who(case.citizen_name, case.citizen_email),
                     ", ".join(f for f in wanted if f in flags), self._extras(case, mails, flags, wanted))
                for case, mails, flags in sorted(found.values(), key=lambda e: e[0].ref)]

    def _extras(self, case: Case, mails: list[Message], flags: set[str], wanted: tuple[str, ...]) -> tuple[str, ...]:
        extras: list[str] = []
        if {"multi_addressed", "agency_in_cc"} & set(wanted):
            extras += [service_said(service_id, self.services) for service_id in case.also_sent_to]
        if "possible_duplicate" in flags:
            extras += self._duplicates(case, mails)
        if "anonymity_requested" in wanted:  # the contact wishes
            extras += [f"{label} {value}" for label, value in (("tel.", case.contact_phone),
                                                               ("e-mail:", case.contact_email)) if value]
        # The mail that brought the flags, when it is not the one that opened the case.
        extras += [f"in bericht van {as_utc(m.received_at).astimezone(self.zone):%d-%m %H:%M}: {m.subject}"[:300]
                   for m in mails if m.id not in self.opened and "possible_duplicate" not in self.added[m.id]]
        return tuple(dict.fromkeys(extras))

    def _duplicates(self, case: Case, mails: list[Message]) -> list[str]:
        """Which case the mail may duplicate: the one the new case was opened beside, or the case
        a new complaint joined (the match review names it)."""
        lines = []
        for m in mails:
            if "possible_duplicate" not in self.added[m.id] and not (m.id in self.opened and case.duplicate_of):
                continue
            if m.id in self.opened:
                if case.duplicate_of is not None:
                    lines.append(f"duplicaat van {case.duplicate_of.ref}")
                continue
            named = next((str(d["duplicate_of"]) for d in self.linked.get(m.id, []) if d.get("duplicate_of")),
                         case.ref)
            when = f"{as_utc(m.received_at).astimezone(self.zone):%d-%m %H:%M}"
            lines.append((f"nieuwe klacht van {when} bij dit dossier gevoegd, mogelijk dezelfde klacht: {m.subject}"
                          if named == case.ref else
                          f"nieuwe klacht van {when}, mogelijk dezelfde klacht als dossier {named}: {m.subject}")[:300])
        return lines


