"""Complaints referred to us by another ombudsman service are the citizen's: who the
complainant is, which text speaks for them, and which services the shipped directory
finds in a complaint."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from mailbot.classify import classify, for_referral
from mailbot.db import Case, Message, Outbox
from mailbot.decide import decide
from mailbot.match import match_message
from mailbot.match_model import Found
from mailbot.matching_stage import observe
from mailbot.model import Address, Classification, Facts, Kind, Mail
from mailbot.parse import parse_message
from mailbot.pipeline import process_files
from mailbot.route import route
from mailbot.rules import load_rules
from mailbot.services import services_in_text

SHIPPED = Path(__file__).resolve().parent.parent / "rules"
OWN = frozenset({"klachten@vlaamseombudsdienst.be"})
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
FEDERAL = "Sarah Dubois - Federale Ombudsman <sarah.dubois@federaalombudsman.be>"
CITIZEN_TEXT = (
    "Geachte,\n\nIk huur een sociale woning en mijn huurpremie van Wonen in Vlaanderen wordt al acht "
    "maanden niet uitbetaald. Ik heb Wonen in Vlaanderen al meerdere keren gemaild maar zonder enig "
    "antwoord.\nIk wens anoniem te blijven tegenover de huisvestingsmaatschappij.\n"
    "U kunt mij best telefonisch bereiken: bel mij op 0478 12 34 56.\n\nMarc Willems\n")
FEDERAL_COVER = (
    "Geachte collega,\n\nWij ontvingen onderstaande klacht die tot uw bevoegdheid behoort en sturen ze u "
    "door.\nVoor vragen kunt u mij bereiken op 02 289 27 27 of per e-mail op "
    "sarah.dubois@federaalombudsman.be.\n\nMet vriendelijke groeten,\nSarah Dubois\nFederale Ombudsman\n")


def _mail(sender: str, subject: str, body: str, *, headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: Klachten <klachten@vlaamseombudsdienst.be>\r\nSubject: {subject}\r\n"
            f"Date: Fri, 20 Nov 2026 09:04:00 +0000\r\nMessage-ID: <{abs(hash(body))}@test>\r\n{headers}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def outlook_referral(cover: str = FEDERAL_COVER, van: str = "Marc Willems <marc.willems@hotmail.com>",
                     citizen_text: str = CITIZEN_TEXT) -> bytes:
    """The Federal Ombudsman forwards the citizen's complaint, Outlook nl style."""
    return _mail(FEDERAL, "FW: Klacht huurpremie", f"{cover}\n________________________________\n"
                 f"Van: {van}\nVerzonden: maandag 16 november 2026 14:02\n"
                 "Aan: contact@federaalombudsman.be\nOnderwerp: Klacht huurpremie\n\n\n" + citizen_text)


def walloon_referral() -> bytes:
    """The Médiateur de Wallonie forwards a Dutch citizen's complaint with a French cover note (Gmail)."""
    return _mail("Le Médiateur <courrier@le-mediateur.be>", "Fwd: Klacht huurpremie",
                 "Madame, Monsieur,\n\nNous vous transmettons la plainte ci-dessous, qui relève de votre "
                 "compétence. Pour toute question: 081 32 19 11.\n\nLe Médiateur de Wallonie\n\n"
                 "---------- Forwarded message ---------\nDe : Marc Willems <marc.willems@hotmail.com>\n"
                 "Date: lun. 16 nov. 2026 à 14:02\nSubject: Klacht huurpremie\n"
                 "To: <courrier@le-mediateur.be>\n\n\n" + CITIZEN_TEXT)


