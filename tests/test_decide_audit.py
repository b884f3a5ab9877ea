"""What the robot sends after the reply-decision audit, and to whom (seed: every complaint gets a
first reaction; status and case details only to the address on file; nothing to a stranger).

1. A web-form robot is never answered, not even as the address on file of its "case".
2. "Is er al nieuws?" from the address of several open cases, naming none: the status of each,
   no new case.
3. A case reference quoted from an address not on file: a neutral receipt, no investigation.
4. Mail on a closed case: the closed-case receipt on file, a neutral receipt elsewhere.
5. First-line contact in a web form ("Contact met de dienst: ja"): no referral to the agency.
"""

from __future__ import annotations

import html as html_lib
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import SettableClock, append_all
from mailbot import digest, store
from mailbot.db import Case, Event, Message, Outbox
from mailbot.decide import (
    CLOSED_RECEIPT, FOREIGN_REFERENCE, MAX_OVERVIEW, NEUTRAL_RECEIPT, NO_REPLY_ADDRESS, STATUS_OVERVIEW,
    CaseView, RoutingOutcome, decide,
)
from mailbot.digest_flags import triage_labels
from mailbot.model import Address, Classification, Evidence, Facts, Investigator, Kind, Mail, Match, Reply
from mailbot.pipeline import process_files
from mailbot.render import LANGUAGES, Renderer
from mailbot.replies import queue_reply, refusal
from mailbot.template_vars import sample_context

OFFICE = "klachten@vlaamseombudsdienst.be"
FORM = "noreply-formulier@vlaamseombudsdienst.be"
START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
SOFIE = Address("Sofie Maes", "sofie.maes@example.be")
AN, AN_WORK = ("An Janssens", "an.janssens@example.be"), ("An Janssens", "an.janssens@acme-corp.be")
INVESTIGATOR = Investigator("Hanne Claes", "hanne.claes@vlaamseombudsdienst.example", "+32 2 000 00 51")
GROEIPAKKET = ("Geachte,\n\nIk ontving van het Agentschap Opgroeien een brief dat mijn groeipakket voor mijn zoon "
               "vanaf januari wordt stopgezet omdat hij niet meer ingeschreven zou zijn in een school. Dat klopt "
               "niet: hij zit in het vijfde jaar. Ik heb hen al twee keer gemaild zonder antwoord.\n\n"
               "Met vriendelijke groeten,\nAn Janssens")



# ------------------------------------------------------------------ pure decisions

def mail(sender: Address | None = SOFIE, subject: str = "Re: mijn klacht",
         text: str = "Is er al nieuws over de bus?") -> Mail:
    return Mail(message_id="m", subject=subject, from_=sender, to=(Address("", OFFICE),), text=text)


def classified(kind: Kind = Kind.STATUS_REQUEST, language: str = "nl") -> Classification:
    return Classification(kind=kind, language=language, facts=Facts(status_request=kind is Kind.STATUS_REQUEST))


def sent(decision) -> list[tuple[str, str]]:
    return [(r.template, r.to.email) for r in decision.replies]


STUDIE_CASE = CaseView("VO-2026-000001", SOFIE.email, "nl")
BUS_CASE = CaseView("VO-2026-000002", SOFIE.email, "nl")
FOREIGN = Match(None, None, (Evidence("reference", "VO-2026-000001 quoted by a sender unknown to the case", 40.0),),
                needs_triage=True,
                candidates=(Evidence("reference", "VO-2026-000001 quoted by a sender unknown to the case", 40.0),))


def test_status_request_from_an_address_on_file_that_may_not_be_answered_gets_nothing() -> None:
    """The address on file is a web-form robot (or undeliverable): recipients refuse it, so decide
    sends it no status either; staff are asked to answer another way."""
    form = Address("Klachtenformulier", FORM)
    case = CaseView("VO-2026-000001", FORM, "nl")
    decision = decide(mail(form), classified(), Match(1, case.ref), recipient=None, case=case)
    assert decision.replies == ()
    assert {"needs_triage", NO_REPLY_ADDRESS} <= set(decision.flags)


