"""Which replies the office's policy asks for, decided without servers (decide, shipped rules),
plus the same policies end to end through the pipeline into the outbox.

- A citizen referred to the agency is not also told to stop writing to it (seed: the two
  quick-service cases exclude each other; the agency in To/Cc means contact was made).
- A status question inside a forwarded agency message gets the status reply (policy point 5).
- A complaint found multi-addressed on an existing case: the citizen is told, once per case,
  at the address on file (policy point 2).
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import complaint
from mailbot.db import Case, Outbox
from mailbot.decide import MULTI_TOLD, REMINDED, CaseView, RoutingOutcome, decide
from mailbot.model import Address, Classification, Facts, Kind, Mail, Match
from mailbot.pipeline import process_files
from mailbot.route import route
from mailbot.rules import load_rules

SHIPPED = Path(__file__).resolve().parent.parent / "rules"
CITIZEN = Address("An De Smet", "an.desmet@example.be")
CASE = CaseView("VO-2026-000001", CITIZEN.email, "fr")
FEDERAL = Address("Federale Ombudsman", "info@federaalombudsman.be")


def mail(sender: Address = CITIZEN, subject: str = "Klacht", text: str = "Mijn klacht.", *,
         cc: tuple[str, ...] = ()) -> Mail:
    return Mail(message_id="m", subject=subject, from_=sender,
                to=(Address("", "klachten@vlaamseombudsdienst.be"),),
                cc=tuple(Address("", a) for a in cc), text=text)


def classified(kind: Kind, **facts: bool) -> Classification:
    return Classification(kind=kind, language="nl", facts=Facts(**facts))


def joined(*flags: str) -> Match:
    return Match(1, CASE.ref, flags=flags)


def sent(decision) -> list[tuple[str, str]]:
    return [(r.template, r.to.email) for r in decision.replies]


# ------------------------------------------------------------ M1: refer to the agency vs. agency in Cc

def test_shipped_rules_do_not_refer_a_citizen_who_has_the_agency_in_cc() -> None:
    """With VDAB in Cc the citizen has contacted VDAB: an investigation, flagged, not a referral to VDAB."""
    text = "De VDAB heeft mijn uitkering stopgezet zonder uitleg."
    plain = route(mail(text=text), classified(Kind.NEW_COMPLAINT), load_rules(SHIPPED))
    in_cc = route(mail(text=text, cc=("info@vdab.be",)), classified(Kind.NEW_COMPLAINT), load_rules(SHIPPED))
    assert plain.outcome == "refer_agency"  # the seed's case: they did not contact VDAB
    assert in_cc.outcome == "investigation" and "refer-agency-first" not in in_cc.fired
    assert "agency_in_cc" in in_cc.flags


def test_referral_to_the_agency_gets_no_agency_in_cc_reminder() -> None:
    """"Contact the agency first" is never sent together with "stop writing to the agency"."""
    message = mail(cc=("info@vdab.be",))
    refer = decide(message, classified(Kind.NEW_COMPLAINT), Match(None, None), recipient=CITIZEN,
                   routing=RoutingOutcome("refer_agency", "referred_agency", flags=("agency_in_cc",)))
    investigate = decide(message, classified(Kind.NEW_COMPLAINT), Match(None, None), recipient=CITIZEN,
                         routing=RoutingOutcome("investigation", flags=("agency_in_cc",)))
    assert [t for t, _ in sent(refer)] == ["referred_agency"]
    assert "agency_in_cc" in refer.flags and REMINDED not in refer.flags  # staff still see it; a later one reminds
    assert [t for t, _ in sent(investigate)] == ["ack_investigation", "agency_in_cc"]


# ------------------------------------------------------------ M4: status question in a forward

def test_status_question_in_a_forwarded_agency_message_gets_the_status_reply() -> None:
    """The citizen forwards the agency's letter and asks for the status: news noted, status answered on file."""
    decision = decide(mail(subject="FW: Uw dossier"), classified(Kind.AGENCY_FORWARD, status_request=True),
                      joined(), recipient=CITIZEN, case=CASE)
    assert decision.kind is Kind.AGENCY_FORWARD
    assert sent(decision) == [("forward_added", CITIZEN.email), ("status", CITIZEN.email)]
    assert decision.replies[1].language == "fr"  # the case's language


def test_status_question_in_a_forward_from_another_address_gets_the_neutral_answer() -> None:
    """Like a plain status request: from an address not on file, no case details, flagged for staff."""
    other = Address("An", "an.privé@example.org".replace("é", "e"))
    decision = decide(mail(sender=other, subject="FW: Uw dossier"),
                      classified(Kind.AGENCY_FORWARD, status_request=True), joined(), recipient=other, case=CASE)
    assert sent(decision) == [("status_neutral", other.email)]
    assert "status_from_unknown_address" in decision.flags


