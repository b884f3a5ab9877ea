"""Working days in Belgium: weekends, public holidays (the maintained `holidays` package)
and the office's own closing days from config."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=32)
def _public(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("BE", years=year))


def is_working_day(day: date, extra: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in _public(day.year) and day not in set(extra)


def working_days_after(start: date, end: date, extra: Iterable[date] = ()) -> int:
    """Working days in (start, end]: 0 when `end` is not after `start`."""
    closed = set(extra)
    count, day = 0, start + timedelta(days=1)
    while day <= end:
        if is_working_day(day, closed):
            count += 1
        day += timedelta(days=1)
    return count


def subtract_working_days(end: date, days: int, extra: Iterable[date] = ()) -> date:
    """The latest date `start` with `working_days_after(start, end) >= days`."""
    closed = set(extra)
    day, counted = end, 0
    while counted < days:
        if is_working_day(day, closed):
            counted += 1
        day -= timedelta(days=1)
    return day