def test_multi_addressed_is_not_told_to_an_address_on_file_that_may_not_be_answered() -> None:
    """A form mail without Reply-To Cc'ing another ombudsman joins the form's "case": nobody is told."""
    form = Address("Klachtenformulier", FORM)
    case = CaseView("VO-2026-000001", FORM, "nl")
    decision = decide(mail(form, text="Klacht."), classified(Kind.FOLLOW_UP),
                      Match(1, case.ref, flags=("multi_addressed",)), recipient=None, case=case)
    assert decision.replies == ()


def test_web_form_with_the_citizen_on_file_in_reply_to_gets_the_status() -> None:
    """The web form carries the citizen in Reply-To; when that is the address on file, she is the citizen."""
    form = Address("Klachtenformulier", FORM)
    decision = decide(mail(form), classified(), Match(1, STUDIE_CASE.ref), recipient=SOFIE, case=STUDIE_CASE)
    assert sent(decision) == [("status", SOFIE.email)]
    assert "status_from_unknown_address" not in decision.flags


def test_citizen_without_an_address_is_never_a_recipient() -> None:
    """A complainant matching found without an e-mail address gets no reply (there is nobody to send it to)."""
    nameless = Address("Marie Dubois", "")
    decision = decide(mail(Address("Klachtenformulier", FORM), text="Klacht."), classified(Kind.NEW_COMPLAINT),
                      Match(None, None, citizen=nameless), recipient=None, investigator=INVESTIGATOR)
    assert decision.open_case and decision.replies == ()


def test_status_request_naming_no_case_from_the_address_of_several_open_cases_lists_them() -> None:
    """"Is er al nieuws over de bus?" from Sofie, who has two open cases: the status of both, no new case."""
    decision = decide(mail(), classified(), Match(None, None), recipient=SOFIE, routing=RoutingOutcome(),
                      investigator=INVESTIGATOR, own_cases=(STUDIE_CASE, BUS_CASE))
    assert decision.open_case is False and decision.kind is Kind.STATUS_REQUEST
    assert sent(decision) == [(STATUS_OVERVIEW, SOFIE.email)]
    assert decision.replies[0].context["case_refs"] == [STUDIE_CASE.ref, BUS_CASE.ref]
    assert "needs_triage" not in decision.flags


@pytest.mark.parametrize("why", ["long mail", "another address", "closed", "foreign reference", "too many", "none"])
def test_status_overview_only_for_a_short_question_about_the_senders_own_open_cases(why: str) -> None:
    """A long mail may be a new complaint; a case on file elsewhere or closed is not listed; someone
    else's reference stays the stranger's case: in each, a case opens with the neutral answer."""
    cases: tuple[CaseView, ...] = (STUDIE_CASE, BUS_CASE)
    message, match = mail(), Match(None, None)
    if why == "long mail":
        message = mail(text="Is er al nieuws over de bus? " + "Ook heb ik een nieuw probleem met de gemeente. " * 20)
    elif why == "another address":
        cases = (CaseView("VO-2026-000009", "iemand.anders@example.be", "nl"),)
    elif why == "closed":
        cases = (CaseView(STUDIE_CASE.ref, SOFIE.email, "nl", status="closed"),)
    elif why == "foreign reference":
        match = FOREIGN
    elif why == "too many":
        cases = tuple(CaseView(f"VO-2026-{n:06d}", SOFIE.email, "nl") for n in range(MAX_OVERVIEW + 1))
    else:
        cases = ()
    decision = decide(message, classified(), match, recipient=SOFIE, investigator=INVESTIGATOR, own_cases=cases)
    assert decision.open_case and sent(decision) == [("status_neutral", SOFIE.email)]


def test_reference_quoted_from_an_address_not_on_file_gets_a_neutral_receipt() -> None:
    """No acknowledgment of a new investigation and nobody assigned: a receipt, flagged for staff."""
    work = Address(*AN_WORK)
    decision = decide(mail(work, "Re: VO-2026-000001 Groeipakket", "Hierbij het attest."), classified(Kind.NEW_COMPLAINT),
                      FOREIGN, recipient=work, routing=RoutingOutcome("investigation"), investigator=INVESTIGATOR)
    assert decision.open_case and sent(decision) == [(NEUTRAL_RECEIPT, work.email)]
    assert decision.investigator is None and decision.outcome == "investigation"
    assert {"needs_triage", FOREIGN_REFERENCE} <= set(decision.flags)
    assert any("VO-2026-000001 quoted from an address not on file" in r for r in decision.reasons)


