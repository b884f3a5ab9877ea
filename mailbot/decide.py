"""What to do with one message: pure, from the stages' results to a Decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .classify import unproven_sender
from .model import Address, Classification, Decision, Investigator, Kind, Mail, Match, Reply
from .route import DEFAULT_TEMPLATES

# Which acknowledgment each first-reaction outcome gets (see the seed: quick service, or an
# investigation whose acknowledgment names the investigator): the routing rules' own table.
OUTCOME_TEMPLATES = DEFAULT_TEMPLATES
REMINDED = "agency_in_cc_reminded"  # flag: the once-per-case agency-in-Cc reminder went out
MULTI_TOLD = "multi_addressed_told"  # flag: the citizen was told of a multi_addressed found later
ON_CLOSED = "on_closed_case"  # flag: mail came in on the case after it was closed (digest: triage)


@dataclass(frozen=True)
class CaseView:
    """What the decision needs to know of the case a message joins."""

    ref: str
    citizen_email: str
    language: str
    flags: frozenset[str] = frozenset()
    status: str = "open"


@dataclass(frozen=True)
class RoutingOutcome:
    """The routing rules' verdict for a new complaint, reduced to what decide needs."""

    outcome: str = "investigation"
    template: str | None = None
    flags: tuple[str, ...] = ()
    rules_fired: tuple[str, ...] = ()
    team: str | None = None
    tags: tuple[str, ...] = ()
    priority: str = "normal"
    notify: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)  # for the template


def decide(mail: Mail, classification: Classification, match: Match, *,
           recipient: Address | None, case: CaseView | None = None,
           routing: RoutingOutcome = RoutingOutcome(),
           investigator: Investigator | None = None,
           agency_in_copy: Mapping[str, str] | None = None) -> Decision:
    """The actions for `mail`. `recipient` is None when nobody may be answered."""
    reasons = list(classification.reasons) + [f"{e.method}: {e.detail} ({e.score:.0f})"
                                              for e in match.evidence]
    if classification.kind in (Kind.AUTOMATIC, Kind.UNREADABLE):
        # Never answered. A permanent bounce of our reply marks the citizen's address dead.
        bounce = classification.bounce
        dead = ("undeliverable",) if bounce and bounce.permanent and match.case_id else ()
        return Decision(classification.kind, open_case=False, match=match, flags=dead,
                        reasons=tuple(reasons))

    if classification.facts.spoofed:
        return _spoofed(mail, classification, match, case, recipient, reasons, routing, investigator)
    if match.case_id is not None and case is not None:
        return _join_case(mail, classification, match, case, recipient, reasons, agency_in_copy)

    flags = set(routing.flags) | _fact_flags(classification) | set(match.flags)
    if match.needs_triage:
        flags.add("needs_triage")
    if routing.outcome == "investigation" and investigator is None:
        # Nobody active and present to assign (everyone absent): the acknowledgment says an
        # investigator follows; the digest lists the case under needs_triage for staff.
        flags.add("needs_triage")
        reasons.append("no investigator available: assign one")
    # A complaint referred to us by another service is the citizen's: answer them.
    citizen = match.citizen or recipient or mail.from_
    if match.citizen is not None:
        recipient = match.citizen
    replies: tuple[Reply, ...] = ()
    template = routing.template or OUTCOME_TEMPLATES.get(routing.outcome, "ack_investigation")
    if classification.kind is Kind.STATUS_REQUEST:
        # A status request we cannot tie to the sender's own case (someone else's
        # reference, several open cases, none): a neutral answer, staff decide.
        template = "status_neutral"
        flags.update({"needs_triage", "status_unmatched"})
        if match.needs_triage:  # they quoted a reference that is not theirs
            flags.add("status_from_unknown_address")
    if recipient is not None:
        replies = (Reply(template, recipient, classification.language, mail.subject,
                         dict(routing.context)),)
    # "Contact the agency first" and "stop writing to the agency" contradict each other: a
    # referral to the agency gets no reminder (the rules refer nobody who has it in To/Cc).
    if recipient is not None and "agency_in_cc" in flags and routing.outcome != "refer_agency":
        replies += (_agency_reminder(mail, classification.language, recipient, agency_in_copy),)
        flags.add(REMINDED)
    reasons += [f"rule {name} fired" for name in routing.rules_fired]
    return Decision(Kind.NEW_COMPLAINT, open_case=True, match=match, investigator=investigator,
                    flags=tuple(sorted(flags)), replies=replies, reasons=tuple(reasons),
                    citizen=citizen, outcome=routing.outcome, team=routing.team,
                    tags=routing.tags, priority=routing.priority, notify=routing.notify)


def speaks_for_citizen(mail: Mail, classification: Classification, match: Match, citizen_email: str) -> bool:
    """Whether the mail's wishes (contact address, phone, anonymity…) are the citizen's own:
    sent from the address on file, or a referral forwarding the citizen's text, and not forged.
    Anyone else in the thread (a Cc of the complaint, a stranger) cannot change them."""
    if classification.facts.spoofed or not citizen_email:
        return False
    sender = mail.from_.email.lower() if mail.from_ else ""
    complainant = match.citizen.email.lower() if match.citizen else ""
    return citizen_email.lower() in (sender, complainant)


