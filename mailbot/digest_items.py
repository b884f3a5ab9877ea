"""The values a digest is built from: an item, the section listing it, a chart day, and the
local calendar day every digest query covers.

Items are plain values (strings), escaped only when rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


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


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def who(name: str | None, email: str | None) -> str:
    """`Name <address>`, or whichever of the two is known."""
    return f"{name} <{email}>" if name and email else (email or name or "")


def one_group(items: list[Item]) -> list[tuple[str, list[Item]]]:
    """A section's groups: one unnamed group with the items, or none when there are none."""
    return [("", items)] if items else []
