"""The digest's sections on what the robot did (new cases, quick service, agency forwards,
solutions, status requests) and the chart of incoming mail per day."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from . import intent
from .config import Settings
from .db import Case, Event, Message, Outbox, as_utc
from .digest_items import (
    INFO_LISTED, ChartDay, CountedSection, Item, Said, Section, capped, day_window, one_group, who,
)
from .imported_cases import IMPORTED
from .match import find_references
from .office_time import office_date
from .last_good import saved_rule_files
from .rules import ServicesFile, read_rule_files
from .rules_yaml import CheckedFile, parse_and_validate

CHART_KINDS = ("new_complaint", "follow_up", "agency_forward", "status_request", "automatic",
               "unreadable", "staff_message")

REPLY_STATES = {"sent": "antwoord verstuurd", "pending": "antwoord in de wachtrij",
                "held": "antwoord tegengehouden", "failed": "antwoord mislukt"}
OUTCOME_LABELS = {"refer_ombudsman": "doorverwezen naar de bevoegde ombudsdienst",
                  "refer_agency": "doorverwezen naar de dienst zelf (eerstelijn)",
                  "answer": "inhoudelijk beantwoord", "ask_info": "bijkomende informatie gevraagd"}


def info_sections(messages: list[Message], cases: dict[int, Case], touched: list[Case], start: datetime,
                  end: datetime, mine, session: Session, events: dict[int, dict], *,
                  added: dict[int, set[str]], replies_to: dict[str, list[tuple[str, str]]],
                  prefix: str, tz: str) -> list[Section]:
    """What the robot did with the day's mail: new cases, quick service, referrals by another
    ombudsman service, agency forwards, solutions, status requests."""
    new = [c for c in touched if start <= as_utc(c.created_at) < end]
    groups: dict[str, list[Item]] = defaultdict(list)
    for c in new:
        label = " · ".join(x for x in (c.team or "", c.investigator_name or c.investigator_email or "") if x)
        groups[label or "niet toegewezen"].append(
            Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email), _language(c)))
    quick_cases = [c for c in new if c.outcome != "investigation"]
    answers = _first_answers(session, [c.id for c in quick_cases])
    quick = [Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email),
                  f"{OUTCOME_LABELS.get(c.outcome, c.outcome)}; "
                  + (QUICK_REPLY_STATES.get(answers[c.id], answers[c.id]) if c.id in answers else NOT_ANSWERED))
             for c in quick_cases]
    referred = {m.id for m in messages if _referral(m, added.get(m.id, set()), events.get(m.id) or {})}
    referrals = [Item(cases[m.case_id].ref if m.case_id in cases else "", m.original_subject or m.subject,
                      who(m.from_name, m.from_email),
                      f"klacht van {m.original_sender or 'een burger zonder adres'}, doorverwezen door een andere "
                      "ombudsdienst")
                 for m in messages if m.id in referred and mine(cases.get(m.case_id) if m.case_id else None)]
    forwards = [Item(cases[m.case_id].ref if m.case_id in cases else "", m.original_subject or m.subject,
                     m.original_sender or "", f"doorgestuurd door {who(m.from_name, m.from_email)}")
                for m in messages if m.kind == "agency_forward" and m.id not in referred
                and mine(cases.get(m.case_id) if m.case_id else None)]
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
            status.append(Item(case.ref, m.subject, who(m.from_name, m.from_email), answer))
        elif m.kind == "status_request" and case is None:
            # Answered with the status of each of the sender's cases (status_overview): no case of its own.
            refs = _overview_refs(events.get(m.id) or {}, prefix)
            if team_sees(refs, mine, session):
                states = [status for template, status in replies_to.get(m.message_id or "", [])]
                answer = (", ".join(REPLY_STATES.get(s, s) for s in states) + " (overzicht van de dossiers)"
                          if states else "geen automatisch antwoord")
                status.append(Item(", ".join(refs), m.subject, who(m.from_name, m.from_email), answer))
    solutions = [item for m in messages if m.case_id in cases and mine(cases[m.case_id])
                 for item in _solution(m, cases[m.case_id], events.get(m.id) or {})]
    return [capped("new_cases", sorted(groups.items()), INFO_LISTED),
            capped("quick_service", one_group(quick), INFO_LISTED),
            capped("referrals", one_group(referrals), INFO_LISTED),
            capped("agency_forwards", one_group(forwards), INFO_LISTED),
            capped("solutions", one_group(solutions), INFO_LISTED),
            capped("status_requests", one_group(status), INFO_LISTED),
            capped("imported_open", one_group(_imported_open(session, start, end, mine, tz)), INFO_LISTED)]


def _imported_open(session: Session, start: datetime, end: datetime, mine, tz: str) -> list[Item]:
    """Cases a `mailbot import` opened on the day and left open (recent mail): dated by their
    own mail, they fall in digests already sent, and the import sent no reply."""
    rows = session.execute(select(Case).join(Event, Event.case_id == Case.id).where(
        Event.type == IMPORTED, Event.created_at >= start, Event.created_at < end, Case.status == "open")
        .order_by(Case.created_at, Case.id)).scalars()
    return [Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email),
                 f"ontvangen {office_date(c.created_at, tz):%d-%m-%Y}, geïmporteerd: geen automatisch antwoord "
                 "verstuurd")
            for c in rows if mine(c)]


def _language(c: Case) -> Said:
    """A new case's language, and its priority when not normal."""
    language = Said(f"language.{c.language}", raw=c.language)
    if c.priority == "normal":
        return Said("new_case", (("language", language),), c.language)
    return Said("new_case_priority", (("language", language),
                                      ("priority", Said(f"priority.{c.priority}", raw=c.priority))),
                f"{c.language}, prioriteit {c.priority}")


