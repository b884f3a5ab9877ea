"""What to do with one message: pure, from the stages' results to a Decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .classify import unproven_sender
from .intent import SHORT_MAIL, fold
from .model import Address, Classification, Decision, Investigator, Kind, Mail, Match, Reply
from .route import DEFAULT_TEMPLATES

# Which acknowledgment each first-reaction outcome gets (see the seed: quick service, or an
# investigation whose acknowledgment names the investigator): the routing rules' own table.
OUTCOME_TEMPLATES = DEFAULT_TEMPLATES
REMINDED = "agency_in_cc_reminded"  # flag: the once-per-case agency-in-Cc reminder went out
MULTI_TOLD = "multi_addressed_told"  # flag: the citizen was told of a multi_addressed found later
ON_CLOSED = "on_closed_case"  # flag: mail came in on the case after it was closed (digest: triage)
FOREIGN_REFERENCE = "reference_from_unknown_address"  # flag: quotes a case not on file for the sender
NO_REPLY_ADDRESS = "no_reply_address"  # flag: a reply was due, but the address on file may not be answered
# A receipt that names no case and promises nothing (replies.NO_CASE_DETAILS): for mail that
# may concern a case the sender's address is not on file for.
NEUTRAL_RECEIPT = "receipt_neutral"
CLOSED_RECEIPT = "closed_case_received"  # to the address on file: the case is closed, staff decide
STATUS_OVERVIEW = "status_overview"  # the status of each of the sender's open cases
MAX_OVERVIEW = 10  # open cases one status overview lists; with more, staff answer


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
           agency_in_copy: Mapping[str, str] | None = None,
           own_cases: Sequence[CaseView] = (), from_staff: bool = False) -> Decision:
    """The actions for `mail`. `recipient` is None when nobody may be answered.

    `own_cases`: the open cases on file for the recipient's address, loaded for a status
    request that matched no case (`_status_overview`). `from_staff`: a colleague sent it
    (`staff.is_staff`): filed on the case it names, else left for staff; never answered."""
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
    if from_staff:
        return _staff_message(match, case, reasons)
    if match.case_id is not None and case is not None:
        return _join_case(mail, classification, match, case, recipient, reasons, agency_in_copy)
    overview = _status_overview(mail, classification, match, recipient, own_cases, reasons)
    if overview is not None:
        return overview

    flags = set(routing.flags) | _fact_flags(classification) | set(match.flags)
    if match.needs_triage:
        flags.add("needs_triage")
    outcome = routing.outcome
    foreign = foreign_reference(match) if classification.kind is not Kind.STATUS_REQUEST else None
    if foreign is not None:
        # Maybe the citizen of that case writing from another address, maybe not: no new
        # investigation is announced and nothing of that case is told (a neutral receipt);
        # staff decide whether the mail joins that case, so nobody is assigned yet.
        investigator, outcome = None, "investigation"
        flags.update({"needs_triage", FOREIGN_REFERENCE})
        reasons.append(f"{foreign} quoted from an address not on file for it: neutral receipt, "
                       "no investigator yet; staff decide whether it belongs to that case")
    elif routing.outcome == "investigation" and investigator is None:
        # Nobody active and present to assign (everyone absent): the acknowledgment says an
        # investigator follows; the digest lists the case under needs_triage for staff.
        flags.add("needs_triage")
        reasons.append("no investigator available: assign one")
    # A complaint referred to us by another service is the citizen's: answer them.
    citizen = match.citizen or recipient or mail.from_
    if match.citizen is not None and match.citizen.email:  # never an address-less citizen
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
    elif foreign is not None:
        template = NEUTRAL_RECEIPT
    if recipient is not None:
        replies = (Reply(template, recipient, classification.language, mail.subject,
                         dict(routing.context)),)
    # "Contact the agency first" and "stop writing to the agency" contradict each other: a
    # referral to the agency gets no reminder (the rules refer nobody who has it in To/Cc).
    if (recipient is not None and "agency_in_cc" in flags and routing.outcome != "refer_agency"
            and foreign is None):
        replies += (_agency_reminder(mail, classification.language, recipient, agency_in_copy),)
        flags.add(REMINDED)
    reasons += [f"rule {name} fired" for name in routing.rules_fired]
    return Decision(Kind.NEW_COMPLAINT, open_case=True, match=match, investigator=investigator,
                    flags=tuple(sorted(flags)), replies=replies, reasons=tuple(reasons),
                    citizen=citizen, outcome=outcome, team=routing.team,
                    tags=routing.tags, priority=routing.priority, notify=routing.notify)


def foreign_reference(match: Match) -> str | None:
    """The case reference the mail quotes from an address not on file for that case (matching
    keeps it as weak "reference" evidence, its detail starting with the reference), or None."""
    return next((e.detail.split()[0] for e in match.candidates if e.method == "reference" and e.detail), None)


def _status_overview(mail: Mail, classification: Classification, match: Match, recipient: Address | None,
                     own_cases: Sequence[CaseView], reasons: list[str]) -> Decision | None:
    """"Is er al nieuws?" from the address on file of several open cases, naming none of them:
    the status of each, and no new case. All of them are on file at the address the reply goes
    to, so it tells nobody about someone else's case. Only for a short mail: a longer one may
    carry a new complaint, which opens a case as usual."""
    if (classification.kind is not Kind.STATUS_REQUEST or recipient is None or match.citizen is not None
            or foreign_reference(match) is not None):
        return None
    mine = [c for c in own_cases if c.citizen_email.lower() == recipient.email.lower() and c.status != "closed"]
    text = f"{mail.subject}\n{mail.new_text or mail.text}"[:4 * SHORT_MAIL]  # measured as intent measures it
    if not 0 < len(mine) <= MAX_OVERVIEW or len(fold(text)) > SHORT_MAIL:
        return None
    refs = [c.ref for c in mine]
    reply = Reply(STATUS_OVERVIEW, recipient, classification.language, mail.subject, {"case_refs": refs})
    why = (f"status request from the address on file of {len(refs)} open case(s) ({', '.join(refs)}), "
           "naming none: the status of each, no new case")
    return Decision(Kind.STATUS_REQUEST, open_case=False, match=match, replies=(reply,), reasons=(*reasons, why))


def speaks_for_citizen(mail: Mail, classification: Classification, match: Match, citizen_email: str) -> bool:
    """Whether the mail's wishes (contact address, phone, anonymity…) are the citizen's own:
    sent from the address on file, or a referral forwarding the citizen's text, and not forged.
    Anyone else in the thread (a Cc of the complaint, a stranger) cannot change them."""
    if classification.facts.spoofed:
        return False
    complainant = match.citizen.email.lower() if match.citizen else ""
    if not citizen_email:
        # No address on file (a web form without one, a referral naming none): the mail that
        # names the citizen as its complainant is theirs, and its phone the way to reach them.
        return match.citizen is not None and not complainant
    sender = mail.from_.email.lower() if mail.from_ else ""
    return citizen_email.lower() in (sender, complainant)


def _join_case(mail: Mail, classification: Classification, match: Match, case: CaseView,
               recipient: Address | None, reasons: list[str],
               agency_in_copy: Mapping[str, str] | None) -> Decision:
    own = speaks_for_citizen(mail, classification, match, case.citizen_email)
    flags = (_fact_flags(classification) if own else set()) | set(match.flags)
    kind = classification.kind if classification.kind in (
        Kind.STATUS_REQUEST, Kind.AGENCY_FORWARD) else Kind.FOLLOW_UP
    sender = mail.from_.email.lower() if mail.from_ else ""
    on_file_email = case.citizen_email.lower()
    # Written by the address on file, which may be answered (`recipients.reply_recipient`: for
    # a web form, the citizen in its Reply-To). Case details go to no other address.
    from_file = recipient is not None and bool(on_file_email) and recipient.email.lower() == on_file_email
    # The address on file wrote but may not be answered (a web-form robot, undeliverable…).
    unanswerable = recipient is None and bool(sender) and sender == on_file_email
    replies: list[Reply] = []
    language = case.language
    on_file = Address(recipient.name if from_file and recipient else "", case.citizen_email)
    closed = case.status == "closed"
    if closed:
        # Threaded, never reopened by the robot: staff decide (the digest's triage). The
        # replies that promise handling are not sent; a receipt (below) or the status reply
        # (which says the case is closed) is.
        flags.update({"needs_triage", ON_CLOSED})
        reasons.append("message on a closed case: threaded, not reopened; staff decide")
    if kind is Kind.AGENCY_FORWARD and from_file and recipient is not None and not closed:
        replies.append(Reply("forward_added", recipient, language, mail.subject))
    # A status question, alone or inside a forwarded agency message, gets the status reply.
    if kind is Kind.STATUS_REQUEST or (kind is Kind.AGENCY_FORWARD and classification.facts.status_request):
        if from_file:
            replies.append(Reply("status", on_file, language, mail.subject))
        elif unanswerable:
            flags.update({"needs_triage", NO_REPLY_ADDRESS})
            reasons.append("status request from the address on file, which may not be answered: staff answer")
        else:
            flags.add("status_from_unknown_address")
            if recipient is not None:
                replies.append(Reply("status_neutral", recipient, language, mail.subject))
    elif closed:
        # Every complaint gets a first reaction, also one sent on a closed case: the address
        # on file hears that staff decide; anyone else a receipt that names no case.
        if from_file:
            replies.append(Reply(CLOSED_RECEIPT, on_file, language, mail.subject))
        elif recipient is not None:
            replies.append(Reply(NEUTRAL_RECEIPT, recipient, classification.language, mail.subject))
    if (recipient is not None and "agency_in_cc" in flags and REMINDED not in case.flags
            and from_file and not closed):
        replies.append(_agency_reminder(mail, language, recipient, agency_in_copy))
        flags.add(REMINDED)
    # Found out later (another ombudsman in Cc, or a referral joining the case): tell the
    # citizen once per case, at the address on file; the sender may be the other service.
    if ("multi_addressed" in flags and "multi_addressed" not in case.flags
            and MULTI_TOLD not in case.flags and case.citizen_email and not closed and not unanswerable):
        # No service names here (decide knows only ids): the template's generic wording.
        replies.append(Reply("multi_addressed", on_file, language, mail.subject, {"services": []}))
        flags.add(MULTI_TOLD)
    return Decision(kind, open_case=False, match=match, flags=tuple(sorted(flags)),
                    replies=tuple(replies), reasons=tuple(reasons))


def _staff_message(match: Match, case: CaseView | None, reasons: list[str]) -> Decision:
    """A colleague's own mail (a reply to the citizen with us in Cc, a note): filed on the case
    it names, else recorded without a case for the digest. Never answered, no flags: what they
    keep in copy is not the citizen's doing."""
    if match.case_id is not None and case is not None:
        why = f"sent by office staff: filed on {case.ref}, no reply"
    else:
        why = "sent by office staff, naming no case: no case, no reply; listed for staff"
    return Decision(Kind.STAFF_MESSAGE, open_case=False, match=match, reasons=(*reasons, why))


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
    # Staff are told as for any new case (`notify`): the notice goes to them, not to the sender.
    return Decision(Kind.NEW_COMPLAINT, open_case=True, match=match, investigator=investigator,
                    flags=tuple(sorted(flags | set(match.flags))), replies=replies, reasons=tuple(reasons),
                    citizen=match.citizen or recipient or mail.from_, outcome=routing.outcome,
                    team=routing.team, tags=routing.tags, priority=routing.priority, notify=routing.notify)