def test_stranger_asking_the_status_of_someone_elses_case_keeps_the_neutral_status_answer() -> None:
    """The status question with someone else's reference: status_neutral and its flag, as before."""
    pieter = Address("Pieter Vermeulen", "pieter.v@gmail.com")
    decision = decide(mail(pieter, "Stand van zaken VO-2026-000001", "Wat is de stand van zaken?"), classified(),
                      FOREIGN, recipient=pieter, investigator=INVESTIGATOR)
    assert sent(decision) == [("status_neutral", pieter.email)]
    assert {"status_from_unknown_address", "needs_triage"} <= set(decision.flags)
    assert FOREIGN_REFERENCE not in decision.flags


@pytest.mark.parametrize("kind", [Kind.FOLLOW_UP, Kind.AGENCY_FORWARD, Kind.NEW_COMPLAINT])
def test_mail_on_a_closed_case_gets_a_receipt_on_file_and_a_neutral_one_elsewhere(kind: Kind) -> None:
    """Every complaint gets a first reaction: the address on file hears its case is closed and staff
    decide; another address gets a receipt that names no case."""
    closed = CaseView("VO-2026-000001", SOFIE.email, "fr", status="closed")
    other = Address("Iemand", "iemand@example.org")
    on_file = decide(mail(text="Nieuwe klacht."), classified(kind), Match(1, closed.ref), recipient=SOFIE, case=closed)
    elsewhere = decide(mail(other, text="Nieuwe klacht."), classified(kind, "en"), Match(1, closed.ref),
                       recipient=other, case=closed)
    nobody = decide(mail(Address("", FORM), text="Klacht."), classified(kind), Match(1, closed.ref),
                    recipient=None, case=closed)
    assert sent(on_file) == [(CLOSED_RECEIPT, SOFIE.email)] and on_file.replies[0].language == "fr"
    assert sent(elsewhere) == [(NEUTRAL_RECEIPT, other.email)] and elsewhere.replies[0].language == "en"
    assert nobody.replies == ()
    assert all(not d.open_case and "on_closed_case" in d.flags for d in (on_file, elsewhere, nobody))


# ------------------------------------------------------------------ the texts, four languages