def rfc822_referral() -> bytes:
    """The same complaint attached as message/rfc822."""
    inner = _mail("Marc Willems <marc.willems@hotmail.com>", "Klacht huurpremie", CITIZEN_TEXT).decode()
    return (f"From: {FEDERAL}\r\nTo: klachten@vlaamseombudsdienst.be\r\nSubject: Doorverwijzing: klacht "
            "huurpremie\r\nDate: Fri, 20 Nov 2026 09:05:00 +0000\r\nMessage-ID: <rfc822-ref@test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nGeachte collega,\r\n\r\nIn bijlage een klacht die "
            "tot uw bevoegdheid behoort.\r\nVoor vragen: 02 289 27 27.\r\n\r\nSarah Dubois\r\nFederale "
            "Ombudsman\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\n--B--\r\n").encode()


def test_referral_facts_and_language_are_the_citizens(make_app, sqlite_url):
    """Inline nl, Gmail with a French cover note, and attached rfc822: the citizen's Dutch, their
    anonymity request, phone preference and number; never the referring staff member's number."""
    app = make_app(db_url=sqlite_url)
    stage = app.intake.matching
    for raw in (outlook_referral(), walloon_referral(), rfc822_referral()):
        mail = parse_message(raw)
        before = classify(mail, own_addresses=OWN)
        after = stage.for_complainant(mail, before)
        facts = after.facts
        assert after.language == "nl" and after.kind is before.kind
        assert facts.anonymity_requested and facts.prefers_phone
        assert facts.phone_numbers == ("+32478123456",), facts.phone_numbers
        assert "referred by" in after.reasons[-1]


def test_the_citizens_language_and_facts_reach_the_reply_and_the_flags(make_app, sqlite_url):
    """Decided on the complainant's classification, the acknowledgment of a French-covered
    referral goes to the citizen in Dutch, flagged anonymity_requested and prefers_phone."""
    app = make_app(db_url=sqlite_url)
    stage = app.intake.matching
    mail = parse_message(walloon_referral())
    classification = stage.for_complainant(mail, classify(mail, own_addresses=OWN))
    with app.sessions() as session:
        match = stage.match(session, mail, classification)
    decision = decide(mail, classification, match, recipient=None)
    assert [(r.template, r.to.email, r.language) for r in decision.replies] == [
        ("ack_investigation", "marc.willems@hotmail.com", "nl")]
    assert {"anonymity_requested", "prefers_phone", "referred_by"} <= set(decision.flags)


def test_the_intake_records_a_referral_as_the_citizens_complaint(make_app, db_url):
    """Through the pipeline: the case of a French-covered referral is Dutch, flagged with the
    citizen's wishes, holds the citizen's phone number and answers the citizen in Dutch."""
    app = make_app(db_url=db_url)
    process_files(app.intake, [walloon_referral()])
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        replies = session.execute(select(Outbox.recipient, Outbox.template)).all()
    assert case.language == "nl"
    assert {"anonymity_requested", "prefers_phone", "referred_by"} <= set(case.flags)
    assert case.contact_phone == "+32478123456"
    assert [tuple(r) for r in replies] == [("marc.willems@hotmail.com", "ack_investigation")]


def test_a_citizens_forward_of_an_agency_letter_keeps_its_own_facts(make_app, sqlite_url):
    """Only a referral by an ombudsman service changes the classification: a citizen
    forwarding the agency's letter keeps the facts and language of their own words."""
    app = make_app(db_url=sqlite_url)
    raw = _mail("Marc Willems <marc.willems@hotmail.com>", "FW: Uw dossier",
                "Bel mij liever op 0478 12 34 56.\n\n________________________________\n"
                "Van: Wonen in Vlaanderen <info@wonenvlaanderen.be>\nVerzonden: maandag 16 november 2026\n"
                "Aan: marc.willems@hotmail.com\nOnderwerp: Uw dossier\n\nUw dossier is in behandeling. "
                "Vragen? Bel 02 553 00 00.\n")
    mail = parse_message(raw)
    classification = classify(mail, own_addresses=OWN)
    assert app.intake.matching.for_complainant(mail, classification) is classification