# The state of a quick-service case's answer (referral, direct answer, question): staff see
# whether the citizen got it. Reminders sent beside it (agency in Cc, several services) are not it.
QUICK_REPLY_STATES = {"sent": "antwoord verstuurd", "pending": "antwoord nog niet verstuurd (wachtrij)",
                      "held": "antwoord tegengehouden", "failed": "antwoord mislukt",
                      "cancelled": "antwoord geschrapt"}
NOT_ANSWERED = "geen antwoord verstuurd: neem zelf contact op"
REMINDERS = ("agency_in_cc", "multi_addressed", "digest", "staff_notice")


def _first_answers(session: Session, case_ids: list[int]) -> dict[int, str]:
    """The outbox status of the first answer of each case (not a reminder)."""
    if not case_ids:
        return {}
    found: dict[int, str] = {}
    for case_id, status in session.execute(
            select(Outbox.case_id, Outbox.status).where(Outbox.case_id.in_(case_ids),
                                                        Outbox.template.not_in(REMINDERS))
            .order_by(Outbox.id)):
        if case_id is not None:
            found.setdefault(case_id, status)
    return found


def _referral(m: Message, added: set[str], detail: dict) -> bool:
    """Another ombudsman service referred the citizen's complaint to us (its cover mail)."""
    return "referred_by" in added or any(str(r).startswith("referred by ") for r in detail.get("reasons") or ())


def _overview_refs(detail: dict, prefix: str) -> list[str]:
    """The cases a status overview told the sender about: the decision's recorded reason names them."""
    refs: list[str] = []
    for reason in detail.get("reasons") or ():
        if "status request from the address on file" in str(reason):
            refs += [r for r in find_references(str(reason), "", prefix) if r not in refs]
    return refs


def team_sees(refs: list[str], mine, session: Session) -> bool:
    """A caseless item is in a team digest when one of the cases it names is the team's."""
    if mine(None):
        return True
    return any(mine(c) for c in session.execute(select(Case).where(Case.ref.in_(refs))).scalars()) if refs else False


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
    return [Item(case.ref, m.original_subject or m.subject, who(m.from_name, m.from_email),
                 SOLUTION_LABELS["accepted" if accepted else "offered"], agency)]


