"""Threading and duplicate detection end to end: Dovecot → poll cycle → cases → aiosmtpd.

Realistic Dutch and French scenarios from issue 5: one complaint, one case.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import SettableClock, append_all, counts
from mailbot.db import Case, CaseKey, Message, Outbox

pytestmark = pytest.mark.dovecot

OFFICE = "klachten@vlaamseombudsdienst.be"
START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
SOFIE = ("Sofie Maes", "sofie.maes@example.be")
STUDIE = ("Geachte,\n\nIn maart heb ik een studietoelage aangevraagd bij de afdeling Studietoelagen van "
          "het Departement Onderwijs. Na vier maanden heb ik nog steeds geen beslissing ontvangen. Ik heb "
          "hen al twee keer gemaild en een keer gebeld, maar niemand kan mij zeggen wanneer mijn dossier "
          "behandeld wordt.\n\nMet vriendelijke groeten,\nSofie Maes")
BUS = ("Beste,\n\nSinds september stopt bus 58 van De Lijn niet meer aan de halte Kerkstraat in "
       "Mariakerke. Voor de bewoners van het woonzorgcentrum is de volgende halte te ver. Mijn klacht "
       "bij De Lijn kreeg dossiernummer DL-2026417.\n\nTom Wouters")



FORM = "formulier@vlaamseombudsdienst.be"  # the office's web form robot (citizen in Reply-To)


@pytest.fixture
def app(make_app, dovecot, smtp_sink, db_url):
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username,
                         "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, webform_senders=[FORM])
    app.intake.clock = app.intake.matching.clock = SettableClock(START)
    return app


def mail(sender: tuple[str, str], subject: str, body: str, *, cc: str = "", headers: str = "",
         message_id: str | None = None) -> bytes:
    return complaint(name=sender[0], sender=sender[1], subject=subject, body=body,
                     message_id=message_id, extra_headers=(f"Cc: {cc}\r\n" if cc else "") + headers)


def poll(app, dovecot, *raws: bytes, days: int = 0):
    if days:
        app.intake.clock.now += timedelta(days=days)
    append_all(dovecot, raws)
    report = app.poll_once()
    app.send_outbox()
    return report


def cases(app) -> list[Case]:
    with app.sessions() as session:
        return list(session.execute(select(Case).order_by(Case.id)).scalars())


def incoming(app) -> list[Message]:
    with app.sessions() as session:
        return list(session.execute(select(Message).where(Message.direction == "in")
                                    .order_by(Message.id)).scalars())


def test_follow_up_by_reply_and_by_reference_join_the_case(app, dovecot, smtp_sink):
    """A reply to our acknowledgment and a fresh mail quoting [REF] both join the first case."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    [case] = cases(app)
    ack = smtp_sink.parsed()[0]["Message-ID"]
    poll(app, dovecot, mail(SOFIE, "Re: ontvangstbevestiging", "Dank u, ik wacht af.",
                            headers=f"In-Reply-To: {ack}\r\nReferences: {ack}\r\n"))
    poll(app, dovecot, mail(SOFIE, f"Aanvulling {case.ref}", "Ik heb intussen een brief gekregen."))
    assert len(cases(app)) == 1
    assert [m.case_id for m in incoming(app)] == [case.id] * 3


