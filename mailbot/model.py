"""Value types passed between the pipeline stages. Standard library only.

parse: bytes → Mail;  classify: Mail → Classification;  match: Mail + candidates → Match;
route: Mail + Classification → Routing;  decide: everything → Decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Address:
    """A mailbox: display name as written, address lower-cased."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    inline: bool = False


@dataclass(frozen=True)
class ForwardedMessage:
    """A message the sender forwarded to us, inline or as message/rfc822."""

    sender: Address | None
    date: datetime | None
    subject: str
    body: str
    to: tuple[Address, ...] = ()
    source: str = ""  # how it was found, e.g. "outlook-nl", "gmail", "rfc822"
    message_id: str = ""  # known only for attached message/rfc822 forwards


@dataclass(frozen=True)
class Mail:
    """What the robot knows of one parsed message."""

    message_id: str  # without angle brackets; "" when the mail had none
    subject: str
    from_: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    date: datetime | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    text: str = ""  # the whole text body
    new_text: str = ""  # the text without quoted history and signature
    html: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # (lower-cased name, decoded value)
    attachments: tuple[Attachment, ...] = ()
    forwarded: tuple[ForwardedMessage, ...] = ()
    size: int = 0
    defects: tuple[str, ...] = ()
    bounce: Bounce | None = None  # set when the mail is a delivery failure report

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc


class Kind(StrEnum):
    """What a message is, as far as the office is concerned."""

    NEW_COMPLAINT = "new_complaint"
    FOLLOW_UP = "follow_up"
    AGENCY_FORWARD = "agency_forward"
    STATUS_REQUEST = "status_request"
    AUTOMATIC = "automatic"
    UNREADABLE = "unreadable"
    OUTGOING = "outgoing"
    # Mail from the office's own staff (`staff.is_staff`): filed on the case it names, never answered.
    STAFF_MESSAGE = "staff_message"


@dataclass(frozen=True)
class Facts:
    """What the text of a message says, detected without side effects."""

    status_request: bool = False
    phone_numbers: tuple[str, ...] = ()
    prefers_phone: bool = False
    alternative_email: str | None = None
    anonymity_requested: bool = False
    first_line_contact: bool = False
    solution_offered: bool = False
    solution_accepted: bool = False  # the citizen accepts what the agency offered
    # DMARC failed in our receiving server's (topmost) Authentication-Results: the From
    # address is not proven, so the sender must get no case details.
    spoofed: bool = False


@dataclass(frozen=True)
class Classification:
    kind: Kind
    language: str
    reasons: tuple[str, ...] = ()
    auto_reason: str | None = None  # set for automatic mail
    facts: Facts = Facts()
    bounce: Bounce | None = None  # copied from Mail.bounce for bounces

    @property
    def is_automatic(self) -> bool:
        return self.kind is Kind.AUTOMATIC


@dataclass(frozen=True)
class Evidence:
    """One reason to thread a message into a case."""

    method: str  # "reference", "in-reply-to", "agency-forward", "agency-reference", "fuzzy"
    detail: str
    score: float  # 0..100


@dataclass(frozen=True)
class CaseCandidate:
    """A case the matcher may attach a message to, as loaded by the store."""

    case_id: int
    ref: str
    citizen_email: str
    citizen_name: str = ""
    subject: str = ""
    text: str = ""
    status: str = "open"
    created_at: datetime | None = None
    co_recipients: tuple[str, ...] = ()
    agency_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """The case a message belongs to, with the evidence, or none.

    Besides the thread, matching reports what it learnt about the complaint:
    flags for the case (multi_addressed, agency_in_cc, referred_by, possible_duplicate…),
    the services it was also sent to, the case it duplicates, and for a complaint
    forwarded to us by another service, the citizen it really comes from.
    """

    case_id: int | None
    ref: str | None
    evidence: tuple[Evidence, ...] = ()
    needs_triage: bool = False  # a candidate exists but the evidence is too weak
    flags: tuple[str, ...] = ()
    also_sent_to: tuple[str, ...] = ()
    duplicate_of_id: int | None = None
    duplicate_of_ref: str | None = None
    citizen: Address | None = None  # the complainant when it is not the sender
    candidates: tuple[Evidence, ...] = ()  # considered but not applied (for triage and explain)

    @property
    def score(self) -> float:
        return max((e.score for e in self.evidence), default=0.0)


@dataclass(frozen=True)
class Investigator:
    name: str
    email: str
    phone: str = ""
    team: str = ""
    languages: tuple[str, ...] = ("nl",)


@dataclass(frozen=True)
class Reply:
    """A reply to queue: which template, to whom, in which language.

    `context` holds template variables the decision supplies (the service referred to, …).
    """

    template: str
    to: Address
    language: str
    subject: str
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Decision:
    """Everything the robot will do with one message, before it does it."""

    kind: Kind
    open_case: bool  # True: a new case; False: attach to `match.case_id` (if any)
    match: Match
    investigator: Investigator | None = None
    flags: tuple[str, ...] = ()
    replies: tuple[Reply, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)
    citizen: Address | None = None  # the complainant of a new case
    outcome: str = "investigation"  # first reaction: investigation or a quick-service outcome
    team: str | None = None
    tags: tuple[str, ...] = ()
    priority: str = "normal"
    notify: tuple[str, ...] = ()  # staff addresses to tell about the new case


@dataclass(frozen=True)
class Bounce:
    """What a delivery failure report (RFC 3464 DSN, or a legacy bounce) says."""

    recipient: str  # the failed address, lower-cased; "" when the report does not say
    permanent: bool  # 5.x.x / "failed": do not retry; 4.x.x / "delayed": temporary
    original_message_id: str = ""  # Message-ID (no brackets) of the message that bounced
    status: str = ""  # RFC 3463 status code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote server's words, for staff
