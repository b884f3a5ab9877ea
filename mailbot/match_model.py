"""What the matcher reads and returns: the message's facts, the candidate cases loaded for
it, the office's thresholds, and the result with every candidate considered. Pure values;
`match` decides, `matching_stage` fills them in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .model import Address, CaseCandidate, Evidence, Kind, Match


@dataclass(frozen=True)
class Candidate(CaseCandidate):
    """A case as the matcher sees it: CaseCandidate plus what matching remembered.

    `text` is the case's normalised "subject\\nbody[\\nown body]" (`normalize.match_text`)."""

    name_key: str = ""
    agencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The thresholds from `settings.matching`."""

    fuzzy_threshold: float = 70.0
    triage_threshold: float = 55.0
    duplicate_window_days: int = 30
    recent_case_days: int = 365

    def latest_case(self, received_at: datetime) -> datetime:
        """The latest creation time of a case that a mail received at `received_at` (for an
        imported mail, its Date) may join by identity or text. An archive is not in date
        order (folders merged, mail delayed): a citizen's mails about one complaint come
        weeks apart in any order, so a case opened within the duplicate window after the
        mail may be its; one opened later is another matter (an old mailbox imported after
        live mail)."""
        return aware(received_at) + timedelta(days=self.duplicate_window_days)


@dataclass(frozen=True)
class MessageFacts:
    """What matching needs to know of one message (built by the stage)."""

    sender: str  # From address, lower-cased ("" when none)
    kind: Kind
    received_at: datetime
    sender_is_service: bool = False  # an ombudsman service or agency: may quote references
    identity: Address | None = None  # the complainant: the sender, or the citizen of a referral
    name_key: str = ""  # normalize.name_key of the complainant's display name
    subject: str = ""  # normalize.subject_key
    body: str = ""  # normalize.body_key (the citizen's text, and any forwarded text)
    referred_by: str | None = None  # service id of the ombudsman service that referred the citizen
    forward_agencies: tuple[str, ...] = ()  # agencies whose mail the sender forwarded
    forward_to: tuple[Address, ...] = ()  # to whom those agencies' forwarded mails were addressed
    flags: tuple[str, ...] = ()  # from To/Cc: multi_addressed, agency_in_cc
    also_sent_to: tuple[str, ...] = ()  # service ids in To/Cc
    agencies: tuple[str, ...] = ()  # the agencies the mail names or involves (services.detect_services)
    # The complainant's own words, when not all of subject/body is (None: all of it is):
    # without forwarded mail; of a web form, its longest answer and no robot-made subject.
    own_subject: str | None = None
    own_body: str | None = None
    webform: bool = False  # sent by the office's web form (`webform_senders`), not by the citizen
    sender_is_staff: bool = False  # the office's own staff (`staff.is_staff`): may quote any reference

    @property
    def identity_email(self) -> str:
        return self.identity.email if self.identity else self.sender

    @property
    def own(self) -> tuple[str, str]:
        """(subject, body) of the complainant's own words."""
        return (self.subject if self.own_subject is None else self.own_subject,
                self.body if self.own_body is None else self.own_body)


@dataclass(frozen=True)
class Found:
    """Candidate cases loaded by indexed queries, per kind of evidence."""

    by_reference: Sequence[CaseCandidate] = ()
    by_thread: Sequence[tuple[str, CaseCandidate]] = ()
    by_agency_ref: Sequence[tuple[str, CaseCandidate]] = ()  # ("service:REF", case)
    identity: Sequence[Candidate] = ()  # the complainant's open and recent cases (address or name key)
    similar: Sequence[Candidate] = ()  # recent cases sharing a MinHash band


@dataclass(frozen=True)
class Result:
    match: Match
    considered: tuple[Evidence, ...] = field(default=())  # every candidate scored, best first


def created_by(case: CaseCandidate, moment: datetime) -> bool:
    """Whether the case was created by `moment` (`Policy.latest_case`); a case without a
    date is taken to have been."""
    return case.created_at is None or aware(case.created_at) <= moment


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