RECEIVED = {"nl": "goed ontvangen", "fr": "bien reçu", "en": "received your message", "de": "Nachricht erhalten"}
CLOSED = {"nl": "is afgesloten", "fr": "est clôturé", "en": "has already been closed", "de": "ist abgeschlossen"}
NEUTRAL_PREFIX = {"nl": "Uw bericht", "fr": "Votre message", "en": "Your message", "de": "Ihre Nachricht"}
OVERVIEW_PREFIX = {"nl": "Uw vraag", "fr": "Votre demande", "en": "Your request", "de": "Ihre Anfrage"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(Path(__file__).resolve().parent.parent / "templates")


def flat(text: str) -> str:
    return " ".join(html_lib.unescape(text).replace("\xa0", " ").split())


@pytest.mark.parametrize("language", LANGUAGES)
def test_new_texts_say_the_same_in_both_parts_of_every_language(renderer, language: str) -> None:
    """The neutral receipt names no case and no investigator; the closed-case receipt names its case
    and says it is closed; the overview lists every case with its status and investigator."""
    neutral = renderer.render(NEUTRAL_RECEIPT, language, {**sample_context(NEUTRAL_RECEIPT),
                                                          "investigator": {"name": "An Peeters"}})
    closed = renderer.render(CLOSED_RECEIPT, language, sample_context(CLOSED_RECEIPT))
    overview = renderer.render(STATUS_OVERVIEW, language, sample_context(STATUS_OVERVIEW))
    assert neutral.subject_prefix == NEUTRAL_PREFIX[language] and overview.subject_prefix == OVERVIEW_PREFIX[language]
    for part in (neutral.text, neutral.html):
        assert RECEIVED[language] in flat(part)
        assert "VO-2026-000123" not in part and "An Peeters" not in part
    for part in (closed.text, closed.html):
        assert "VO-2026-000123" in part and CLOSED[language] in flat(part)
    for part in (overview.text, overview.html):
        for fact in ("VO-2026-000123", "Terugbetaling studietoelage", "VO-2026-000245", "Bus 58 stopt niet meer",
                     "An Peeters", "an.peeters@vlaamseombudsdienst.be", "+32 2 552 48 00"):
            assert fact in part, fact
    assert all(len(line) <= 78 for line in overview.text.splitlines())


# ------------------------------------------------------------------ the outbox's last check

@pytest.fixture
def local_app(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url, webform_senders=[FORM])
    app.intake.clock = app.intake.matching.clock = SettableClock(START)
    return app


def test_refusal_never_lets_a_reply_go_to_a_web_form_robot(local_app) -> None:
    """Whatever decided it, a reply to the form's address is refused before the outbox."""
    with local_app.sessions() as session:
        to_form = refusal(session, local_app.settings, Reply("multi_addressed", Address("", FORM), "nl", "x"), None)
        to_citizen = refusal(session, local_app.settings, Reply("multi_addressed", SOFIE, "nl", "x"), None)
    assert to_form == "the recipient is a web form's sender address, not the citizen"
    assert to_citizen is None


def _open_cases(app, *people: tuple[str, str, str]) -> list[str]:
    for name, email, subject in people:
        process_files(app.intake, [complaint(name=name, sender=email, subject=subject,
                                             body=f"Geachte,\n\n{subject}. Ik heb hen al twee keer gemaild.\n\n{name}")])
        app.intake.clock.now += timedelta(days=1)
    with app.sessions() as session:
        return list(session.execute(select(Case.ref).order_by(Case.id)).scalars())


def test_status_overview_lists_only_cases_on_file_for_the_recipient(local_app) -> None:
    """The overview shows each listed case's reference, subject and status; a case on file for
    someone else is never shown: such an overview is refused as a whole."""
    refs = _open_cases(local_app, ("Sofie Maes", SOFIE.email, "Studietoelage nog altijd niet beslist"),
                       ("Sofie Maes", SOFIE.email, "Bus 58 stopt niet meer aan Kerkstraat"),
                       ("Tom Wouters", "tom.wouters@example.be", "Premie renovatie geweigerd"))
    question = mail()
    with local_app.sessions.begin() as session:
        ok = queue_reply(session, local_app.settings, local_app.intake.renderer,
                         Reply(STATUS_OVERVIEW, SOFIE, "nl", question.subject, {"case_refs": refs[:2]}),
                         case=None, mail=question, now=local_app.intake.clock.now)
        leak = queue_reply(session, local_app.settings, local_app.intake.renderer,
                           Reply(STATUS_OVERVIEW, SOFIE, "nl", question.subject, {"case_refs": refs}),
                           case=None, mail=question, now=local_app.intake.clock.now)
    assert (ok, leak) == ("pending", None)
    with local_app.sessions() as session:
        [row] = session.execute(select(Outbox).where(Outbox.template == STATUS_OVERVIEW)).scalars()
        skipped = [e.detail["reason"] for e in session.execute(
            select(Event).where(Event.type == "reply_skipped")).scalars()]
    text = _text(row.mime)
    assert row.recipient == SOFIE.email and row.case_id is None
    for ref, subject in zip(refs[:2], ("Studietoelage nog altijd niet beslist", "Bus 58 stopt niet meer")):
        assert ref in text and subject in text
    assert refs[2] not in text and "Premie" not in text
    assert skipped == ["a case of the status overview is not on file for the recipient"]


def test_a_reply_no_header_can_carry_is_flagged_for_staff_not_lost(local_app) -> None:
    """An address no header can carry (here the citizen's, with a space in its local part) skips
    the reply like a failing template: the case is flagged for staff with the reason, nothing
    is queued, and the mail stays recorded (it is not taken for unreadable)."""
    [ref] = _open_cases(local_app, ("Sofie Maes", SOFIE.email, "Studietoelage nog altijd niet beslist"))
    question = mail()
    with local_app.sessions.begin() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        case.citizen_email = "sofie maes@example.be"  # as a lenient parser may have read it
        before = session.execute(select(Outbox.id)).scalars().all()
        status = queue_reply(session, local_app.settings, local_app.intake.renderer,
                             Reply("status", Address("Sofie", "sofie maes@example.be"), "nl", question.subject, {}),
                             case=case, mail=question, now=local_app.intake.clock.now)
    assert status is None
    with local_app.sessions() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        [reason] = [e.detail["reason"] for e in session.execute(
            select(Event).where(Event.type == "reply_skipped")).scalars()]
        assert session.execute(select(Outbox.id)).scalars().all() == before
    assert reason.startswith("reply status not sent, a header could not be written: unsupported local part")
    assert "needs_triage" in case.flags


def _text(reply: bytes | EmailMessage, part: str = "plain") -> str:
    """One part of a reply, its line breaks undone (for phrase look-ups)."""
    message = reply if isinstance(reply, EmailMessage) else message_from_bytes(reply, policy=default)
    assert isinstance(message, EmailMessage)
    body = message.get_body((part,))
    assert body is not None
    return " ".join(body.get_content().split())


# ------------------------------------------------------------------ end to end: Dovecot → outbox → SMTP

@pytest.fixture
def app(make_app, dovecot, smtp_sink, db_url):
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, webform_senders=[FORM])
    app.intake.clock = app.intake.matching.clock = SettableClock(START)
    return app


