"""`mailbot report --year Y`: anonymous statistics for the annual report.

Only counts over categories the office defines (kinds, outcomes, languages, teams, rule
tags, flags, known services) and response-time figures. Free text from mail (names,
addresses, subjects, phone numbers) never enters a report: senders are reduced to the
known service they belong to, anything else counts as "onbekend".

Small cells are suppressed: a count from 1 to MIN_COUNT - 1 can point to a person (the one
case of a small team, the one anonymity request). Such a cell is null in JSON and "<5" in
CSV. Where cells add up to a total the report shows (cases by outcome, language, team and
status; messages by kind and language; agency forwards by service; reacted or not), the
smallest other cells are hidden too ("x"), until the hidden ones together hold at least
2 * MIN_COUNT - 1, so that the total minus the shown cells does not give a small cell back.
Reaction times over fewer than MIN_COUNT cases are hidden as well. Totals stay true; the
`suppressed` entry says which cells are hidden and how.

Cases `mailbot import` opened were answered by the office before mailbot, outside it: no
first reaction is ever recorded for them. `first_reaction` counts them apart (`imported`)
and leaves them out of `reacted`, `without_reaction` and the reaction times; the three
add up to `cases`.
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
from .imported_cases import opened_by_import

UNKNOWN = "onbekend"
MIN_COUNT = 5  # cells under this many cases or messages are hidden
COMPLEMENT = "x"  # the CSV marker of a cell hidden so that a small one cannot be computed; a small one is "<5"
# Sections whose cells add up to a total the report shows (a case or message counts in one cell only).
PARTITIONS = ("messages_by_kind", "messages_by_language", "cases_by_outcome", "cases_by_language",
              "cases_by_team", "cases_by_status", "agency_forwards_by_service")
OVERLAPPING = ("cases_by_flag", "cases_by_tag", "also_sent_to_service")  # a case counts in several cells
_RESPONSE_COUNTS = ("reacted", "without_reaction", "imported")  # a partition of the cases
_RESPONSE_FIGURES = ("median_hours", "mean_hours", "p90_hours", "within_1_day_pct", "within_3_days_pct")


def year_window(year: int, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (datetime.combine(date(year, 1, 1), time(0), zone).astimezone(timezone.utc),
            datetime.combine(date(year + 1, 1, 1), time(0), zone).astimezone(timezone.utc))


def build_report(session: Session, year: int, *, tz: str = "Europe/Brussels",
                 service_of=lambda email: None, min_count: int = MIN_COUNT) -> dict:
    """The statistics of `year`, small cells suppressed (see the module docstring);
    `service_of(email)` names the known service of an address."""
    return suppress(count(session, year, tz=tz, service_of=service_of), min_count)


def count(session: Session, year: int, *, tz: str = "Europe/Brussels", service_of=lambda email: None) -> dict:
    """The statistics of `year` with every count as it is: for suppress(), never for output."""
    start, end = year_window(year, tz)
    in_year = (Case.created_at >= start, Case.created_at < end)
    cases = list(session.execute(select(Case).where(*in_year)).scalars())
    imported = set(session.execute(select(Case.id).where(*in_year, opened_by_import())).scalars())
    messages = session.execute(select(Message.kind, Message.language, Message.original_sender).where(
        Message.direction == "in", Message.received_at >= start, Message.received_at < end)).all()
    agencies: Counter[str] = Counter()
    for kind, _, original in messages:
        if kind == "agency_forward":
            agencies[_service(service_of, original)] += 1
    also: Counter[str] = Counter(s for c in cases for s in c.also_sent_to)
    live = [c for c in cases if c.id not in imported]  # the robot's to react to
    hours = sorted((as_utc(c.first_reaction_at) - as_utc(c.created_at)).total_seconds() / 3600
                   for c in live if c.first_reaction_at is not None)
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
        "first_reaction": _response(hours, len(live), len(imported)),
    }


def _service(service_of, original: str | None) -> str:
    if not original:
        return UNKNOWN
    address = original.rpartition("<")[2].rstrip(">").strip().lower()
    return service_of(address) or UNKNOWN


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _response(hours: list[float], total: int, imported: int) -> dict:
    """Reaction figures of the `total` cases mailbot had to react to; `imported` ones apart."""
    if not hours:
        return {"reacted": 0, "without_reaction": total, "imported": imported}

    def share(limit: float) -> float:
        return round(100 * sum(1 for h in hours if h <= limit) / len(hours), 1)

    return {
        "reacted": len(hours), "without_reaction": total - len(hours), "imported": imported,
        "median_hours": round(statistics.median(hours), 1),
        "mean_hours": round(statistics.fmean(hours), 1),
        "p90_hours": round(hours[min(len(hours) - 1, int(0.9 * len(hours)))], 1),
        "within_1_day_pct": share(24), "within_3_days_pct": share(72),
    }


def suppress(report: dict, min_count: int = MIN_COUNT) -> dict:
    """A copy of `report` with small cells (and their complements in a partition) set to None,
    and a `suppressed` entry: the threshold and, per section, the hidden keys with their marker."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in report.items()}
    hidden: dict[str, dict[str, str]] = {}

    def hide(section: str, cells: dict, *, partition: bool) -> None:
        marks = {k: f"<{min_count}" for k, v in cells.items() if 0 < v < min_count}
        if partition and marks:
            rest = sorted((v, k) for k, v in cells.items() if k not in marks and v > 0)
            while rest and sum(cells[k] for k in marks) < 2 * min_count - 1:
                marks[rest.pop(0)[1]] = COMPLEMENT
        for key in marks:
            out[section][key] = None
        if marks:
            hidden[section] = marks

    for section in PARTITIONS:
        hide(section, report[section], partition=True)
    for section in OVERLAPPING:
        hide(section, report[section], partition=False)
    reaction = report["first_reaction"]
    hide("first_reaction", {k: reaction[k] for k in _RESPONSE_COUNTS}, partition=True)
    if 0 < reaction["reacted"] < min_count:
        for key in _RESPONSE_FIGURES:
            out["first_reaction"][key] = None
            hidden["first_reaction"][key] = COMPLEMENT
    out["suppressed"] = {"min_count": min_count, "cells": hidden}
    return out


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def to_csv(report: dict) -> str:
    """`section,key,value` rows: one table for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    suppressed = report.get("suppressed", {"cells": {}})
    for section, value in report.items():
        if section == "suppressed":
            writer.writerow([section, "min_count", value["min_count"]])
        elif isinstance(value, dict):
            marks = suppressed["cells"].get(section, {})
            for key, number in value.items():
                writer.writerow([section, key, marks.get(key, "") if number is None else number])
        else:
            writer.writerow([section, "", value])
    return out.getvalue()