@pytest.mark.parametrize("forward", ["apple-nl", "outlook-fr", "gmail-nl"])
def test_forwarded_agency_letter_joins_the_open_case_about_that_agency(app, dovecot, forward):
    """The citizen forwards the agency's answer (Apple Mail, Outlook, Gmail; nl/fr): it is
    threaded into their open case about that agency, not into their other case."""
    tom = ("Tom Wouters", "tom.wouters@example.be")
    poll(app, dovecot, mail(tom, "Bus 58 stopt niet meer aan onze halte", BUS))
    poll(app, dovecot, mail(tom, "Studietoelage", STUDIE.replace("Sofie Maes", "Tom Wouters")))
    bus_case = cases(app)[0]
    letter = {
        "apple-nl": ("Fwd: Uw klacht", "Ter info.\n\nBegin doorgestuurd bericht:\n\n"
                     "Van: De Lijn Klantendienst <klantendienst@delijn.be>\nOnderwerp: Uw klacht\n"
                     "Datum: 3 december 2026 om 10:12:00 CET\nAan: Tom Wouters <tom.wouters@example.be>\n\n"
                     "Beste klant, wij bekijken of de halte opnieuw bediend kan worden."),
        "outlook-fr": ("TR: Votre plainte", "Bonjour,\n\nVoici la réponse.\n\nTom\n\n"
                       "-----Message d'origine-----\nDe : De Lijn <info@delijn.be>\n"
                       "Envoyé : jeudi 3 décembre 2026 10:12\nÀ : Tom Wouters <tom.wouters@example.be>\n"
                       "Objet : Votre plainte\n\nMonsieur, nous examinons votre demande concernant l'arrêt."),
        "gmail-nl": ("Fwd: Beslissing", "Zie onderstaande mail.\n\n---------- Doorgestuurd bericht ---------\n"
                     "Van: De Lijn <info@delijn.be>\nDate: do 3 dec 2026 om 10:12\nSubject: Beslissing\n"
                     "To: <tom.wouters@example.be>\n\n\nBeste,\n\nDe halte blijft afgeschaft."),
    }[forward]
    poll(app, dovecot, mail(tom, *letter), days=10)
    assert len(cases(app)) == 2
    last = incoming(app)[-1]
    assert (last.case_id, last.kind) == (bus_case.id, "agency_forward")
    assert last.original_sender and "delijn.be" in last.original_sender


def test_agency_reference_number_leads_to_the_case(app, dovecot):
    """The agency's own file number (DL-…) remembered on a case threads a later mail of the
    citizen that has neither our reference nor similar text."""
    tom = ("Tom Wouters", "tom.wouters@example.be")
    poll(app, dovecot, mail(tom, "Bus 58 stopt niet meer aan onze halte", BUS))
    [case] = cases(app)
    with app.sessions() as session:
        keys = session.execute(select(CaseKey.value).where(CaseKey.kind == "agency_ref")).scalars().all()
    assert keys == ["de-lijn:DL-2026417"]
    poll(app, dovecot, mail(tom, "Dossier DL-2026417", "Is er al nieuws? Ik hoorde niets meer."), days=20)
    assert len(cases(app)) == 1 and incoming(app)[-1].case_id == case.id


def test_cc_to_the_federal_ombudsman_is_multi_addressed(app, dovecot):
    """A complaint with the Federal Ombudsman in Cc is flagged multi_addressed with the service in also_sent_to."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE,
                            cc="Federale Ombudsman <contact@federaalombudsman.be>"))
    [case] = cases(app)
    assert "multi_addressed" in case.flags and case.also_sent_to == ["federale-ombudsman"]


def test_agency_in_cc_is_flagged_and_reminded_once(app, dovecot, smtp_sink):
    """The agency in Cc flags agency_in_cc, records the agency in also_sent_to, and the
    citizen gets the reminder once, not again on a follow-up with the agency in Cc."""
    tom = ("Tom Wouters", "tom.wouters@example.be")
    desk = "Klantendienst De Lijn <klantendienst@delijn.be>"
    poll(app, dovecot, mail(tom, "Bus 58 stopt niet meer aan onze halte", BUS, cc=desk))
    [case] = cases(app)
    assert "agency_in_cc" in case.flags and "de-lijn-klantendienst" in case.also_sent_to
    poll(app, dovecot, mail(tom, f"Re: [{case.ref}] bus 58", "Nog een foto van de halte.", cc=desk))
    with app.sessions() as session:
        templates = session.execute(select(Outbox.template).order_by(Outbox.id)).scalars().all()
    assert len(cases(app)) == 1
    assert templates.count("agency_in_cc") == 1, templates


def test_resubmission_a_week_later_joins_the_first_case_as_possible_duplicate(app, dovecot):
    """The same complaint sent again a week later with a reworded subject joins the first case,
    flagged possible_duplicate."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    reworded = ("Beste,\n\nIk schrijf u opnieuw over de studietoelage die ik in maart aanvroeg bij het "
                "Departement Onderwijs. Vier maanden later is er nog altijd geen beslissing. Mails en "
                "telefoontjes naar de afdeling Studietoelagen leveren niets op: niemand weet wanneer mijn "
                "dossier behandeld wordt.\n\nGroeten,\nSofie")
    poll(app, dovecot, mail(SOFIE, "Nog altijd geen beslissing", reworded), days=7)
    [case] = cases(app)
    assert "possible_duplicate" in case.flags
    last = incoming(app)[-1]
    assert last.case_id == case.id and last.details["match"]["duplicate_of"] == case.ref


