"""Matching against the database: work out the message's facts with the services
directory, load candidate cases with indexed queries (`candidates`), let the pure `match`
module decide, and afterwards remember what later matching needs.

A referral (another ombudsman service forwards a citizen's complaint) is the citizen's: the
forwarded sender is the complainant when the forwarded header gives an address, or when the
cover note states exactly one address that belongs to no service; a citizen named without
any address leaves a case for triage (`match`). `for_complainant` gives the classification
of the citizen's own words (`classify.for_referral`).

A colleague's mail (`staff.is_staff`) is nobody's complaint: it threads only by reference or
Message-ID, and its To/Cc flag nothing. One that names no case, a complaint a colleague
forwards included, is left for staff (the digest): whom the forwarded mail is from, and what
it is, a person decides."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session

from . import candidates, locks, store
from .classify import for_referral
from .db import Case, Message
from .forwards import is_forward_subject
from .match import find_references, match_message, may_use_reference, reference_pattern
from .match_model import Found, MessageFacts, Policy, Result
from .model import Address, Classification, ForwardedMessage, Kind, Mail, Match
from .normalize import body_key, lsh_keys, match_text, name_key, subject_key
from .services import Service, agency_references, detect_services, service_for_address
from .staff import Staff
from .webform import form_name, longest_answer

AGENCY_KINDS = ("agency", "first_line")
# An address in a cover note; starts only at the beginning of a word (see normalize._EMAIL).
_EMAIL = re.compile(r"(?<![\w.+'=-])[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
MAX_COVER_NOTE = 4000  # characters of a cover note searched for the citizen's address


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Observed:
    """One message as matching sees it, kept between `match` and `remember`."""

    facts: MessageFacts
    agency_refs: tuple[str, ...]  # "service-id:REFERENCE"
    lsh: tuple[str, ...]
    referral: ForwardedMessage | None = None  # the citizen's forwarded complaint of a referral


def agency_ids(ruleset: Any, email: str) -> list[str]:
    """The agency an address belongs to, and the agency owning its domain (a complaints
    desk like klantendienst@delijn.be belongs to De Lijn too)."""
    found = [s for s in (service_for_address(ruleset, email),
                         service_for_address(ruleset, "x@" + email.rpartition("@")[2]))
             if s is not None and s.kind in AGENCY_KINDS]
    return list(dict.fromkeys(s.id for s in found))


def involved_agencies(ruleset: Any, mail: Mail) -> tuple[str, ...]:
    """The agencies a mail names or involves (sender, recipients, forwarded senders, text,
    file numbers), with the agency owning each address's domain."""
    agencies: list[str] = []
    for detection in detect_services(ruleset, mail):
        if detection.service.kind in AGENCY_KINDS:
            agencies.append(detection.service.id)
            if detection.where in ("from", "to", "cc", "forwarded"):
                agencies += agency_ids(ruleset, detection.detail)
    return tuple(dict.fromkeys(agencies))