def test_forward_without_status_question_gets_no_status_reply() -> None:
    """A plain forwarded agency message is acknowledged as news, nothing more."""
    decision = decide(mail(subject="FW: Uw dossier"), classified(Kind.AGENCY_FORWARD), joined(),
                      recipient=CITIZEN, case=CASE)
    assert sent(decision) == [("forward_added", CITIZEN.email)]


# ------------------------------------------------------------ M5: multi_addressed found later

def test_follow_up_with_another_ombudsman_in_cc_tells_the_citizen() -> None:
    """A follow-up that Cc's the Federal Ombudsman flags the case and sends multi_addressed to the address on file."""
    decision = decide(mail(cc=(FEDERAL.email,)), classified(Kind.FOLLOW_UP), joined("multi_addressed"),
                      recipient=CITIZEN, case=CASE)
    assert sent(decision) == [("multi_addressed", CITIZEN.email)]
    reply = decision.replies[0]
    assert (reply.to.name, reply.language) == (CITIZEN.name, "fr")
    assert reply.context["services"] == []  # the template's wording without names, not service ids
    assert {"multi_addressed", MULTI_TOLD} <= set(decision.flags)


def test_referral_joining_the_case_tells_the_citizen_not_the_service() -> None:
    """A referral by another service that joins the case: the reply goes to the citizen on file, unnamed."""
    decision = decide(mail(sender=FEDERAL, subject="FW: Klacht"), classified(Kind.AGENCY_FORWARD),
                      joined("multi_addressed"), recipient=None, case=CASE)
    assert sent(decision) == [("multi_addressed", CITIZEN.email)]
    assert decision.replies[0].to.name == ""


@pytest.mark.parametrize("case_flags", [("multi_addressed",), ("multi_addressed", MULTI_TOLD), (MULTI_TOLD,)])
def test_multi_addressed_is_told_once_per_case(case_flags: tuple[str, ...]) -> None:
    """A case already flagged (at opening, or told before) gets no second multi_addressed reply."""
    case = CaseView(CASE.ref, CASE.citizen_email, "nl", frozenset(case_flags))
    decision = decide(mail(cc=(FEDERAL.email,)), classified(Kind.FOLLOW_UP), joined("multi_addressed"),
                      recipient=CITIZEN, case=case)
    assert sent(decision) == []


# ------------------------------------------------------------ end to end: pipeline → outbox

@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(db_url=sqlite_url)


def _outbox(app) -> list[tuple[str, str]]:
    with app.sessions() as session:
        return [(r.template, r.recipient) for r in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]


def _ref(app) -> str:
    with app.sessions() as session:
        return session.execute(select(Case.ref)).scalar_one()


def test_pipeline_tells_a_multi_addressed_follow_up_once_and_answers_a_forwarded_status_question(app):
    """Through the real pipeline and templates: multi_addressed once per case, status for a forward."""
    process_files(app.intake, [complaint()])
    ref = _ref(app)
    cc = "Cc: Federale Ombudsman <info@federaalombudsman.be>\r\n"
    follow = "Goedendag,\n\nIk stuur dit ook naar de Federale Ombudsman.\n\nJan Peeters"
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", body=follow, extra_headers=cc)])
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", body=follow + " Nogmaals.",
                                         extra_headers=cc)])
    forward = (f"Beste,\n\nHieronder de brief van het departement. Wat is de stand van zaken in dossier {ref}?\n\n"
               "Jan Peeters\n\n________________________________\n"
               "Van: Studietoelagen <studietoelagen@onderwijs.vlaanderen.be>\n"
               "Verzonden: donderdag 19 november 2026 10:15\nAan: Jan Peeters <jan.peeters@example.be>\n"
               "Onderwerp: Uw aanvraag\n\nUw aanvraag is nog in behandeling.\n")
    [outcome] = process_files(app.intake, [complaint(subject="FW: Uw aanvraag", body=forward)])
    assert (outcome.kind, outcome.case_ref) == ("agency_forward", ref)
    citizen = "jan.peeters@example.be"
    assert _outbox(app) == [("ack_investigation", citizen), ("multi_addressed", citizen),
                            ("forward_added", citizen), ("status", citizen)]
    with app.sessions() as session:
        mime = session.execute(select(Outbox.mime).where(Outbox.template == "multi_addressed")).scalar_one()
    told = message_from_bytes(mime, policy=default)
    text = told.get_body(("plain",)).get_content()
    assert ref in told["Subject"] and ref in text
    assert "andere diensten" in text and "federale-ombudsman" not in text