def incoming_chart(session: Session, settings: Settings, day: date,
                   team: str | None = None) -> tuple[list[ChartDay], int]:
    """Incoming mail per kind on each of the `chart_days` up to `day`, and the largest day total."""
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


SERVICES = "services.yaml"


def service_names(session: Session, rules_dir: Path) -> dict[str, str]:
    """The Dutch name of each service by id, from the rules in force: the set the robot saved
    in the database (`last_good`: what `mailbot run` routes with), else `rules_dir` on disk.
    Empty when neither is readable: the ids are then shown as recorded."""
    files = saved_rule_files(session) or read_rule_files(Path(rules_dir))
    parsed = parse_and_validate(CheckedFile(SERVICES, SERVICES), files.get(SERVICES))
    if not isinstance(parsed, ServicesFile):
        return {}
    return {service.id: service.name_in("nl") for service in parsed.services}


IDLE_OPEN = "idle_open"
WINDOWS_PER_QUERY = 100  # day ranges ORed in one statement (SQLite's expression depth is 1,000)


def idle_open(session: Session, settings: Settings, day: date, team: str | None) -> Section | None:
    """Open cases whose last activity (`Case.updated_at`: opened, mail in, closed or reopened)
    was exactly `digest.idle_after_days` days before `day`, or a multiple of it: each is
    listed on the day it crosses the threshold and again every as many days while it stays
    idle. Longest idle first. None when `idle_after_days` is 0 (the section is off)."""
    every = settings.digest.idle_after_days
    if not every:
        return None
    zone = ZoneInfo(settings.schedule.timezone)
    still_open = [Case.status == "open"] + ([Case.team == team] if team is not None else [])
    oldest = session.execute(select(func.min(Case.updated_at)).where(*still_open)).scalar_one()
    if oldest is None:
        return Section(IDLE_OPEN)
    windows = idle_windows(day, every, settings.schedule.timezone, as_utc(oldest).astimezone(zone).date())
    if not windows:
        return Section(IDLE_OPEN)
    total, rows = 0, list[Case]()
    for first in range(0, len(windows), WINDOWS_PER_QUERY):  # SQLite limits an expression's depth
        crossed: ColumnElement[bool] = or_(*((Case.updated_at >= start) & (Case.updated_at < end)
                                             for start, end in windows[first:first + WINDOWS_PER_QUERY]))
        total += session.execute(select(func.count()).select_from(Case).where(*still_open, crossed)).scalar_one()
        rows += session.execute(select(Case).where(*still_open, crossed).order_by(Case.updated_at, Case.id)
                                .limit(INFO_LISTED)).scalars()
    rows = sorted(rows, key=lambda c: (as_utc(c.updated_at), c.id))[:INFO_LISTED]
    items = [_idle_item(c, day, zone) for c in rows]
    groups = one_group(items)
    if total <= len(items):
        return Section(IDLE_OPEN, groups)
    return CountedSection(IDLE_OPEN, groups + [(f"… en nog {total - len(items)}", [])], total=total)


def idle_windows(day: date, every: int, tz: str, oldest: date) -> list[tuple[datetime, datetime]]:
    """[start, end) in UTC of the local days `every`, 2×`every`, … days before `day`, back to
    `oldest`: a case whose last activity falls in one crosses a multiple of `every` on `day`."""
    crossings = (day - oldest).days // every
    return [day_window(day - timedelta(days=every * n), tz) for n in range(1, crossings + 1)]


def _idle_item(c: Case, day: date, zone: ZoneInfo) -> Item:
    last = as_utc(c.updated_at).astimezone(zone).date()
    investigator = c.investigator_name or c.investigator_email
    return Item(c.ref, c.subject, who(c.citizen_name, c.citizen_email),
                f"laatste activiteit {last:%d-%m-%Y}, {(day - last).days} dagen zonder activiteit",
                (f"onderzoeker: {investigator}" if investigator else "geen onderzoeker toegewezen",
                 f"afgehandeld? mailbot case close {c.ref}"))