def observe(mail: Mail, kind: Kind, ruleset: Any, *, own: frozenset[str], prefix: str,
            now: datetime, webform_senders: frozenset[str] = frozenset(),
            staff: Callable[[str], bool] = lambda _email: False) -> Observed:
    """The facts of a message: who complains, about which agency, to whom else, what text.
    `staff` tells the office's own staff (`staff.is_staff`); their mail is nobody's complaint."""
    sender = mail.from_.email if mail.from_ else ""
    sender_service: Service | None = service_for_address(ruleset, sender) if sender else None
    sender_is_staff = bool(sender) and staff(sender)
    identity = mail.from_
    if sender in webform_senders:  # the form robot is not the citizen: the address they filled in
        identity = mail.reply_to[0] if mail.reply_to else Address(form_name(mail.new_text or mail.text), "")
    forwarded = [f for f in mail.forwarded if not (f.sender and f.sender.email in own)]
    subject, body = mail.subject, mail.new_text or mail.text
    referred_by = None
    referral: ForwardedMessage | None = None
    if sender_service is not None and sender_service.kind == "ombudsman":
        citizen = next((f for f in forwarded if f.sender is not None and (
            not f.sender.email or service_for_address(ruleset, f.sender.email) is None)), None)
        if citizen is not None and citizen.sender is not None:
            # Another ombudsman service forwards the citizen's complaint.
            referred_by, referral = sender_service.id, citizen
            identity = referred_citizen(citizen.sender, mail, ruleset, own)
            subject, body = citizen.subject or subject, citizen.body
    forward_agencies: list[str] = []
    forward_to: list[Address] = []
    own_subject: str | None = None  # None: all of the subject, the body, is the complainant's
    own_body: str | None = None
    if referred_by is None:
        for part in forwarded:
            ids = agency_ids(ruleset, part.sender.email) if part.sender is not None else []
            forward_agencies += ids
            forward_to += part.to if ids else ()
        own_subject, own_body = own_words(mail, forwarded, identity, webform=sender in webform_senders)
        if forwarded:
            body = "\n".join([body, *(f.body for f in forwarded)])
    flags: list[str] = []
    also: list[str] = []
    # Whom staff keep in copy (the citizen, the agency) says nothing of the citizen's own mail.
    for address in () if sender_is_staff else mail.recipients:
        service = service_for_address(ruleset, address.email) if address.email not in own else None
        if service is None or service.id == referred_by:
            continue
        flags.append("multi_addressed" if service.kind == "ombudsman" else "agency_in_cc")
        also.append(service.id)
    text = f"{mail.subject}\n{mail.text}"
    refs = tuple(f"{sid}:{ref.upper()}" for sid, ref in agency_references(ruleset, text))
    norm_body = body_key(body)
    facts = MessageFacts(
        sender=sender, kind=kind, received_at=now, sender_is_service=sender_service is not None,
        identity=identity, name_key=name_key(identity.name if identity else ""),
        subject=subject_key(subject, reference_pattern(prefix)), body=norm_body,
        referred_by=referred_by, forward_agencies=tuple(dict.fromkeys(forward_agencies)),
        forward_to=tuple(dict.fromkeys(forward_to)), flags=tuple(dict.fromkeys(flags)),
        also_sent_to=tuple(dict.fromkeys(also)), agencies=involved_agencies(ruleset, mail),
        own_subject=own_subject, own_body=own_body, webform=sender in webform_senders,
        sender_is_staff=sender_is_staff)
    return Observed(facts, refs, tuple(lsh_keys(norm_body)), referral)


def own_words(mail: Mail, forwarded: list[ForwardedMessage], complainant: Address | None, *,
              webform: bool) -> tuple[str | None, str | None]:
    """(subject, body) keys of the complainant's own words where not all of the mail is theirs
    (None: all of it is): of a web form, the longest answer and not the robot's subject; of
    a forward, the note and what they forwarded of their own, not a "Fwd:" subject."""
    if webform:
        return "", body_key(longest_answer(mail.new_text or mail.text))
    theirs = [f for f in forwarded if f.sender is not None and complainant is not None
              and _same_person(f.sender, complainant)]
    if len(theirs) == len(forwarded):
        return None, None
    subject = "" if is_forward_subject(mail.subject) else None
    return subject, body_key("\n".join([mail.new_text, *(f.body for f in theirs)]))


def _same_person(one: Address, other: Address) -> bool:
    return bool(one.email) and one.email == other.email or bool(name_key(one.name)) and (
        name_key(one.name) == name_key(other.name))