def test_for_referral_ignores_the_cover_note():
    """`for_referral` reads only the citizen's forwarded text; the mail's dmarc verdict stays."""
    mail = parse_message(outlook_referral())
    cover = classify(mail, own_addresses=OWN)
    spoofed = Classification(cover.kind, "fr", cover.reasons, facts=Facts(phone_numbers=("+3222892727",),
                                                                           spoofed=True))
    result = for_referral(spoofed, mail.forwarded[0], referred_by="federale-ombudsman")
    assert result.language == "nl" and result.facts.spoofed
    assert result.facts.phone_numbers == ("+32478123456",) and result.facts.anonymity_requested


NO_ADDRESS_COVER = ("Geachte collega,\n\nOnderstaande klacht behoort tot uw bevoegdheid. De klager is "
                    "bereikbaar op marc.willems@hotmail.com.\n\nSarah Dubois\n")


def _observe(raw: bytes):
    return observe(parse_message(raw), Kind.AGENCY_FORWARD, load_rules(SHIPPED), own=OWN, prefix="VO", now=NOW)


def test_citizen_named_without_address_takes_the_address_the_cover_note_states():
    """"Van: Marc Willems" without an address: the one non-service address in the cover note is theirs."""
    facts = _observe(outlook_referral(NO_ADDRESS_COVER, van="Marc Willems")).facts
    assert facts.identity == Address("Marc Willems", "marc.willems@hotmail.com")
    assert facts.referred_by == "federale-ombudsman"
    m = match_message(facts, Found()).match
    assert m.citizen == facts.identity and not m.needs_triage


def test_citizen_without_any_address_is_left_for_triage_and_not_answered():
    """No address in the forwarded header nor in the cover note (only the staff member's own):
    no citizen to answer, the case is flagged needs_triage with the reason."""
    facts = _observe(outlook_referral(van="Marc Willems")).facts
    assert facts.identity == Address("Marc Willems", "") and facts.referred_by == "federale-ombudsman"
    m = match_message(facts, Found()).match
    assert m.citizen is None and m.needs_triage and "referred_by" in m.flags
    assert m.evidence[0].method == "referral" and "Marc Willems" in m.evidence[0].detail


