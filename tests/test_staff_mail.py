"""Mail from the office's own staff: an investigator's reply to the citizen with the complaints
mailbox in Cc, a colleague's note, the intake desk forwarding a complaint that reached a
colleague. Never answered, never a case's citizen; filed on the case it names."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from conftest import base_config, complaint
from helpers import SettableClock, append_all
from mailbot import digest
from mailbot.config import settings_from_mapping
from mailbot.db import Case, Message, Outbox
from mailbot.explain import explain
from mailbot.pipeline import process_files
from mailbot.rules import load_rules, rules_from_texts
from mailbot.staff import is_staff
from mailbot.views import case_dict, message_lines
from test_referrals import SHIPPED

START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
INVESTIGATOR = "hanne.claes@vlaamseombudsdienst.example"  # in rules/investigators.yaml
INTAKE_DESK = "intake@vlaamseombudsdienst.example"  # a routing rule's notify: address
COLLEAGUE = "secretariaat@vlaamseombudsdienst.be"  # in office.staff_domains, in no list
OFFICE = {"staff_domains": ["vlaamseombudsdienst.be"]}  # as the shipped config.yaml
AGENCY = "studietoelagen@onderwijs.vlaanderen.be"  # the agency's domain in rules/services.yaml
CITIZEN = "jan.peeters@example.be"


def staff_mail(sender: str, subject: str, body: str, *, name: str = "Hanne Claes", headers: str = "",
               message_id: str = "<staff-1@vlaamseombudsdienst.example>") -> bytes:
    """A colleague's mail to the citizen (and the agency), the complaints mailbox in Cc."""
    return (f"From: {name} <{sender}>\r\nTo: Jan Peeters <{CITIZEN}>\r\n"
            f"Cc: klachten@vlaamseombudsdienst.be, {AGENCY}\r\nSubject: {subject}\r\n"
            f"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: {message_id}\r\n{headers}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + body.replace("\n", "\r\n")).encode()


REPLY_BODY = ("Beste meneer Peeters,\n\nIk heb uw dossier bekeken en neem contact op met het Departement "
              "Onderwijs. Ik hou u op de hoogte.\n\nMet vriendelijke groeten,\nHanne Claes\n")


@pytest.fixture
def app(make_app, db_url):
    app = make_app(db_url=db_url, office=OFFICE)
    app.intake.clock = app.intake.matching.clock = SettableClock(START)
    return app


def open_case(app, sender: str = CITIZEN, name: str = "Jan Peeters", message_id: str | None = None) -> Case:
    process_files(app.intake, [complaint(sender=sender, name=name, message_id=message_id)])
    app.intake.clock.now += timedelta(hours=2)
    with app.sessions() as session:
        return session.execute(select(Case).order_by(Case.id.desc()).limit(1)).scalar_one()


def state(app) -> tuple[list[Case], list[Message], list[tuple[str, str]]]:
    with app.sessions() as session:
        cases = list(session.execute(select(Case).order_by(Case.id)).scalars())
        messages = list(session.execute(select(Message).where(Message.direction == "in")
                                        .order_by(Message.id)).scalars())
        outbox = [(o.template, o.recipient) for o in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]
        session.expunge_all()
    return cases, messages, outbox


def test_investigator_reply_with_us_in_cc_is_filed_on_the_case(app):
    """The reproduction: the investigator's reply to the citizen, Cc klachten@ and the agency,
    quoting the reference, opens no second case, gets no acknowledgment, is filed on the case
    as staff_message (listed by `case show`), flags nothing and counts as the case's activity."""
    case = open_case(app)
    assert case.investigator_email == INVESTIGATOR
    process_files(app.intake, [staff_mail(INVESTIGATOR, f"RE: Uw klacht [{case.ref}] Klacht over mijn studietoelage",
                                          REPLY_BODY, headers="In-Reply-To: <nothing@example.be>\r\n")])
    cases, messages, outbox = state(app)
    assert [c.ref for c in cases] == [case.ref] and cases[0].citizen_email == CITIZEN
    assert [(m.kind, m.from_email, m.case_id) for m in messages][1:] == [("staff_message", INVESTIGATOR, case.id)]
    assert outbox == [("ack_investigation", CITIZEN)]
    assert cases[0].flags == [] and cases[0].also_sent_to == []
    assert cases[0].updated_at.replace(tzinfo=timezone.utc) == app.intake.clock.now
    with app.sessions() as session:
        shown = case_dict(session.get(Case, case.id))
    assert [(m["kind"], m["from"]) for m in shown["messages"] if m["direction"] == "in"] == [
        ("new_complaint", CITIZEN), ("staff_message", INVESTIGATOR)]


def test_staff_mail_by_in_reply_to_is_filed_on_the_case(app):
    """A colleague's reply in the citizen's thread (In-Reply-To the complaint), no reference in
    subject or body, is filed on that case as staff_message, with no reply and no flag."""
    case = open_case(app, message_id="<complaint-1@mail.example.be>")
    process_files(app.intake, [staff_mail(INVESTIGATOR, "RE: Klacht over mijn studietoelage", REPLY_BODY,
                                          headers="In-Reply-To: <complaint-1@mail.example.be>\r\n"
                                                  "References: <complaint-1@mail.example.be>\r\n")])
    cases, messages, outbox = state(app)
    assert len(cases) == 1 and cases[0].flags == []
    assert (messages[-1].kind, messages[-1].case_id) == ("staff_message", case.id)
    assert outbox == [("ack_investigation", CITIZEN)]


def test_colleague_in_the_office_domain_who_is_no_investigator(app):
    """Someone of the office's own domain (not in investigators.yaml) may write about any case:
    the reference files the mail on it instead of opening a case for triage with a receipt."""
    case = open_case(app)
    process_files(app.intake, [staff_mail(COLLEAGUE, f"Dossier {case.ref}: afspraak", "Beste,\n\nWe plannen "
                                          "een afspraak met de dienst.\n\nSecretariaat\n", name="Secretariaat")])
    cases, messages, outbox = state(app)
    assert len(cases) == 1 and "reference_from_unknown_address" not in cases[0].flags
    assert (messages[-1].kind, messages[-1].case_id) == ("staff_message", case.id)
    assert [to for _, to in outbox] == [CITIZEN]


INTAKE_FORWARD = ("Collega's,\n\nDeze klacht kwam binnen op mijn eigen mailbox.\n\nIntake\n\n"
                  "________________________________\nVan: Marc Willems <marc.willems@hotmail.com>\n"
                  "Verzonden: maandag 23 november 2026 08:02\nAan: intake@vlaamseombudsdienst.example\n"
                  "Onderwerp: Klacht huurpremie\n\nGeachte,\n\nMijn huurpremie van Wonen in Vlaanderen wordt "
                  "al acht maanden niet uitbetaald. Ik heb hen al meerdere keren gemaild zonder antwoord.\n\n"
                  "Marc Willems\n")


def forward_mail(sender: str, subject: str, body: str, *, headers: str = "", message_id: str) -> bytes:
    """A mail to the complaints mailbox that forwards `body` (Outlook style)."""
    return (f"From: {sender}\r\nTo: klachten@vlaamseombudsdienst.be\r\n{headers}Subject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def unfiled_in_the_digest(app, raw: bytes) -> tuple[digest.RenderedDigest, str]:
    """`raw` recorded as a staff message on no case, nothing sent: the day's digest and its
    triage section."""
    process_files(app.intake, [raw])
    cases, messages, outbox = state(app)
    assert cases == [] and outbox == []
    assert [(m.kind, m.case_id) for m in messages] == [("staff_message", None)]
    rendered = digest.build(app.sessions, app.settings, date(2026, 11, 23))
    return rendered, rendered.text.split("== TE BESLISSEN ==", 1)[1].split("== BINNENGEKOMEN", 1)[0]


@pytest.mark.parametrize("cc", ["", "Cc: studietoelagen@onderwijs.vlaanderen.be, contact@federaalombudsman.be\r\n"])
def test_a_colleagues_forward_is_left_for_staff(app, cc):
    """What a colleague forwards (a complaint that reached them, an answer of an agency the rules
    do not know, a journalist's question) is no one's complaint until a person says so: no
    case, no mail to anyone (the forwarded sender, the colleague, whom they keep in copy), and
    the digest lists it for staff."""
    raw = forward_mail(f"Intake <{INTAKE_DESK}>", "FW: Klacht huurpremie", INTAKE_FORWARD, headers=cc,
                       message_id="<fw-1@vlaamseombudsdienst.example>")
    rendered, triage = unfiled_in_the_digest(app, raw)
    assert "FW: Klacht huurpremie" in triage and "open dan zelf het dossier" in triage
    assert "Doorverwezen door een andere ombudsdienst: 0" in rendered.text


def test_a_referrals_forward_line_in_case_show_is_not_the_agencys(make_app, sqlite_url):
    """`case show` calls a referral's forwarded sender what it is, not "from the agency"."""
    app = make_app(db_url=sqlite_url)
    raw = forward_mail("Ombudsdienst Stad Gent <ombudsdienst@stad.gent>", "TR: Klacht huurpremie",
                       INTAKE_FORWARD.replace("Collega's", "Geachte collega"), message_id="<ref-1@stad.gent>")
    process_files(app.intake, [raw])
    with app.sessions() as session:
        message = session.execute(select(Message).where(Message.direction == "in")).scalar_one()
        assert message.kind != "agency_forward"
        line = message_lines(message, None, timezone.utc)[0]
    assert "(forwarded, first from: Marc Willems <marc.willems@hotmail.com>)" in line


def test_staff_mail_naming_no_case_is_recorded_for_the_digest(app):
    """A colleague's note naming no case and forwarding no citizen's mail opens no case and gets
    no reply; it is recorded and listed in the digest's triage with a Dutch label."""
    _, triage = unfiled_in_the_digest(app, staff_mail(INVESTIGATOR, "Overleg dinsdag", "Collega's,\n\nHet "
                                                      "teamoverleg verschuift naar dinsdag.\n\nHanne\n"))
    assert "Overleg dinsdag" in triage and "bericht van een medewerker dat geen dossier noemt" in triage


def test_address_resembling_staff_is_still_a_citizen(app):
    """The same mail from a look-alike address (another domain) is a stranger's: it opens a case
    for triage with a neutral receipt, while the investigator's own is filed on the case."""
    case = open_case(app)
    lookalike = "hanne.claes@vlaamseombudsdienst.example.net"
    subject = f"RE: Uw klacht [{case.ref}] Klacht over mijn studietoelage"
    process_files(app.intake, [staff_mail(lookalike, subject, REPLY_BODY, message_id="<l-1@example.net>"),
                               staff_mail(INVESTIGATOR, subject, REPLY_BODY)])
    cases, messages, outbox = state(app)
    assert [(c.citizen_email, "reference_from_unknown_address" in c.flags) for c in cases] == [
        (CITIZEN, False), (lookalike, True)]
    assert [(m.from_email, m.kind) for m in messages[1:]] == [
        (lookalike, "new_complaint"), (INVESTIGATOR, "staff_message")]
    assert outbox == [("ack_investigation", CITIZEN), ("receipt_neutral", lookalike)]


def test_rules_explain_shows_a_staff_message(app):
    """`rules explain` goes through the same plan: staff_message on the case, no reply."""
    case = open_case(app)
    shown = explain(app, staff_mail(INVESTIGATOR, f"RE: [{case.ref}] uw klacht", REPLY_BODY))
    assert shown["decision"]["kind"] == "staff_message" and shown["decision"]["joins_case"] == case.ref
    assert shown["replies"] == [] and shown["decision"]["flags"] == []


def test_staff_cc_through_a_real_poll(make_app, dovecot, smtp_sink, db_url):
    """Through Dovecot and the SMTP sink: the complaint's acknowledgment is the only mail sent."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    append_all(dovecot, [staff_mail(INVESTIGATOR, f"RE: Uw klacht [{ref}]", REPLY_BODY)])
    app.poll_once()
    app.send_outbox()
    cases, messages, _ = state(app)
    assert len(cases) == 1 and [m.kind for m in messages] == ["new_complaint", "staff_message"]
    assert [m["To"] for m in smtp_sink.parsed()] == [f"Jan Peeters <{CITIZEN}>"]


def test_who_is_staff():
    """Investigators, digest recipients, notify: addresses and `office.staff_domains` are staff;
    the robot's own addresses, web-form robots, look-alike domains and the domains of our own
    addresses (a city's shared domain, a mailbox login's) are not."""
    settings = settings_from_mapping(base_config(digest={"recipients": ["directie@elders.example"]},
                                                 webform_senders=["formulier@vlaamseombudsdienst.be"],
                                                 office=OFFICE))
    ruleset = load_rules(SHIPPED)
    staff = [INVESTIGATOR, INTAKE_DESK, "directie@elders.example", COLLEAGUE]
    others = ["klachten@vlaamseombudsdienst.be", "klachten@example.org", "formulier@vlaamseombudsdienst.be",
              "Jan@Example.org",
              "hanne.claes@vlaamseombudsdienst.example.net", "x@mail.vlaamseombudsdienst.be", CITIZEN, ""]
    assert [e for e in staff if not is_staff(e, settings, ruleset)] == []
    assert [e for e in others if is_staff(e, settings, ruleset)] == []
    empty = rules_from_texts()
    assert not is_staff(INVESTIGATOR, settings, empty)
    city = settings_from_mapping(base_config(smtp={"from_address": "ombudsdienst@stad.gent"}))
    assert not is_staff("an.devos@stad.gent", city, ruleset)  # no domain is staff's unless configured