def test_same_complaint_from_a_second_address_is_a_flagged_new_case(app, dovecot):
    """A near-identical complaint from another address opens a new case flagged
    possible_duplicate with duplicate_of the first case, for staff to decide."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    poll(app, dovecot, mail(("Sofie M.", "sofie.maes73@gmail.example"), "Klacht studietoelage",
                            STUDIE.replace("Geachte,", "Goedemorgen,")), days=2)
    first, second = cases(app)
    assert "possible_duplicate" in second.flags and second.duplicate_of_id == first.id
    assert second.citizen_email == "sofie.maes73@gmail.example"


def _referral(citizen: tuple[str, str], body: str) -> bytes:
    return mail(("Ombudsdienst Stad Gent", "ombudsdienst@stad.gent"), "TR: Klacht studietoelage",
                "Geachte collega,\n\nDeze klacht valt onder uw bevoegdheid. Wij sturen ze door.\n\n"
                "Ombudsdienst Stad Gent\n\n________________________________\n"
                f"Van: {citizen[0]} <{citizen[1]}>\nVerzonden: maandag 23 november 2026 08:12\n"
                "Aan: Ombudsdienst Gent <ombudsdienst@stad.gent>\nOnderwerp: Klacht studietoelage\n\n" + body)


def test_referral_by_a_local_ombudsman_becomes_the_citizens_case(app, dovecot, smtp_sink):
    """A complaint forwarded by the Ghent ombudsman service opens a case for the citizen,
    flagged referred_by, and the acknowledgment goes to the citizen, not to the service."""
    poll(app, dovecot, _referral(SOFIE, STUDIE))
    [case] = cases(app)
    assert case.citizen_email == SOFIE[1]
    assert "referred_by" in case.flags and "ombudsdienst-gent" in case.also_sent_to
    assert [m.rcpt_tos for m in smtp_sink.messages] == [[SOFIE[1]]]


def test_referral_of_a_complaint_the_citizen_also_sent_us_joins_their_case(app, dovecot):
    """When the citizen already wrote to us, the referral joins that case, flagged
    multi_addressed with the referring service in also_sent_to."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    poll(app, dovecot, _referral(SOFIE, STUDIE), days=3)
    [case] = cases(app)
    assert "multi_addressed" in case.flags and "ombudsdienst-gent" in case.also_sent_to
    assert incoming(app)[-1].case_id == case.id