def test_referral_without_any_citizen_address_opens_a_triage_case_without_reply(make_app, sqlite_url):
    """Through the pipeline: a case flagged needs_triage and referred_by, no reply to "Marc Willems <>"
    nor to the service; with the cover note's address the case is the citizen's and answered."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [outlook_referral(van="Marc Willems")])
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        outbox = session.execute(select(Outbox)).scalars().all()
    assert case.citizen_email and {"needs_triage", "referred_by"} <= set(case.flags)
    assert outbox == []
    app = make_app(db_url=sqlite_url.replace("mailbot.sqlite3", "second.sqlite3"))
    process_files(app.intake, [outlook_referral(NO_ADDRESS_COVER, van="Marc Willems")])
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        recipients = session.execute(select(Outbox.recipient)).scalars().all()
    assert case.citizen_email == "marc.willems@hotmail.com" and recipients == ["marc.willems@hotmail.com"]


DE_LIJN_IN_GENT = ("De bushalte van De Lijn aan mijn deur in de stad Gent is al drie maanden afgeschaft. "
                   "Ik heb De Lijn al twee keer gemaild zonder antwoord.")


def _complaint(text: str) -> tuple[Mail, Classification]:
    mail = Mail(message_id="m", subject="Klacht De Lijn bushalte", from_=Address("Burger", "burger@example.org"),
                to=(Address("", "klachten@vlaamseombudsdienst.be"),), text=text, new_text=text)
    return mail, Classification(Kind.NEW_COMPLAINT, "nl", facts=Facts(first_line_contact=True))


def test_a_city_named_as_a_place_is_no_referral_to_its_ombudsman():
    """"in de stad Gent" / "de stad Antwerpen" as a place: De Lijn is found, no city ombudsman,
    and the complaint is investigated, not referred."""
    ruleset = load_rules(SHIPPED)
    for text in (DE_LIJN_IN_GENT, DE_LIJN_IN_GENT.replace("in de stad Gent", "in de stad Antwerpen")):
        assert [s.id for s in services_in_text(ruleset, text)] == ["de-lijn"]
        result = route(*_complaint(text), ruleset)
        assert result.outcome == "investigation" and result.refer_to is None


def test_the_city_administration_and_its_ombudsman_are_still_found():
    """"Stad Gent" as the administration, and the city ombudsman by name, still refer."""
    ruleset = load_rules(SHIPPED)
    for text, service in (("Klacht over de dienstverlening van Stad Gent.", "ombudsdienst-gent"),
                          ("Ik schreef al naar de ombudsman van Stad Antwerpen.", "ombudsdienst-antwerpen"),
                          ("De Ombudsdienst Stad Gent stuurde mij door.", "ombudsdienst-gent"),
                          ("Het stadsbestuur van Antwerpen antwoordt niet.", "ombudsdienst-antwerpen")):
        assert service in [s.id for s in services_in_text(ruleset, text)], text


def _outbox(app) -> list:
    from email import message_from_bytes, policy

    with app.sessions() as session:
        rows = session.execute(select(Outbox.template, Outbox.mime).order_by(Outbox.id)).all()
    return [(template, message_from_bytes(mime, policy=policy.default)) for template, mime in rows]


def test_the_acknowledgment_of_a_referral_says_who_sent_it_under_the_citizens_subject(make_app, sqlite_url):
    """The citizen never saw the Federal Ombudsman's cover mail: the acknowledgment names the
    service that passed the complaint on, carries the citizen's own subject (not the cover's
    "Doorverwijzing: …"), and does not thread under the cover mail's Message-ID."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [rfc822_referral()])
    [(template, message)] = _outbox(app)
    body = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert template == "ack_investigation" and message["To"].addresses[0].addr_spec == "marc.willems@hotmail.com"
    assert message["Subject"].endswith("] Klacht huurpremie") and "Doorverwijzing" not in message["Subject"]
    assert message["In-Reply-To"] is None and message["References"] is None
    assert "Een andere ombudsdienst (Federale Ombudsman) heeft uw klacht aan ons" in body
    assert "U hoeft de klacht niet\nopnieuw in te dienen." in body
    with app.sessions() as session:
        sent = session.execute(select(Message).where(Message.direction == "out")).scalar_one()
    assert sent.in_reply_to == "" and sent.references == []


FRENCH_TEXT = ("Madame, Monsieur,\n\nJe loue un logement social et ma prime de loyer de Wonen in Vlaanderen n'est "
               "plus payée depuis huit mois. J'ai écrit plusieurs fois à Wonen in Vlaanderen, sans aucune "
               "réponse de leur part. Pouvez-vous m'aider ?\n\nMarc Willems\n")


def test_a_french_citizen_is_told_in_french_which_service_forwarded_the_complaint(make_app, sqlite_url):
    """The referring service is named in the citizen's language: the Médiateur fédéral."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [outlook_referral(citizen_text=FRENCH_TEXT)])
    [(template, message)] = _outbox(app)
    body = message.get_body(("plain",)).get_content()
    assert template == "ack_investigation" and message["Content-Language"] == "fr"
    assert "Un autre service de médiation (Médiateur fédéral) nous a transmis" in body
    assert "Federale Ombudsman" not in body and message["In-Reply-To"] is None


def test_a_citizens_own_complaint_still_threads_and_names_no_referrer(make_app, sqlite_url):
    """A complaint the citizen sent us: the acknowledgment replies to their message as before."""
    app = make_app(db_url=sqlite_url)
    raw = _mail("Marc Willems <marc.willems@hotmail.com>", "Klacht huurpremie", CITIZEN_TEXT)
    process_files(app.intake, [raw])
    [(template, message)] = _outbox(app)
    assert message["In-Reply-To"] == f"<{abs(hash(CITIZEN_TEXT))}@test>"
    assert "ombudsdienst (" not in message.get_body(("plain",)).get_content()
