"""The demo's mailbag: about twenty realistic complaints in Dutch and French.

Round 1 is what sits in the inbox on a Monday morning; round 2 arrives after the robot has
answered, so it can quote the case references (status request, forwarded agency letters, a
follow-up, a resubmitted complaint). All people and addresses are fictional; the agencies and
ombudsman services are the ones in `rules/services.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from datetime import datetime, timedelta, timezone

OFFICE = "klachten@vlaamseombudsdienst.be"


@dataclass(frozen=True)
class ScenarioMail:
    key: str
    round: int
    shows: str   # the feature this mail demonstrates, for the result table
    raw: bytes


def _mail(sender: str, subject: str, body: str, *, to: str = OFFICE, cc: str = "",
          headers: str = "", minutes_ago: int = 60, content_type: str = "text/plain; charset=utf-8") -> bytes:
    date = format_datetime(datetime.now(timezone.utc) - timedelta(minutes=minutes_ago))
    domain = sender.rsplit("@", 1)[-1].rstrip(">")
    lines = [f"From: {sender}", f"To: {to}", *([f"Cc: {cc}"] if cc else []), f"Subject: {subject}",
             f"Date: {date}", f"Message-ID: {make_msgid(domain=domain)}", "MIME-Version: 1.0",
             f"Content-Type: {content_type}", "Content-Transfer-Encoding: 8bit"]
    head = "\r\n".join(lines) + "\r\n" + headers
    return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


SOFIE = "Sofie Maes <sofie.maes@example.be>"
TOM = "Tom Wouters <tom.wouters@example.be>"
MARIE = "Marie Dubois <marie.dubois@example.com>"

_ROUND_1: list[tuple[str, str, Callable[[], bytes]]] = [
    ("studietoelage", "new complaint → investigation, acknowledgment names the investigator", lambda: _mail(
        SOFIE, "Klacht over mijn studietoelage",
        "Geachte,\n\nIn maart heb ik een studietoelage aangevraagd bij de afdeling Studietoelagen van het "
        "Departement Onderwijs. Na vier maanden heb ik nog steeds geen beslissing. Ik heb hen al twee keer "
        "gemaild, zonder antwoord.\n\nMet vriendelijke groeten,\nSofie Maes", minutes_ago=300)),
    ("delijn_cc", "agency in Cc → reminder to talk only to us, flag agency_in_cc", lambda: _mail(
        TOM, "Bus 58 rijdt niet meer langs onze halte",
        "Beste,\n\nSinds september stopt bus 58 van De Lijn niet meer aan de halte Kerkstraat in Mariakerke. "
        "Ik heb al een klacht ingediend bij de klantendienst van De Lijn, maar hun antwoord gaat niet over "
        "mijn vraag. Ik zet hen in kopie.\n\nTom Wouters", cc="Klantendienst De Lijn <klantendienst@delijn.be>",
        minutes_ago=290)),
    ("vdab_fr", "French complaint → investigation, answered in French", lambda: _mail(
        MARIE, "Plainte concernant le VDAB",
        "Madame, Monsieur,\n\nDepuis janvier, le VDAB a suspendu mon accompagnement vers l'emploi sans "
        "explication. J'ai déjà écrit au VDAB trois fois, sans réponse. Je ne sais plus à qui m'adresser.\n\n"
        "Veuillez agréer mes salutations distinguées,\nMarie Dubois", minutes_ago=280)),
    ("federal_tax", "federal matter → referred to the Federal Ombudsman (quick service)", lambda: _mail(
        "Koen Jacobs <koen.jacobs@example.be>", "Fout in mijn aanslagbiljet personenbelasting",
        "Goedemiddag,\n\nMijn aanslagbiljet personenbelasting voor aanslagjaar 2025 houdt geen rekening met "
        "mijn kinderopvangkosten. Kunnen jullie dit laten rechtzetten?\n\nKoen Jacobs", minutes_ago=270)),
    ("federal_fr", "federal matter in French → referred, answered in French", lambda: _mail(
        "Youssef El Amrani <y.elamrani@example.com>", "Mon titre de séjour",
        "Bonjour,\n\nL'Office des étrangers ne répond pas à ma demande de renouvellement de titre de séjour "
        "depuis six mois. Que puis-je faire ?\n\nCordialement,\nYoussef El Amrani", minutes_ago=260)),
    ("agency_first", "agency never contacted → referred to the agency first", lambda: _mail(
        "Lotte Claes <lotte.claes@example.be>", "Huurpremie stopgezet",
        "Hallo,\n\nWonen in Vlaanderen heeft mijn huurpremie stopgezet en ik begrijp niet waarom. "
        "Kunnen jullie dat uitzoeken?\n\nLotte Claes", minutes_ago=250)),
    ("cc_federal", "also sent to the Federal Ombudsman (Cc) → multi_addressed, office coordinates", lambda: _mail(
        "Pieter De Smet <pieter.desmet@example.be>", "Klacht VDAB opleiding geweigerd",
        "Geachte,\n\nDe VDAB weigert mij een opleiding tot lasser, hoewel mijn bemiddelaar die had "
        "goedgekeurd. Ik heb al contact opgenomen met de klachtendienst, zonder reactie.\n\nPieter De Smet",
        cc="Federale Ombudsman <contact@federaalombudsman.be>", minutes_ago=240)),
    ("to_kinderrechten", "addressed to the Kinderrechtencommissariaat too → multi_addressed", lambda: _mail(
        "Nadia Benali <nadia.benali@example.be>", "Geen plaats in de kinderopvang",
        "Beste,\n\nOpgroeien heeft onze aanvraag voor kinderopvang voor onze zoon geweigerd. Ik heb hen al "
        "gemaild maar kreeg geen antwoord.\n\nNadia Benali",
        to=f"{OFFICE}, Klachtenlijn Kinderrechten <klachtenlijn@kinderrechten.be>", minutes_ago=230)),
    ("neighbours", "outside our remit → direct answer with where to go", lambda: _mail(
        "Jef Hermans <jef.hermans@example.be>", "Burenruzie over de haag",
        "Dag,\n\nIk heb al maanden een burenruzie over de haag tussen onze tuinen. Mijn buurman wil niet "
        "snoeien. Wat kan ik doen?\n\nJef", minutes_ago=220)),
    ("empty", "empty complaint → ask for more information", lambda: _mail(
        "Ahmed Yilmaz <ahmed.yilmaz@example.be>", "klacht", "", minutes_ago=210)),
    ("anonymous", "anonymity requested → flag for staff", lambda: _mail(
        "Ine Verhoeven <ine.verhoeven@example.be>", "Groeipakket te laat uitbetaald",
        "Geachte,\n\nMijn groeipakket wordt al drie maanden te laat uitbetaald. Ik heb Opgroeien al "
        "gemaild zonder antwoord. Ik wil graag anoniem blijven: Opgroeien mag mijn naam niet weten.\n\nIne Verhoeven", minutes_ago=200)),
    ("phone", "prefers phone → phone number recorded", lambda: _mail(
        "Luc Peeters <luc.peeters@example.be>", "Gevaarlijk fietspad N9",
        "Goedendag,\n\nHet fietspad langs de N9 in Aalter ligt al een jaar vol putten. Ik heb AWV al "
        "gemaild zonder antwoord. Bel mij liefst op 0470 12 34 56.\n\nLuc Peeters", minutes_ago=190)),
    ("urgent", "eviction → urgent priority, intake desk notified", lambda: _mail(
        "Sarah Vermeulen <sarah.vermeulen@example.be>", "Dringend: uithuiszetting sociale huurwoning",
        "Beste,\n\nIk kreeg vandaag een brief over mijn uithuiszetting uit mijn sociale huurwoning, terwijl "
        "ik mijn huur altijd betaald heb. Ik heb de maatschappij al gebeld, zonder antwoord.\n\nSarah "
        "Vermeulen", minutes_ago=180)),
    ("out_of_office", "out-of-office reply → ignored, never answered", lambda: _mail(
        "Els Janssens <els.janssens@example.be>", "Automatisch antwoord: Uw klacht",
        "Ik ben afwezig tot maandag. Uw mail wordt niet doorgestuurd.",
        headers="Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\n", minutes_ago=170)),
    ("bounce", "bounce (DSN) → ignored, never answered", lambda: _bounce()),
    ("oversize", "oversize mail (over limits.max_message_bytes) → quarantined, sender told", lambda: _mail(
        "Scanner <scanner@example.be>", "Scan van mijn dossier",
        "Zie bijlage.\n\n" + ("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K" * 1500),
        minutes_ago=160)),
]

_ROUND_2: list[tuple[str, str, Callable[[Mapping[str, str]], bytes]]] = [
    ("status", "status request with [REF] → automatic status reply to the address on file", lambda refs: _mail(
        SOFIE, f"Re: [{refs['studietoelage']}] Klacht over mijn studietoelage",
        "Beste,\n\nWat is de stand van zaken van mijn dossier?\n\nSofie Maes", minutes_ago=30)),
    ("forward_delijn", "Outlook forward of De Lijn's letter, no reference → threaded (agency + citizen)", lambda refs: _mail(
        TOM, "FW: Uw melding over lijn 58",
        "Beste,\n\nHieronder het antwoord dat ik van De Lijn kreeg. Het lost niets op.\n\nTom Wouters\n\n"
        "________________________________\n"
        "Van: Klantendienst De Lijn <klantendienst@delijn.be>\n"
        "Verzonden: dinsdag 3 november 2026 10:12\n"
        "Aan: Tom Wouters <tom.wouters@example.be>\n"
        "Onderwerp: Uw melding over lijn 58\n\n"
        "Geachte heer Wouters,\n\nDank voor uw melding DL-2026117. De halte Kerkstraat wordt niet meer "
        "bediend wegens een nieuwe dienstregeling.\n\nMet vriendelijke groeten,\nKlantendienst De Lijn",
        minutes_ago=25)),
    ("forward_vdab_fr", "Gmail forward (French) of the VDAB's letter → threaded into the case", lambda refs: _mail(
        MARIE, f"Fwd: Votre dossier d'accompagnement [{refs['vdab_fr']}]",
        "Voici la réponse que j'ai enfin reçue du VDAB.\n\nMarie\n\n"
        "---------- Message transféré ---------\n"
        "De : VDAB <info@vdab.be>\n"
        "Date: lun. 2 nov. 2026 à 14:03\n"
        "Subject: Votre dossier d'accompagnement\n"
        "To: <marie.dubois@example.com>\n\n\n"
        "Madame,\n\nVotre accompagnement a été suspendu parce que nous n'avons pas reçu votre CV.\n\n"
        "Cordialement,\nVDAB", minutes_ago=20)),
    ("followup", "citizen's follow-up with [REF] → threaded, no new case", lambda refs: _mail(
        "Luc Peeters <luc.peeters@example.be>", f"Re: [{refs['phone']}] Gevaarlijk fietspad N9",
        "Beste,\n\nIntussen is er gisteren opnieuw een fietser gevallen op dezelfde plek.\n\nLuc Peeters",
        minutes_ago=15)),
    ("resubmitted", "the same complaint sent again → possible_duplicate of the first case", lambda refs: _mail(
        MARIE, "Plainte concernant le VDAB",
        "Madame, Monsieur,\n\nDepuis janvier, le VDAB a suspendu mon accompagnement vers l'emploi sans "
        "explication. J'ai déjà écrit au VDAB trois fois, sans réponse. Je ne sais plus à qui m'adresser.\n\n"
        "Veuillez agréer mes salutations distinguées,\nMarie Dubois", minutes_ago=10)),
    ("status_stranger", "status request quoting a reference from an unknown address → neutral answer, flagged for staff",
     lambda refs: _mail(
         "Info <info@example.org>", f"Stand van zaken {refs['urgent']}",
         "Goedendag,\n\nWat is de stand van zaken van dossier " + refs["urgent"] + "?\n\nGroeten", minutes_ago=5)),
]


def _bounce() -> bytes:
    date = format_datetime(datetime.now(timezone.utc) - timedelta(minutes=150))
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {OFFICE}\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: {date}\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.net')}\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="rep"\r\n\r\n'
        "--rep\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Your message could not be delivered to <oud.adres@example.net>: user unknown.\r\n\r\n"
        "--rep\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; oud.adres@example.net\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n\r\n--rep--\r\n"
    ).encode("ascii")


def round_one() -> list[ScenarioMail]:
    """The mails waiting in the inbox when the robot starts."""
    return [ScenarioMail(key, 1, shows, build()) for key, shows, build in _ROUND_1]


def round_two(refs: Mapping[str, str], first: list[ScenarioMail]) -> list[ScenarioMail]:
    """Mails that quote the case references of round one (`refs`: scenario key → case ref).

    Also a second copy of one round-one mail (same Message-ID, as when the office receives it
    through two of its addresses): it must be recorded once, not twice.
    """
    mails = [ScenarioMail(key, 2, shows, build(refs)) for key, shows, build in _ROUND_2]
    original = next(m for m in first if m.key == "agency_first")
    copy = ScenarioMail("second_copy", 2, "the same mail delivered twice → recorded once", original.raw)
    return [*mails[:-2], copy, *mails[-2:]]


# Round-one senders whose case reference round two needs.
REF_KEYS = {"studietoelage": "sofie.maes@example.be", "delijn_cc": "tom.wouters@example.be",
            "vdab_fr": "marie.dubois@example.com", "phone": "luc.peeters@example.be",
            "urgent": "sarah.vermeulen@example.be"}

# An oversize mail is only oversize under the demo's lower limit.
DEMO_MAX_MESSAGE_BYTES = 64 * 1024
