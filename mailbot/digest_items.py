"""The values a digest is built from: an item, the section listing it, a chart day, and the
local calendar day every digest query covers.

Items are plain values (strings, or `Said` for what the robot recorded in English: a reason,
a template name, a match's evidence), escaped only when rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


class Said(str):
    """A text the digest says in the reader's language: `key` of `said` in labels.j2 with its
    `values` (strings, or `Said` themselves). As a string it is the text as recorded (shown
    when labels.j2 has no such key, compared and logged as before). The database keeps its
    English technical text: only the digest says it in Dutch."""

    key: str
    values: tuple[tuple[str, str], ...]

    def __new__(cls, key: str, values: tuple[tuple[str, str], ...] = (), raw: str = "") -> Said:
        said = super().__new__(cls, raw)
        said.key, said.values = key, values
        return said

    def __repr__(self) -> str:
        return f"Said({self.key!r}, {self.values!r}, {str(self)!r})"


Text = str  # or Said


@dataclass(frozen=True)
class Item:
    ref: str = ""
    title: Text = ""
    who: str = ""
    detail: Text = ""
    extras: tuple[Text, ...] = ()
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


def template_said(template: str) -> Said:
    """A reply by what it is ("ontvangstbevestiging…"), not by its template's name."""
    return Said(f"template.{template}", raw=template)


# What the robot records in English, by the form it records it in (its own code writes these:
# match.py, replies.py, send.py, outbox.py, parse.py, prepare.py): key of `said` and values.
# A text of none of these forms is shown as it was recorded.
_RECORDED = (
    # a match's evidence: "<method>: <detail>"
    ("evidence.reference", r"reference: (?P<ref>\S+) in subject or body"),
    ("evidence.reference_unknown", r"reference: (?P<ref>\S+) quoted by a sender unknown to the case"),
    ("evidence.in_reply_to", r"in-reply-to: (?P<ref>[^:\s]+): refers to <(?P<id>[^>]*)>"),
    ("evidence.agency_reference", r"agency-reference: (?P<ref>[^:\s]+): agency file number (?P<number>.+)"),
    ("evidence.agency_reference_unknown",
     r"agency-reference: (?P<ref>[^:\s]+): file number (?P<number>.+) quoted by a sender unknown to the case"),
    ("evidence.only_open_case",
     r"identity: (?P<ref>[^:\s]+): status request from the address of the citizen's only open case"),
    ("evidence.same_subject", r"identity: (?P<ref>[^:\s]+): same address, (?P<status>open|closed|\w+), "
                              r"same subject \((?P<subject>\d+)(?:, body (?P<body>\d+))?\)"),
    ("evidence.fuzzy", r"fuzzy: (?P<ref>[^:\s]+): (?P<sender>same address|same name, other address|other sender), "
                       r"(?P<status>\w+); subject (?P<subject>\d+), body (?P<body>\d+)"),
    ("evidence.webform_unnamed", r"webform: web form complaint of an unnamed citizen with no e-mail address: "
                                 r"contact by phone or post"),
    ("evidence.webform", r"webform: web form complaint of (?P<name>.*) with no e-mail address: "
                         r"contact by phone or post"),
    ("evidence.referral_unnamed", r"referral: (?P<by>.*?): forwarded complaint of an unnamed citizen with no "
                                  r"e-mail address, none stated in the cover note"),
    ("evidence.referral", r"referral: (?P<by>.*?): forwarded complaint of (?P<name>.*) with no e-mail address, "
                          r"none stated in the cover note"),
    # a reply that could not be made (replies._unanswered)
    ("skipped.template_failed", r"reply (?P<template>\S+) not sent, its template failed: (?P<error>.*)"),
    ("skipped.header", r"reply (?P<template>\S+) not sent, a header could not be written: (?P<error>.*)"),
    # why a reply is held (replies.over_limit)
    ("held.case_limit", r"more than (?P<n>\d+) automatic replies for this case in 24 h"),
    ("held.address_limit", r"more than (?P<n>\d+) automatic replies to this address in 24 h"),
    ("held.not_checked", r"the reply limits could not be checked \(another worker holds the address\)"),
    # why a reply did not leave (send.classify_error, outbox._record)
    ("smtp.expired", r"still not delivered after (?P<days>\d+) days and (?P<attempts>\d+) attempts: (?P<error>.*)"),
    ("smtp.rejected", r"rejected by the SMTP server \((?P<error>.*)\)"),
    ("smtp.setup", r"SMTP set-up failed \(check smtp: in config.yaml\): (?P<error>.*)"),
    ("smtp.failed", r"SMTP delivery failed: (?P<error>.*)"),
    # why a mail is in quarantine (parse.parse, prepare.no_sender_reason, importer, poll_cycle)
    ("quarantine.too_large", r"message of (?P<size>\d+) bytes exceeds the limit of (?P<limit>\d+)"),
    ("quarantine.empty", r"empty message"),
    ("quarantine.nested", r"message nested too deeply to read"),
    ("quarantine.no_headers", r"unreadable message: no e-mail headers \(no From, Date, Subject, Message-ID or To\)"),
    ("quarantine.no_sender", r"unreadable message: no sender \(no From address\)"),
    ("quarantine.unreadable", r"unreadable message: (?P<error>.*)"),
    ("quarantine.failed", r"processing failed: (?P<error>.*)"),
)
_FORMS = tuple((key, re.compile(pattern, re.DOTALL)) for key, pattern in _RECORDED)
# Values that are codes themselves: said in the reader's language too.
_CODED = {"template": template_said, "sender": lambda v: Said(f"sender.{v}", raw=v),
          "status": lambda v: Said(f"case_status.{v}", raw=v)}