def _join_case(mail: Mail, classification: Classification, match: Match, case: CaseView,
               recipient: Address | None, reasons: list[str],
               agency_in_copy: Mapping[str, str] | None) -> Decision:
    own = speaks_for_citizen(mail, classification, match, case.citizen_email)
    flags = (_fact_flags(classification) if own else set()) | set(match.flags)
    kind = classification.kind if classification.kind in (
        Kind.STATUS_REQUEST, Kind.AGENCY_FORWARD) else Kind.FOLLOW_UP
    sender = mail.from_.email if mail.from_ else ""
    replies: list[Reply] = []
    language = case.language
    on_file = Address(mail.from_.name if mail.from_ and sender == case.citizen_email else "",
                      case.citizen_email)
    closed = case.status == "closed"
    if closed:
        # Threaded, never reopened by the robot: staff decide (the digest's triage). Only
        # a status question is answered (the status reply says the case is closed); the
        # other replies promise handling that a closed case does not get.
        flags.update({"needs_triage", ON_CLOSED})
        reasons.append("message on a closed case: threaded, not reopened; staff decide")
    if kind is Kind.AGENCY_FORWARD and recipient is not None and sender == case.citizen_email and not closed:
        replies.append(Reply("forward_added", recipient, language, mail.subject))
    # A status question, alone or inside a forwarded agency message, gets the status reply.
    if kind is Kind.STATUS_REQUEST or (kind is Kind.AGENCY_FORWARD and classification.facts.status_request):
        if sender == case.citizen_email:
            # Case details go only to the address on file, never to a new one.
            replies.append(Reply("status", on_file, language, mail.subject))
        else:
            flags.add("status_from_unknown_address")
            if recipient is not None:
                replies.append(Reply("status_neutral", recipient, language, mail.subject))
    if (recipient is not None and "agency_in_cc" in flags and REMINDED not in case.flags
            and sender == case.citizen_email and not closed):
        replies.append(_agency_reminder(mail, language, recipient, agency_in_copy))
        flags.add(REMINDED)
    # Found out later (another ombudsman in Cc, or a referral joining the case): tell the
    # citizen once per case, at the address on file; the sender may be the other service.
    if ("multi_addressed" in flags and "multi_addressed" not in case.flags
            and MULTI_TOLD not in case.flags and case.citizen_email and not closed):
        # No service names here (decide knows only ids): the template's generic wording.
        replies.append(Reply("multi_addressed", on_file, language, mail.subject, {"services": []}))
        flags.add(MULTI_TOLD)
    return Decision(kind, open_case=False, match=match, flags=tuple(sorted(flags)),
                    replies=tuple(replies), reasons=tuple(reasons))


def _agency_reminder(mail: Mail, language: str, recipient: Address,
                     agency: Mapping[str, str] | None) -> Reply:
    """The seed's "you no longer write to the agency yourself", sent once per case."""
    nobody = {"name": "", "email": "", "phone": "", "website": "", "address": ""}
    return Reply("agency_in_cc", recipient, language, mail.subject, {"agency": dict(agency or nobody)})


def _fact_flags(classification: Classification) -> set[str]:
    facts = classification.facts
    flags = set()
    if facts.anonymity_requested:
        flags.add("anonymity_requested")
    if facts.prefers_phone:
        flags.add("prefers_phone")
    if facts.alternative_email:
        flags.add("alternative_email")
    if facts.solution_offered:
        flags.add("solution_offered")
    if facts.solution_accepted:  # policy 4: news for the case
        flags.add("solution_accepted")
    return flags


def _spoofed(mail: Mail, classification: Classification, match: Match, case: CaseView | None,
             recipient: Address | None, reasons: list[str], routing: RoutingOutcome,
             investigator: Investigator | None) -> Decision:
    """The sender is not proven (`classify.unproven_sender`): our own server says the sender's
    domain did not vouch for this mail (DMARC fail), or the From field names several authors.
    Record it for staff, but nothing goes to the claimed address."""
    flag = unproven_sender(mail) or "spoofed_sender"
    flags = {flag, "needs_triage"}
    # No reply at all: the claimed address may not have sent this; mailing it would be backscatter.
    replies: tuple[Reply, ...] = ()
    reasons = [*reasons, "DMARC failed: nothing is sent to the claimed address" if flag == "spoofed_sender"
               else "several From addresses: nothing is sent to any of them"]
    if match.case_id is not None and case is not None:
        return Decision(Kind.FOLLOW_UP if classification.kind is not Kind.STATUS_REQUEST else classification.kind,
                        open_case=False, match=match, flags=tuple(sorted(flags)), replies=replies,
                        reasons=tuple(reasons))
    return Decision(Kind.NEW_COMPLAINT, open_case=True, match=match, investigator=investigator,
                    flags=tuple(sorted(flags | set(match.flags))), replies=replies, reasons=tuple(reasons),
                    citizen=match.citizen or recipient or mail.from_, outcome=routing.outcome,
                    team=routing.team, tags=routing.tags, priority=routing.priority)