def test_unrelated_second_complaint_from_the_same_citizen_is_a_new_case(app, dovecot):
    """Another complaint of the same citizen about something else opens its own case."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    poll(app, dovecot, mail(SOFIE, "Boete op de tram", "Beste,\n\nIk kreeg een boete van 75 euro op tram 1 "
                            "omdat mijn abonnement niet geldig zou zijn. Het abonnement was geldig, de "
                            "scanner werkte niet en De Lijn weigert de boete te annuleren.\n\nSofie Maes"),
         days=5)
    first, second = cases(app)
    assert second.citizen_email == first.citizen_email and "possible_duplicate" not in second.flags
    assert "needs_triage" not in second.flags


def test_stranger_quoting_someone_elses_reference_gets_a_flagged_new_case(app, dovecot):
    """A reference typed by an address unknown to the case does not thread: a new case flagged needs_triage."""
    poll(app, dovecot, mail(SOFIE, "Klacht over mijn studietoelage", STUDIE))
    [case] = cases(app)
    poll(app, dovecot, mail(("Piet Janssens", "piet@example.org"), f"Vraag over {case.ref}",
                            "Ik wil graag weten hoe het met dit dossier staat, ik ben de buurman."))
    first, second = cases(app)
    assert second.id != first.id and "needs_triage" in second.flags
    assert incoming(app)[-1].details["match"]["candidates"][0]["detail"].startswith(case.ref)


def test_same_message_id_twice_is_one_message(app, dovecot):
    """The same Message-ID arriving twice (To us and via a list) is stored and answered once."""
    raw = mail(SOFIE, "Klacht over mijn studietoelage", STUDIE, message_id="<same-1@example.be>")
    copy = raw.replace(b"From:", b"Received: from list.example.org\r\nFrom:", 1)
    report = poll(app, dovecot, raw, copy)
    assert (report.processed, report.duplicates) == (1, 1)
    assert counts(app)["cases"] == 1 and counts(app)["incoming"] == 1


# -- defects an audit found -------------------------------------------------------------

LIES = ("Lies Wouters - OCMW Gent", "lies.wouters@ocmwgent.be")  # a social worker writing for clients
FOR_FATIMA = ("Geachte,\n\nIk schrijf u namens mijn cliënte mevrouw Fatima El Amrani. De VDAB heeft haar "
              "begeleiding stopgezet zonder haar te verwittigen, waardoor zij haar uitkering dreigt te "
              "verliezen. Zij heeft geen brief ontvangen en haar consulent antwoordt niet.\n\n"
              "Met vriendelijke groeten,\nLies Wouters\nMaatschappelijk werker OCMW Gent")


def _vdab_letter(note: str, to: str, letter: str) -> str:
    return (f"{note}\n\n---------- Forwarded message ---------\nFrom: VDAB <info@vdab.be>\n"
            f"Date: Mon, 7 Dec 2026\nSubject: Beslissing\nTo: {to}\n\n{letter}\nVDAB\n")


def test_forwarded_letter_to_another_person_does_not_join_the_senders_case(app, dovecot):
    """A social worker's case about VDAB for one client: a VDAB letter she forwards that is
    addressed to another person opens a new case for triage naming the first case; a letter
    addressed to the client her case names joins that case."""
    poll(app, dovecot, mail(LIES, "Klacht VDAB begeleiding mevrouw El Amrani", FOR_FATIMA))
    [fatima] = cases(app)
    poll(app, dovecot, mail(LIES, "Fwd: Beslissing sanctie - dhr. Hermans", _vdab_letter(
        "Ik schrijf u nu namens een andere cliënt, de heer Bram Hermans. Hij ontving onderstaande brief.",
        "<bram.hermans@example.be>", "Geachte heer Hermans,\nU bent niet verschenen op uw afspraak. "
        "Wij geven uw dossier door aan de RVA.")), days=20)
    first, bram = cases(app)
    assert first.id == fatima.id and "needs_triage" in bram.flags
    [candidate] = incoming(app)[-1].details["match"]["candidates"]
    assert candidate["method"] == "agency-forward" and candidate["detail"].startswith(fatima.ref)
    poll(app, dovecot, mail(LIES, "Fwd: Beslissing", _vdab_letter(
        "Hierbij het antwoord voor mevrouw El Amrani.", "Fatima El Amrani <fatima.elamrani@example.be>",
        "Geachte mevrouw,\nUw begeleiding wordt hervat op 4 januari.")), days=1)
    assert len(cases(app)) == 2
    last = incoming(app)[-1]
    assert (last.case_id, last.kind) == (fatima.id, "agency_forward")


def test_case_open_longer_than_recent_case_days_still_threads(app, dovecot):
    """A case still open after 400 days (more than matching.recent_case_days): the agency's
    forwarded answer and a status request from the citizen join it."""
    tom = ("Tom Wouters", "tom.wouters@example.be")
    poll(app, dovecot, mail(tom, "Bus 58 stopt niet meer aan onze halte", BUS))
    [case] = cases(app)
    poll(app, dovecot, mail(tom, "Fwd: Uw melding", "Eindelijk antwoord, zie hieronder.\n\n"
                            "---------- Forwarded message ---------\nFrom: De Lijn <klantendienst@delijn.be>\n"
                            "Date: Mon, 3 Jan 2028\nSubject: Uw melding\nTo: <tom.wouters@example.be>\n\n"
                            "Beste meneer,\nDe halte wordt vanaf februari opnieuw bediend.\nDe Lijn\n"), days=400)
    poll(app, dovecot, mail(tom, "Stand van zaken", "Goedendag, wat is de stand van zaken van mijn klacht? Tom"),
         days=1)
    assert len(cases(app)) == 1
    assert [m.kind for m in incoming(app)][1:] == ["agency_forward", "status_request"]
    assert all(m.case_id == case.id for m in incoming(app))


def test_reply_with_the_subject_of_one_of_two_open_cases_joins_it(app, dovecot):
    """The citizen has two open cases; a top-posted "Re: <subject of one>" with news joins that one."""
    poll(app, dovecot, mail(SOFIE, "Studietoelage nog altijd niet beslist", STUDIE))
    poll(app, dovecot, mail(SOFIE, "Bus 58 stopt niet meer aan Kerkstraat", BUS), days=1)
    studie, _ = cases(app)
    quoted = "\n".join("> " + line for line in STUDIE.splitlines())
    poll(app, dovecot, mail(SOFIE, "Re: Studietoelage nog altijd niet beslist",
                            "Nog een update: het Departement vraagt nu een kopie van mijn identiteitskaart.\n\n"
                            f"Op di 24 nov 2026 om 10:00 schreef Sofie Maes <{SOFIE[1]}>:\n{quoted}"), days=1)
    assert len(cases(app)) == 2
    last = incoming(app)[-1]
    assert (last.case_id, last.kind) == (studie.id, "follow_up")


STANDARD_LETTER = (
    "Geachte mevrouw, geachte heer,\n\nUit onze gegevens blijkt dat uw kind niet langer voldoet aan de "
    "voorwaarden voor het schooltoeslag van het Groeipakket. Wij hebben geen bewijs van inschrijving ontvangen "
    "voor het schooljaar 2026-2027. Daarom zetten wij de uitbetaling stop vanaf 1 januari 2027. Indien u niet "
    "akkoord gaat met deze beslissing, kan u binnen de drie maanden bezwaar indienen via het formulier op onze "
    "website.\n\nMet vriendelijke groeten,\nAgentschap Opgroeien - Afdeling Groeipakket\n")


def test_citizens_forwarding_the_same_agency_letter_are_not_duplicates(app, dovecot):
    """Two citizens forward the agency's same standard letter, each with a note of their own:
    two cases, neither a possible_duplicate of the other."""
    for who, note in ((("An Janssens", "an.janssens@example.be"), "Beste, zie hieronder. Mijn zoon zit wel "
                       "degelijk op school. An"),
                      (("Koen Claes", "koen.claes@telenet.be"), "Hallo, wat moet ik hiermee? Mijn dochter "
                       "is ingeschreven. Koen")):
        poll(app, dovecot, mail(who, "Fwd: Stopzetting schooltoeslag Groeipakket",
                                f"{note}\n\n---------- Forwarded message ---------\nFrom: Groeipakket "
                                f"<info@opgroeien.be>\nDate: Mon, 16 Nov 2026\nSubject: Stopzetting "
                                f"schooltoeslag Groeipakket\nTo: <{who[1]}>\n\n{STANDARD_LETTER}"), days=2)
    first, second = cases(app)
    assert "possible_duplicate" not in second.flags and second.duplicate_of_id is None


def _form(name: str, email: str, agency: str, text: str) -> bytes:
    body = (f"Naam: {name}\nAdres: Kerkstraat 5, 9000 Gent\nTelefoon: 0470 12 34 56\nE-mailadres: {email}\n"
            f"Betrokken dienst: {agency}\nHebt u al contact gehad met de dienst: ja\n\nUw klacht:\n{text}\n\n"
            "Dit bericht werd verstuurd via het klachtenformulier op www.vlaamseombudsdienst.be.\n"
            "U ontvangt binnen de vijf werkdagen een ontvangstbevestiging.\n"
            "Toestemming verwerking persoonsgegevens: ja\nIk verklaar dat deze gegevens juist zijn: ja\n")
    return mail(("Klachtenformulier", FORM), f"Klachtenformulier: {agency}", body,
                headers=f"Reply-To: {name} <{email}>\r\n")


def test_web_form_complaints_of_different_citizens_are_not_duplicates(app, dovecot):
    """Short complaints of different citizens through the web form, about different agencies
    and about the same one, share the form's text: none is a possible_duplicate."""
    for name, email, agency, text in (
            ("An Janssens", "an.j@example.be", "De Lijn", "De bus 58 rijdt niet meer langs onze halte."),
            ("Marie Dubois", "marie.d@example.be", "VDAB", "Mijn opleiding werd zonder reden stopgezet."),
            ("Wim Aerts", "wim.a@example.be", "De Lijn", "Tram 4 heeft elke ochtend een half uur vertraging.")):
        poll(app, dovecot, _form(name, email, agency, text), days=1)
    assert [c.citizen_email for c in cases(app)] == ["an.j@example.be", "marie.d@example.be", "wim.a@example.be"]
    assert not any("possible_duplicate" in c.flags or c.duplicate_of_id for c in cases(app))


