"""`mailbot report --year Y`: anonymous statistics for the annual report.

Only counts over categories the office defines (kinds, outcomes, languages, teams, rule
tags, flags, known services) and response-time figures. Free text from mail (names,
addresses, subjects, phone numbers) never enters a report: senders are reduced to the
known service they belong to, anything else counts as "onbekend".
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Case, Message, as_utc

UNKNOWN = "onbekend"


def year_window(year: int, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (datetime.combine(date(year, 1, 1), time(0), zone).astimezone(timezone.utc),
            datetime.combine(date(year + 1, 1, 1), time(0), zone).astimezone(timezone.utc))


def build_report(session: Session, year: int, *, tz: str = "Europe/Brussels",
                 service_of=lambda email: None) -> dict:
    """The statistics of `year`; `service_of(email)` names the known service of an address."""
    start, end = year_window(year, tz)
    cases = list(session.execute(select(Case).where(Case.created_at >= start, Case.created_at < end)).scalars())
    messages = session.execute(select(Message.kind, Message.language, Message.original_sender).where(
        Message.direction == "in", Message.received_at >= start, Message.received_at < end)).all()
    agencies: Counter[str] = Counter()
    for kind, _, original in messages:
        if kind == "agency_forward":
            agencies[_service(service_of, original)] += 1
    also: Counter[str] = Counter(s for c in cases for s in c.also_sent_to)
    hours = sorted((as_utc(c.first_reaction_at) - as_utc(c.created_at)).total_seconds() / 3600
                   for c in cases if c.first_reaction_at is not None)
    return {
        "year": year,
        "cases": len(cases),
        "messages": len(messages),
        "messages_by_kind": _sorted(Counter(k for k, _, _ in messages)),
        "messages_by_language": _sorted(Counter(lang or UNKNOWN for _, lang, _ in messages)),
        "cases_by_outcome": _sorted(Counter(c.outcome for c in cases)),
        "cases_by_language": _sorted(Counter(c.language for c in cases)),
        "cases_by_team": _sorted(Counter(c.team or UNKNOWN for c in cases)),
        "cases_by_status": _sorted(Counter(c.status for c in cases)),
        "cases_by_flag": _sorted(Counter(f for c in cases for f in c.flags)),
        "cases_by_tag": _sorted(Counter(t for c in cases for t in c.tags)),
        "agency_forwards_by_service": _sorted(agencies),
        "also_sent_to_service": _sorted(also),
        "first_reaction": _response(hours, len(cases)),
    }


def _service(service_of, original: str | None) -> str:
    if not original:
        return UNKNOWN
    address = original.rpartition("<")[2].rstrip(">").strip().lower()
    return service_of(address) or UNKNOWN


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _response(hours: list[float], total: int) -> dict:
    if not hours:
        return {"reacted": 0, "without_reaction": total}

    def share(limit: float) -> float:
        return round(100 * sum(1 for h in hours if h <= limit) / len(hours), 1)

    return {
        "reacted": len(hours), "without_reaction": total - len(hours),
        "median_hours": round(statistics.median(hours), 1),
        "mean_hours": round(statistics.fmean(hours), 1),
        "p90_hours": round(hours[min(len(hours) - 1, int(0.9 * len(hours)))], 1),
        "within_1_day_pct": share(24), "within_3_days_pct": share(72),
    }


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def to_csv(report: dict) -> str:
    """`section,key,value` rows: one table for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    for section, value in report.items():
        if isinstance(value, dict):
            for key, count in value.items():
                writer.writerow([section, key, count])
        else:
            writer.writerow([section, "", value])
    return out.getvalue()
