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


@dataclass
class CountedSection(Section):
    """A section that lists some of its items (the rest in a last line) and counts all."""

    total: int = 0

    @property
    def count(self) -> int:
        return self.total


# How many items a section lists: a day of 5,000 mails (every one flagged) keeps a digest of
# some 500 items (about 2,500 text lines, well under 1 MB with the HTML) instead of 35,000
# lines; the section's count and the subject stay the true totals.
TRIAGE_LISTED = 100  # "Te beoordelen": one decision per item, the first thing staff read
DECISION_LISTED = 50  # every other section of "Te beslissen"
INFO_LISTED = 25  # "Ter info": what the robot did, no decision asked


def capped(key: str, groups: list[tuple[str, list[Item]]], limit: int) -> Section:
    """Section `key` listing its first `limit` items (across its groups, in order) and a last
    line "… en nog N" for the rest; its count is of all of them."""
    total = sum(len(items) for _, items in groups)
    if total <= limit:
        return Section(key, groups)
    kept: list[tuple[str, list[Item]]] = []
    left = limit
    for label, items in groups:
        if left <= 0:
            break
        kept.append((label, items[:left]))
        left -= len(kept[-1][1])
    kept.append((f"… en nog {total - limit}", []))
    return CountedSection(key, kept, total=total)


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