def test_web_form_complaints_without_an_address_are_separate_cases_for_staff(app, dovecot, smtp_sink):
    """Citizens who leave the form's e-mail field empty (no Reply-To): each complaint is its own
    case under the name filled in, with no address and flagged for staff to phone or write;
    the form robot's address is nobody's identity, and nothing is mailed to it."""
    for name, text in (("An Janssens", "Mijn groeipakket voor mijn zoon werd stopgezet. Dat klopt niet."),
                       ("Koen Claes", "Het groeipakket van mijn dochter is stopgezet, zogezegd omdat zij niet "
                                      "ingeschreven is in een school. Fout.")):
        raw = _form(name, "", "Agentschap Opgroeien", text).replace(f"Reply-To: {name} <>\r\n".encode(), b"")
        poll(app, dovecot, raw, days=1)
    an, koen = cases(app)
    assert [(c.citizen_name, c.citizen_email) for c in (an, koen)] == [("An Janssens", ""), ("Koen Claes", "")]
    assert "needs_triage" in an.flags and "needs_triage" in koen.flags
    assert koen.duplicate_of_id is None and "possible_duplicate" not in koen.flags
    with app.sessions() as session:
        assert session.execute(select(Outbox.recipient)).scalars().all() == []
    assert smtp_sink.messages == []