def referred_citizen(named: Address, mail: Mail, ruleset: Any, own: frozenset[str]) -> Address:
    """The citizen of a referral: the forwarded sender when it has an address; else the name
    with the one address the cover note states that is neither ours nor a service's ("De
    klager is bereikbaar op …"); else the name without an address (never answered: `match`
    leaves such a case for triage)."""
    if "@" in named.email:
        return named
    cover_note = (mail.new_text or "")[:MAX_COVER_NOTE]
    stated = {m.group(0).strip(".'").lower() for m in _EMAIL.finditer(cover_note)}
    stated = {a for a in stated if a not in own and service_for_address(ruleset, a) is None}
    return Address(named.name, stated.pop()) if len(stated) == 1 else Address(named.name, "")


class MatchingStage:
    def __init__(self, settings: Any, routing: Any, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.routing = routing
        self.clock = clock
        self._last: tuple[Mail, Observed] | None = None
        self._staff: Staff | None = None

    @property
    def policy(self) -> Policy:
        m = self.settings.matching
        return Policy(m.fuzzy_threshold, m.triage_threshold, m.duplicate_window_days, m.recent_case_days)

    def observe(self, mail: Mail, classification: Classification | None) -> Observed:
        if self._last is not None and self._last[0] is mail:
            return self._last[1]
        kind = classification.kind if classification else Kind.NEW_COMPLAINT
        own = frozenset({self.settings.smtp.from_address.lower(), self.settings.imap.username.lower()})
        proven_human = classification is None or not (classification.is_automatic or classification.facts.spoofed)
        observed = observe(mail, kind, self.routing.ruleset, own=own, now=self.clock(),
                           prefix=self.settings.office.reference_prefix,
                           webform_senders=frozenset(a.lower() for a in self.settings.webform_senders),
                           staff=self.is_staff if proven_human else lambda _email: False)
        self._last = (mail, observed)
        return observed

    def is_staff(self, email: str) -> bool:
        """Whether `email` is a colleague's, by the settings and the rules in force."""
        if self._staff is None or self._staff.ruleset is not self.routing.ruleset:  # a reload
            self._staff = Staff(self.settings, self.routing.ruleset)
        return self._staff.includes(email)

    def from_staff(self, mail: Mail, classification: Classification) -> bool:
        """Whether `mail` is a colleague's own (not automatic, its sender proven): never
        answered, never a case's citizen (`decide`)."""
        return self.observe(mail, classification).facts.sender_is_staff

    def for_complainant(self, mail: Mail, classification: Classification) -> Classification:
        """`classification` as the complainant's: for a referral by another ombudsman service,
        the language and the facts of the citizen's forwarded text (`classify.for_referral`);
        any other mail's unchanged. Routing, deciding and recording all read these, so the
        pipeline calls this before them; calling it again changes nothing."""
        if classification.is_automatic:
            return classification
        observed = self.observe(mail, classification)
        if observed.referral is None or observed.facts.referred_by is None:
            return classification
        known = {a.email for a in (mail.from_, *mail.recipients, observed.facts.identity) if a}
        known |= {f.sender.email for f in mail.forwarded if f.sender}
        known |= {self.settings.smtp.from_address.lower(), self.settings.imap.username.lower()}
        return for_referral(classification, observed.referral, referred_by=observed.facts.referred_by,
                            known_addresses=frozenset(a for a in known if a),
                            default_language=self.settings.default_language)

    def match(self, session: Session, mail: Mail, classification: Classification | None = None) -> Match:
        return self.match_explained(session, mail, classification).match

    def match_explained(self, session: Session, mail: Mail,
                        classification: Classification | None = None) -> Result:
        """The match and every candidate considered (for `rules explain`)."""
        observed = self.observe(mail, classification)
        facts, policy = observed.facts, self.policy
        refs = find_references(mail.subject, mail.text, self.settings.office.reference_prefix)
        thread_ids = list(mail.in_reply_to) + list(reversed(mail.references))
        automatic = classification is not None and classification.is_automatic
        # A colleague's own mail is filed on the case it names, never on one its text resembles.
        by_thread_only = automatic or facts.sender_is_staff
        if classification is not None and classification.bounce is not None:
            thread_ids.insert(0, classification.bounce.original_message_id or "")
        found = Found(by_reference=candidates.by_refs(session, refs),
                      by_thread=candidates.by_message_ids(session, thread_ids))
        settled = found.by_thread or any(may_use_reference(facts, c) for c in found.by_reference)
        if settled or by_thread_only:
            return match_message(facts, found, policy, automatic=by_thread_only)
        result = self._match_candidates(session, observed, found)
        if result.match.case_id is None and locks.lock_case_opening(session):
            # A new case: another worker may be opening this complaint's case too (a referral
            # and the citizen's own mail, two addresses). Now that we hold the lock, that
            # case is committed and visible: match again.
            result = self._match_candidates(session, observed, found)
        return result

    def _match_candidates(self, session: Session, observed: Observed, found: Found) -> Result:
        """The match among the cases of the citizen, the agency's file numbers and the
        near-duplicates, besides the references and the thread already `found`."""
        facts, policy = observed.facts, self.policy
        now = facts.received_at
        until = policy.latest_case(now)  # no case opened well after the mail (an import)
        identity = facts.identity.email if facts.identity else facts.sender
        found = Found(
            by_reference=found.by_reference, by_thread=found.by_thread,
            by_agency_ref=candidates.by_agency_refs(session, observed.agency_refs),
            identity=candidates.by_identity(session, identity, facts.name_key,
                                            now - timedelta(days=policy.recent_case_days), until),
            similar=candidates.similar(session, observed.lsh,
                                       now - timedelta(days=policy.duplicate_window_days), until))
        return match_message(facts, found, policy)

    def complete(self, session: Session, case: Case | None, message: Message, mail: Mail,
                 match: Match) -> dict[str, Any] | None:
        """Before the rows are written: fill in what later matching reads from the case
        (its identity, text, agencies, co-recipients) and the review of close candidates,
        so a new case and its message are each inserted once with everything.

        Returns the review (for `remember`), or None when there was nothing to review.
        """
        if case is None:
            return None
        facts = self.observe(mail, None).facts
        ruleset = self.routing.ruleset
        own = {self.settings.smtp.from_address.lower(), self.settings.imap.username.lower()}
        if case.id is None:  # opened by this message
            case.citizen_name_key = name_key(case.citizen_name)
            case.match_text = match_text(facts.subject, facts.body, facts.own_body)
        if facts.sender == case.citizen_email:  # people the citizen writes with
            people = {a.email for a in mail.recipients if a.email not in own
                      and a.email != case.citizen_email and service_for_address(ruleset, a.email) is None}
            if people - set(case.co_recipients or ()):
                case.co_recipients = sorted(set(case.co_recipients or ()) | people)[:50]
        if set(facts.agencies) - set(case.match_agencies or ()):
            case.match_agencies = sorted(set(case.match_agencies or ()) | set(facts.agencies))
        if not (match.candidates or match.duplicate_of_id is not None):
            return None
        review = {"candidates": [{"method": e.method, "detail": e.detail, "score": e.score}
                                 for e in match.candidates],
                  "duplicate_of": match.duplicate_of_ref}
        message.details = {**(message.details or {}), "match": review}
        return review

    def remember(self, session: Session, case: Case | None, message: Message, mail: Mail,
                 match: Match, review: dict[str, Any] | None) -> None:
        """After the rows are written: the case's keys (MinHash bands of a new case, agency
        file numbers), so later mail in the same batch finds it, and the review event."""
        if case is None:
            return
        observed = self.observe(mail, None)
        opened = match.case_id != case.id
        if opened:
            candidates.add_keys(session, case, "lsh", observed.lsh, new_case=True)
        candidates.add_keys(session, case, "agency_ref", observed.agency_refs, new_case=opened)
        if review is not None:
            store.add_event(session, "match_review", case=case, message=message, **review)

