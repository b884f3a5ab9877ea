"""The digest's sections on what kept the robot from its work: rule reloads refused (and
whether they were put right), replies and staff notices that did not leave, failed polls and
copies. Built by `digest_data.collect` among the decisions."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .db import Case, Event, LastGoodRules, Outbox, as_utc
from .digest_items import Item, Said, recorded, template_said
from .outbox import STAFF_MAIL, STAFF_NOTICE


RELOAD_FAILED = "rules_reload_failed"  # rules or templates on disk refused (at a reload or at start)
# A reload that took the files on disk after a refusal. Also a set saved as the last good one
# (`last_good`: saved when a check of the files on disk passed, at a reload or at a start).
RELOADED = "rules_reloaded"


def rules_reloads(session: Session, start: datetime, end: datetime, zone: ZoneInfo) -> list[Item]:
    """The day's refused reloads, each saying whether a later reload took the files before the
    day ended; and, when the last reload news before the day's end is a refusal of an earlier
    day, one line saying the files on disk are still refused (every day until they pass)."""
    day_failures = list(session.execute(select(Event).where(
        Event.type == RELOAD_FAILED, Event.created_at >= start, Event.created_at < end).order_by(Event.id)).scalars())
    last = day_failures[-1] if day_failures else session.execute(
        select(Event).where(Event.type == RELOAD_FAILED, Event.created_at < start)
        .order_by(Event.created_at.desc(), Event.id.desc()).limit(1)).scalars().first()
    if last is None:
        return []
    taken = _reloads_taken(session, as_utc(day_failures[0].created_at if day_failures else last.created_at), end)
    items = []
    for failure in day_failures:
        at = as_utc(failure.created_at)
        recovered = next((t for t in taken if t > at), None)
        items.append(rules_error(str((failure.detail or {}).get("error", "")), (
            f"geweigerd om {at.astimezone(zone):%H:%M}; " + (
                f"daarna hersteld om {recovered.astimezone(zone):%H:%M}: de bestanden op schijf zijn in gebruik"
                if recovered is not None else
                "aan het eind van de dag nog altijd geweigerd: de laatste goede regels en sjablonen bleven in "
                "gebruik; wat er fout is: mailbot rules check"),)))
    if not day_failures and not any(t > as_utc(last.created_at) for t in taken):
        since = as_utc(last.created_at).astimezone(zone)
        error = rules_error(str((last.detail or {}).get("error", "")), ())
        items.append(Item("", f"De regel- of sjabloonbestanden op schijf worden nog altijd geweigerd "
                              f"(sinds {since:%d-%m-%Y %H:%M})", "", error.title,
                          ("de robot werkt met de laatste goede regels en sjablonen; wat er fout is: "
                           "mailbot rules check",)))
    return items


def _reloads_taken(session: Session, since: datetime, end: datetime) -> list[datetime]:
    """When the files on disk passed the check in [since, end), in order: a recorded reload
    (`RELOADED`), or the last good set saved (only the latest save is kept)."""
    times = [as_utc(t) for t in session.execute(select(Event.created_at).where(
        Event.type == RELOADED, Event.created_at >= since, Event.created_at < end)).scalars()]
    saved = session.execute(select(func.max(LastGoodRules.saved_at))).scalar_one()
    if saved is not None and since <= as_utc(saved) < end:
        times.append(as_utc(saved))
    return sorted(times)


def rules_error(error: str, extras: tuple[str, ...]) -> Item:
    lines = error.strip().splitlines() or [""]
    return Item("", lines[0][:300], "", " / ".join(line.strip() for line in lines[1:6])[:1000], extras)


WAITING_MINUTES = 60  # a reply still not sent an hour after it was queued: staff hear of it


def _stuck(session: Session, end: datetime, *templates: str, mine) -> list[tuple[Outbox, Case | None]]:
    """Outbox rows still waiting to go out (pending: never tried or retrying) that were queued
    more than WAITING_MINUTES before the day ended, or that failed at least once; of `templates`
    when given, else of every template but mail to staff."""
    late = end - timedelta(minutes=WAITING_MINUTES)
    which = Outbox.template.in_(templates) if templates else Outbox.template.not_in(STAFF_MAIL)
    rows = session.execute(select(Outbox, Case).outerjoin(Case, Outbox.case_id == Case.id).where(
        Outbox.status == "pending", which, Outbox.created_at < end,
        or_(Outbox.created_at < late, Outbox.last_error.is_not(None))).order_by(Outbox.created_at, Outbox.id)).all()
    return [(row, case) for row, case in rows if mine(case)]


def _queued_since(row: Outbox, zone: ZoneInfo) -> str:
    return f"in de wachtrij sinds {as_utc(row.created_at).astimezone(zone):%d-%m-%Y %H:%M}, {row.attempts} poging(en)"


def _not_tried(row: Outbox) -> Said:
    return recorded(row.last_error) if row.last_error else Said("not_tried", raw="nog niet geprobeerd")


def waiting(session: Session, end: datetime, mine, zone: ZoneInfo) -> list[Item]:
    """Replies to citizens still waiting to go out (`_stuck`): the citizen got nothing."""
    return [Item(c.ref if c else "", template_said(row.template), row.recipient, _not_tried(row),
                 (_queued_since(row, zone),))
            for row, c in _stuck(session, end, mine=mine)]


def staff_notices(session: Session, start: datetime, end: datetime, mine, zone: ZoneInfo) -> list[Item]:
    """Staff notices (a rule's `notify:`) that did not leave: still waiting (`_stuck`) or failed
    on the day (their `reply_failed` event). Apart from the citizens' replies: the citizen is
    not affected, but whoever the rule wanted told has not heard of the case."""
    items = [Item(c.ref if c else "", c.subject if c else "", row.recipient, _not_tried(row),
                  (_queued_since(row, zone),))
             for row, c in _stuck(session, end, STAFF_NOTICE, mine=mine)]
    failed = session.execute(select(Event, Outbox, Case).join(Outbox, Outbox.id == Event.detail["outbox_id"]
                                                              .as_integer())
                             .outerjoin(Case, Outbox.case_id == Case.id)
                             .where(Event.type == "reply_failed", Event.created_at >= start, Event.created_at < end,
                                    Outbox.template == STAFF_NOTICE).order_by(Event.id)).all()
    for event, row, c in failed:
        if mine(c):
            items.append(Item(c.ref if c else "", c.subject if c else "", row.recipient,
                              recorded(row.last_error or str(event.detail.get("reason") or "")),
                              (f"mislukt om {as_utc(event.created_at).astimezone(zone):%H:%M} na "
                               f"{event.detail.get('attempts', row.attempts)} poging(en); opnieuw proberen: "
                               f"mailbot outbox retry {row.id}",)))
    return items


OUTAGES = {"poll_failed": ("mailbox", "postbus {} niet gelezen: mail van burgers bleef liggen"),
           "sent_copy_failed": ("folder", "kopie van verstuurde antwoorden niet bewaard in {}"),
           # A copy refused for one recipient names them; a digest that could not be built, its day.
           "digest_failed": ("recipient", "dagoverzicht niet bezorgd: {}")}


def _happened(event: Event) -> datetime:
    """When an outage happened: an event kept in memory while the database was away is
    written later, with the moment it was noted (`scheduler`, `noted_at`)."""
    noted = (event.detail or {}).get("noted_at")
    try:
        return as_utc(datetime.fromisoformat(noted)) if isinstance(noted, str) else as_utc(event.created_at)
    except ValueError:
        return as_utc(event.created_at)


def _clock(moment: datetime, today: date) -> str:
    """A time of the digest's day; of another day (an outage written after midnight, when the
    database came back) with its date."""
    return f"{moment:%H:%M}" if moment.date() == today else f"{moment:%d-%m %H:%M}"


def outages(session: Session, start: datetime, end: datetime, zone: ZoneInfo) -> list[Item]:
    """The day's failed polls and failed copies of sent replies, one item per mailbox (folder) and
    error, with how often and when."""
    grouped: dict[tuple[str, str, str], list[Event]] = defaultdict(list)
    for e in session.execute(select(Event).where(Event.type.in_(tuple(OUTAGES)), Event.created_at >= start,
                                                 Event.created_at < end).order_by(Event.id)).scalars():
        detail = e.detail or {}
        where = detail.get(OUTAGES[e.type][0]) or detail.get("day") or ""
        grouped[(e.type, str(where), str(detail.get("error") or "")[:300])].append(e)
    items = []
    today = start.astimezone(zone).date()
    for (kind, where, error), found in grouped.items():
        moments = sorted(_happened(e) for e in found)
        first, last = (_clock(moments[i].astimezone(zone), today) for i in (0, -1))
        when = f"{len(found)}× tussen {first} en {last}" if len(found) > 1 else f"om {first}"
        missing = sum(int((e.detail or {}).get("missing") or 0) for e in found)
        extras = (when,) + ((f"{missing} kopie(ën) ontbreken",) if missing else ())
        items.append(Item("", OUTAGES[kind][1].format(where or "?"), "", error, extras))
    return items