def poll(app, dovecot, *raws: bytes, days: int = 0) -> None:
    if days:
        app.intake.clock.now += timedelta(days=days)
    append_all(dovecot, raws)
    app.poll_once()
    app.send_outbox(now=app.intake.clock.now)


def cases(app) -> list[Case]:
    with app.sessions() as session:
        return list(session.execute(select(Case).order_by(Case.id)).scalars())


def outbox(app) -> list[tuple[str, str, str]]:
    with app.sessions() as session:
        return [(o.template, o.recipient, o.status)
                for o in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]


def form(name: str, text: str, email: str = "", contacted: str = "") -> str:
    asked = f"Hebt u al contact gehad met de dienst: {contacted}\n" if contacted else ""
    return (f"Naam: {name}\nAdres: Kerkstraat 5, 9000 Gent\nTelefoon: 0470 12 34 56\nE-mailadres: {email}\n"
            f"Betrokken dienst: De Lijn\n{asked}\nUw klacht:\n{text}\n\n"
            "Dit bericht werd verstuurd via het klachtenformulier op www.vlaamseombudsdienst.be.\n"
            "Toestemming verwerking persoonsgegevens: ja\n")


@pytest.mark.dovecot
def test_web_form_without_reply_to_is_never_answered(app, dovecot, smtp_sink):
    """Two citizens leave the form's e-mail field empty, a third asks for the status through it:
    nothing is sent to the form's address; each is a case of its own, left to staff (the form's
    address is nobody's identity, so the status request joins no one's case)."""
    subject = "Klachtenformulier: Groeipakket"
    poll(app, dovecot, complaint(name="Klachtenformulier", sender=FORM, subject=subject, body=form(
        "An Janssens", "Mijn groeipakket voor mijn zoon werd stopgezet omdat hij niet meer op school zou zitten.")))
    poll(app, dovecot, complaint(name="Klachtenformulier", sender=FORM, subject=subject, body=form(
        "Koen Claes", "Het groeipakket van mijn dochter is stopgezet, zogezegd omdat zij niet ingeschreven is.")),
         days=2)
    poll(app, dovecot, complaint(name="Klachtenformulier", sender=FORM, subject=subject, body=form(
        "Marie Dubois", "Wat is de stand van zaken van mijn klacht over het groeipakket?")), days=1)
    assert smtp_sink.messages == [] and outbox(app) == []
    assert [(c.citizen_name, c.citizen_email) for c in cases(app)] == [
        ("An Janssens", ""), ("Koen Claes", ""), ("Marie Dubois", "")]
    assert all("needs_triage" in c.flags for c in cases(app))


