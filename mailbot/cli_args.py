"""What the commands take and show: days, case references, teams, local times. Pure, but for
`shown_time`'s import of the views."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click


# Days and years the commands accept: far enough either way for any mail (an import keeps
# Dates from 1990), near enough that a day's window and its neighbours stay valid dates.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
YEAR = click.IntRange(FIRST_DAY.year, LAST_DAY.year)


class Day(click.ParamType):
    """A day as YYYY-MM-DD, from FIRST_DAY to LAST_DAY; else a usage error (exit 2)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            day = datetime.strptime(str(value), "%Y-%m-%d").date()
        except ValueError:
            self.fail(f"{value!r} is not a day as YYYY-MM-DD", param, ctx)
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail(f"{day} is not between {FIRST_DAY} and {LAST_DAY}", param, ctx)
        return day


# A case reference as staff type it: any case, spaces or dashes between the parts, the number
# with or without its leading zeros, the prefix left out (then the configured one).
_TYPED_REF = re.compile(r"(?:([A-Z]{1,8})[\s\-\u2010-\u2015]*)?(\d{4})[\s\-\u2010-\u2015]+(\d{1,9})")


def normal_ref(typed: str, prefix: str) -> str:
    """`vo 2026 11` or ` VO-2026-000011 ` → `VO-2026-000011`, the form cases are stored in
    (`store.format_ref`); a text that is no reference comes back stripped and upper-cased, so
    the look-up fails with "no case" naming it. Pure."""
    text = typed.strip().upper()
    found = _TYPED_REF.fullmatch(text)
    if found is None:
        return text
    typed_prefix, year, number = found.groups()
    return f"{typed_prefix or prefix}-{year}-{int(number):06d}"


def shown_time(iso: str | None, zone: str) -> str:
    """A stored UTC time (ISO, as in the JSON) as text output shows it: local to the office,
    with its offset (`views.local_time`)."""
    from .views import local_time

    return local_time(datetime.fromisoformat(iso), ZoneInfo(zone)) if iso else "-"


def unknown_team(team: str, known: Iterable[str]) -> str | None:
    """Why `--team` is refused, naming the teams there are, or None. Pure."""
    teams = sorted(set(known))
    if team in teams:
        return None
    return (f"{team!r} is no team of digest.teams or of the rules; known teams: "
            + (", ".join(teams) if teams else "none"))