def service_said(service_id: str, services: Mapping[str, str]) -> str:
    """A service the robot recorded by its id ("de-lijn-klantendienst"), by its Dutch name in
    the rules in force; an id they no longer know as recorded."""
    return services.get(service_id, service_id)


def _agency_number(value: str, services: Mapping[str, str]) -> str:
    """An agency's file number as recorded ("de-lijn:DL-123"): the number and the service."""
    service_id, colon, number = value.partition(":")
    return f"{number} ({services[service_id]})" if colon and service_id in services else value


# Values that name a service by its id: said by its name (`services`: id → name).
_SERVICE_VALUES = {"by": service_said, "number": _agency_number}


def recorded(text: str, *, limit: int = 300, services: Mapping[str, str] | None = None) -> Said:
    """`text` as the robot recorded it, said by its key when it has one of the forms above
    (the raw text otherwise); what it shows of the text itself at most `limit` characters.
    `services`: the Dutch name of each service by id, for the values that name one."""
    for key, form in _FORMS:
        found = form.fullmatch(text.strip())
        if found:
            values: dict[str, str] = {name: value[:limit] for name, value in found.groupdict().items()
                                             if value is not None}
            if key == "smtp.expired":  # what went wrong on the last try
                values["error"] = recorded(found.group("error"), limit=limit)
            for name in set(values) & set(_SERVICE_VALUES):
                values[name] = _SERVICE_VALUES[name](values[name], services or {})
            coded = tuple((name, _CODED[name](value) if name in _CODED and not isinstance(value, Said) else value)
                          for name, value in values.items())
            return Said(key, coded, text[:limit])
    return Said("", (), text[:limit])


def evidence_said(evidence: dict, *, services: Mapping[str, str] | None = None) -> Said:
    """One piece of a match's evidence with its score (services named as in `recorded`)."""
    method, detail = str(evidence.get("method", "")), str(evidence.get("detail", ""))
    score = f"{float(evidence.get('score', 0)):.0f}"
    said = recorded(f"{method}: {detail}", services=services)
    return Said("evidence", (("what", said), ("score", score)), f"{method}: {detail} (score {score})")