@pytest.mark.dovecot
def test_reference_from_another_address_gets_a_neutral_receipt_end_to_end(app, dovecot, smtp_sink):
    """An writes from her work address quoting her reference: a neutral receipt without any case's
    reference or investigator, a case for staff to sort out; the stranger asking the status of her
    case still gets the neutral status answer; the digest lists both with the Dutch reasons."""
    poll(app, dovecot, complaint(name=AN[0], sender=AN[1], subject="Groeipakket stopgezet", body=GROEIPAKKET))
    [first] = cases(app)
    poll(app, dovecot, complaint(name="Pieter Vermeulen", sender="pieter.v@gmail.com",
                                 subject=f"Stand van zaken {first.ref}",
                                 body="Goedendag, wat is de stand van zaken in dit dossier? Groeten, Pieter"), days=5)
    poll(app, dovecot, complaint(name=AN_WORK[0], sender=AN_WORK[1], subject=f"Re: {first.ref} Groeipakket stopgezet",
                                 body="Hierbij het schoolattest van mijn zoon in bijlage. Groeten, An"), days=1)
    _, stranger, work = cases(app)
    assert {"status_from_unknown_address", "needs_triage"} <= set(stranger.flags)
    assert {FOREIGN_REFERENCE, "needs_triage"} <= set(work.flags)
    assert work.citizen_email == AN_WORK[1] and work.investigator_email is None
    assert [(t, r) for t, r, _ in outbox(app)][1:] == [("status_neutral", "pieter.v@gmail.com"),
                                                       (NEUTRAL_RECEIPT, AN_WORK[1])]
    receipt = smtp_sink.parsed()[-1]
    assert smtp_sink.messages[-1].rcpt_tos == [AN_WORK[1]]
    # Their own new case's reference, and no other case's tag (contract audit: every reply carries its case's).
    assert receipt["Subject"] == f"Uw bericht [{work.ref}] {first.ref} Groeipakket stopgezet"
    assert receipt["Reply-To"] is None
    for part in ("plain", "html"):
        content = _text(receipt, part)
        assert "goed ontvangen" in content
        for secret in (first.ref, work.ref, first.investigator_name or "@vlaamseombudsdienst.example"):
            assert secret not in content
    text = digest.build(app.sessions, app.settings, date(2026, 11, 29)).text
    assert "dossiernummer vermeld vanaf een adres dat niet bij dat dossier hoort" in text
    assert "neutraal antwoord verstuurd" in text


@pytest.mark.dovecot
def test_mail_on_a_closed_case_gets_a_first_reaction_end_to_end(app, dovecot, smtp_sink):
    """Sofie's new complaint quoting her closed case gets the closed-case receipt with the reference;
    someone else replying in that case's thread gets a receipt that names no case."""
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Studietoelage nog altijd niet beslist"))
    [case] = cases(app)
    ack = smtp_sink.parsed()[0]["Message-ID"]
    with app.sessions.begin() as session:
        store.close_case(session, session.get(Case, case.id), now=app.intake.clock.now, by="staff")
    new = (f"Beste,\n\nVorig jaar hebt u mij goed geholpen met mijn dossier {case.ref}. Nu heb ik een ander "
           "probleem: De Lijn gaf mij een boete van 107 euro terwijl mijn abonnement geldig was.\n\nSofie Maes")
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Boete De Lijn onterecht", body=new),
         days=60)
    poll(app, dovecot, complaint(name="Koen Maes", sender="koen.maes@example.org", subject="Re: Uw klacht",
                                 body="Ik schrijf namens mijn zus, zij heeft nog een vraag.",
                                 extra_headers=f"In-Reply-To: {ack}\r\nReferences: {ack}\r\n"))
    [still] = cases(app)
    assert still.status == "closed" and {"on_closed_case", "needs_triage"} <= set(still.flags)
    assert outbox(app)[1:] == [(CLOSED_RECEIPT, SOFIE.email, "sent"), (NEUTRAL_RECEIPT, "koen.maes@example.org", "sent")]
    closed_receipt, neutral = smtp_sink.parsed()[1:]
    assert f"[{case.ref}]" in closed_receipt["Subject"]
    assert f"Uw dossier {case.ref} is afgesloten" in _text(closed_receipt)
    assert case.ref not in _text(neutral) and f"[{case.ref}]" not in neutral["Subject"]