def test_same_web_form_complaint_from_a_second_address_is_a_possible_duplicate(app, dovecot):
    """The same complaint through the web form from two addresses is still flagged possible_duplicate."""
    poll(app, dovecot, _form("Sofie Maes", SOFIE[1], "Departement Onderwijs", STUDIE))
    poll(app, dovecot, _form("Sofie Maes", "sofie.maes73@gmail.example", "Departement Onderwijs", STUDIE), days=2)
    first, second = cases(app)
    assert "possible_duplicate" in second.flags and second.duplicate_of_id == first.id


def test_similar_complaint_from_another_address_of_the_same_name_is_flagged_for_triage(app, dovecot):
    """The same citizen (same name) writes from her work address, past the duplicate window, a
    complaint much like her open case: a new case flagged needs_triage that names that case."""
    home, work = ("An Janssens", "an.janssens@example.be"), ("An Janssens", "an.janssens@acme-corp.be")
    poll(app, dovecot, mail(home, "Groeipakket stopgezet", "Geachte,\n\nIk ontving van het Agentschap Opgroeien "
                            "een brief dat mijn groeipakket voor mijn zoon vanaf januari wordt stopgezet omdat hij "
                            "niet meer ingeschreven zou zijn in een school. Dat klopt niet: hij zit in het vijfde "
                            "jaar in het Sint-Lievenscollege.\n\nMet vriendelijke groeten,\nAn Janssens"))
    poll(app, dovecot, mail(work, "Groeipakket zoon", "Beste,\n\nHet Agentschap Opgroeien schreef mij dat het "
                            "groeipakket van mijn zoon stopt vanaf januari, omdat hij niet ingeschreven zou zijn. "
                            "Hij volgt wel degelijk les in het vijfde jaar van het Sint-Lievenscollege. Kunt u "
                            "helpen?\n\nAn Janssens"), days=45)
    first, second = cases(app)
    assert second.citizen_email == work[1] and "needs_triage" in second.flags
    [candidate] = incoming(app)[-1].details["match"]["candidates"]
    assert candidate["detail"].startswith(f"{first.ref}: same name, other address")
