"""The office's calendar: a moment as the office reads it, and mail dates the database can hold.

The database stores UTC; staff and citizens live in `schedule.timezone` (Europe/Brussels).
A mail at 00:30 on 1 January in Brussels is 23:30 UTC on 31 December: it belongs to the new
year (its case reference, the annual report) and to 1 January (the digest). Pure.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

# Moments every time zone can show (a day from either end of what Python's datetime holds).
_FIRST, _LAST = datetime(1, 1, 2, tzinfo=timezone.utc), datetime(9999, 12, 31, tzinfo=timezone.utc)


def in_office(moment: datetime, tz: str) -> datetime:
    """`moment` on the office's clock; a naive one is UTC (as SQLite hands it back)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(ZoneInfo(tz))


def office_date(moment: datetime, tz: str) -> date:
    """The office's calendar day at `moment`."""
    return in_office(moment, tz).date()


def office_year(moment: datetime, tz: str) -> int:
    """The office's year at `moment`: the year of a case reference opened then."""
    return in_office(moment, tz).year


def storable(moment: datetime) -> datetime | None:
    """`moment` when the database can store it and give it back, else None.

    A mail's Date may say anything: 31 Dec 9999 23:59 -1200 is a moment of the year 10000 in
    UTC, which PostgreSQL stores but Python cannot read back (every query that loads the
    message fails), and 31 Dec 9999 23:30 UTC cannot be shown in Brussels. A naive `moment`
    is UTC.
    """
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    try:
        return aware if _FIRST <= aware.astimezone(timezone.utc) < _LAST else None
    except OverflowError:
        return None