@pytest.mark.dovecot
def test_receipts_on_a_closed_case_keep_the_per_case_limit(app, dovecot, smtp_sink):
    """Four mails on a closed case in one day: three receipts go out, the fourth is held for staff."""
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Studietoelage nog altijd niet beslist"))
    [case] = cases(app)
    with app.sessions.begin() as session:
        store.close_case(session, session.get(Case, case.id), now=app.intake.clock.now, by="staff")
    app.intake.clock.now += timedelta(days=10)
    poll(app, dovecot, *(complaint(name=SOFIE.name, sender=SOFIE.email, subject=f"Re: Uw klacht [{case.ref}]",
                                   body=f"Nog een aanvulling, deel {n}.") for n in range(4)))
    assert [s for t, _, s in outbox(app) if t == CLOSED_RECEIPT] == ["sent", "sent", "sent", "held"]


@pytest.mark.dovecot
@pytest.mark.parametrize("contacted, expected", [("ja", "ack_investigation"), ("nee", "referred_agency")])
def test_web_form_answer_about_contact_with_the_agency_is_read(app, dovecot, smtp_sink, contacted, expected):
    """"Hebt u al contact gehad met de dienst: ja" is first-line contact: no referral back to De Lijn."""
    body = form("An Janssens", "De bus 58 rijdt niet meer langs onze halte.", "an.j@example.be", contacted)
    poll(app, dovecot, complaint(name="Klachtenformulier", sender=FORM, subject="Klachtenformulier: De Lijn",
                                 body=body, extra_headers="Reply-To: An Janssens <an.j@example.be>\r\n"))
    assert [(t, r) for t, r, _ in outbox(app)] == [(expected, "an.j@example.be")]


def test_triage_label_shows_the_receipt_the_sender_got() -> None:
    """The digest says why the mail is listed and what its sender received."""
    message = Message(message_id="m1@example.be", kind="new_complaint")
    labels = triage_labels(message, {"needs_triage", FOREIGN_REFERENCE},
                           {"m1@example.be": [(NEUTRAL_RECEIPT, "sent")]}, opened=True)
    assert labels == (FOREIGN_REFERENCE, "reply_sent")


@pytest.mark.dovecot
def test_status_question_naming_no_case_gets_the_status_of_each_open_case_end_to_end(app, dovecot, smtp_sink):
    """Sofie has two open cases and asks "Is er al nieuws over de bus?" from her address on file:
    one reply gives the status of each, and no third case is opened."""
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Studietoelage nog altijd niet beslist"))
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Bus 58 stopt niet meer aan Kerkstraat",
                                 body="Beste,\n\nSinds september stopt bus 58 van De Lijn niet meer aan de halte "
                                      "Kerkstraat. Ik heb dat gemeld bij De Lijn, maar ze antwoorden niet.\n\nSofie"),
         days=1)
    studie, bus = cases(app)
    poll(app, dovecot, complaint(name=SOFIE.name, sender=SOFIE.email, subject="Re: mijn klacht",
                                 body="Is er al nieuws over de bus?"), days=5)
    assert len(cases(app)) == 2
    assert outbox(app)[-1] == (STATUS_OVERVIEW, SOFIE.email, "sent")
    overview = smtp_sink.parsed()[-1]
    assert overview["Subject"] == "Uw vraag: mijn klacht" and overview["Reply-To"] is None
    for part in ("plain", "html"):
        content = _text(overview, part)
        for case in (studie, bus):
            assert case.ref in content and case.subject in content
    with app.sessions() as session:
        question = session.execute(select(Message).where(Message.kind == "status_request")).scalar_one()
    assert question.case_id is None
