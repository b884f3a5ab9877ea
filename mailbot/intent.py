"""What the citizen asks or tells us, in nl/fr/en/de: status requests, contact preference,
anonymity, first-line contact, the agency's solution. Pure; phrase lists, no model.

Phrases are matched on the new text only (not on quoted history), case- and
accent-insensitively, so "Où en est" and "ou en est" both count.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from mailbot.model import Facts

_STATUS = (
    r"stand van zaken", r"hoe ?ver staat", r"hoever (is|zit)", r"stand van (mijn|het|ons) (dossier|klacht)",
    r"waar staat (mijn|het|ons) (dossier|klacht)", r"(al|reeds) nieuws (over|in|omtrent)",
    r"nog (steeds )?(niets|geen antwoord|geen nieuws) (gehoord|ontvangen)", r"wat is de status",
    r"ou en est", r"etat d'?avancement", r"(etat|suivi) de (mon|ma|notre) (dossier|plainte)",
    r"des nouvelles (de|concernant) (mon|ma|notre) (dossier|plainte)", r"ou en sommes[- ]nous",
    r"status of (my|our|the) (complaint|case|file)", r"any (update|news|progress) (on|about|regarding)",
    r"what is the status", r"(update|news) on my (complaint|case)",
    r"stand der dinge", r"wie ist der (aktuelle )?stand", r"sachstand", r"bearbeitungsstand",
    r"gibt es (schon )?neuigkeiten",
)
_PREFERS_PHONE = (
    r"\bbel (mij|me)\b", r"(mij|me) (op)?bellen", r"liefst telefonisch", r"telefonisch (contact|bereikbaar)",
    r"(contacteer|bereik) (mij|me) (liefst )?(telefonisch|per telefoon|via gsm)", r"\bbelt u (mij|me)\b",
    r"appelez[- ]moi", r"me (telephoner|rappeler|contacter par telephone)", r"par telephone de preference",
    r"de preference par telephone", r"joignable (par|au) telephone",
    r"\bcall me\b", r"\bphone me\b", r"(contact|reach) me by (phone|telephone)", r"prefer (a )?(phone|telephone)",
    r"rufen sie mich( bitte)? an", r"telefonisch (erreichbar|kontaktieren)", r"lieber telefonisch",
)
_ANONYMITY = (
    r"anoniem", r"(mijn )?(naam|identiteit|gegevens) niet (door|mee)?(geven|gedeeld|delen|bekend)",
    r"niet (weten|zeggen) dat ik", r"vertrouwelijk behandel",
    r"anonyme", r"anonymat", r"(ne pas|sans) (communiquer|divulguer|donner|reveler) (mon nom|mon identite|mes coordonnees)",
    r"anonymous(ly)?", r"(not|don'?t|do not) (disclose|reveal|share|give) my (name|identity|details)",
    r"keep my (name|identity) (confidential|secret)",
    r"\banonym\b", r"meinen namen nicht", r"identitat nicht", r"vertraulich behandel",
)
_FIRST_LINE = (
    r"(al|reeds|eerst) (een )?klacht (ingediend|neergelegd|gestuurd) bij", r"(al|reeds) (contact|klacht) .{0,40}(opgenomen|ingediend)",
    r"(al|reeds|eerst) (bij|naar) .{0,40}(geklaagd|gemaild|geschreven|gebeld)", r"klachtendienst .{0,60}(geantwoord|reactie|antwoord)",
    r"deja (porte plainte|introduit une plainte|depose une plainte|contacte|ecrit a)", r"service (des plaintes|plaintes) .{0,60}repondu",
    r"already (complained|contacted|written|filed a complaint)", r"complaints? (department|service) .{0,60}(replied|answered|responded)",
    r"(bereits|schon) (beschwert|kontaktiert|eine beschwerde eingereicht|geschrieben)",
    # "I wrote to them twice, no answer": contact was made even without the word "klacht".
    r"\b(hen|hun|hem|haar|de dienst|het agentschap) (al|reeds) .{0,30}(gemaild|geschreven|gebeld|gecontacteerd|aangeschreven)",
    r"(geen|nooit) (antwoord|reactie) (gekregen|ontvangen)", r"\bzonder (enig )?(antwoord|reactie)\b",
    r"\b(les|leur|l'administration) (ai )?deja .{0,30}(ecrit|contacte|telephone|relance)",
    r"(sans|aucune) reponse\b", r"(never|no) (reply|response|answer) (from|received)",
    r"\bkeine (antwort|reaktion) (erhalten|bekommen)",
)
_OFFERED = (
    r"(stelt|stellen|bieden|biedt) .{0,40}(voor|aan)\b.{0,40}(oplossing|terugbetaling|compensatie|regeling)",
    r"(bieden|biedt|stellen|stelt) (u |je )?.{0,40}(oplossing|terugbetaling|compensatie|regeling|schadevergoeding).{0,20}\b(aan|voor)\b",
    r"(oplossing|voorstel|terugbetaling|compensatie) (aangeboden|voorgesteld)", r"wij stellen (u )?voor",
    r"(nous vous proposons|propose une solution|proposition de (remboursement|solution))",
    r"(we|we would like to) (offer|propose)", r"offered (a|to) (solution|refund|compensation)",
    r"(bieten|schlagen) (ihnen )?.{0,30}(an|vor)\b.{0,30}(losung|erstattung)", r"losung angeboten",
)
_ACCEPTED = (
    r"(ik|wij|we) (ga|gaan) akkoord met (het|dit|hun|dat) (voorstel|oplossing)", r"(aanvaard|accepteer)(en)? (het|dit|hun) (voorstel|oplossing)",
    r"(j'?accepte|nous acceptons) (la|leur|cette) (proposition|solution)", r"je suis d'?accord avec (la|leur) (proposition|solution)",
    r"(i|we) (accept|agree to|agree with) (the|their|this) (offer|proposal|solution)",
    r"(ich nehme|wir nehmen) (das|den|ihr) (angebot|vorschlag) an", r"(akzeptiere|akzeptieren) (das|den) (angebot|vorschlag|losung)",
)
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_EMAIL_CUE = re.compile(
    r"(e-?mail|adres|mail mij|mail me|schrijf|schrijven|mailen|bereikbaar|contacteer|contacter|écrire|ecrire|adresse|courriel|ecrivez|address|write to|reply to|schreiben|antwort)", re.I
)


def _compile(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in phrases))


_PATTERNS = {name: _compile(p) for name, p in (
    ("status", _STATUS), ("phone", _PREFERS_PHONE), ("anon", _ANONYMITY),
    ("first", _FIRST_LINE), ("offered", _OFFERED), ("accepted", _ACCEPTED),
)}


_COMBINING = re.compile(r"[\u0300-\u036f]")
# Cheap candidates first: phonenumbers' own matcher scans every digit and costs ~2 ms a mail.
_PHONE_CANDIDATE = re.compile(r"(?<![\w.,/-])(?:\+|00)?\(?\d[\d ()./-]{6,17}\d(?![\w/-]|[.,]\d)")
MAX_FACT_TEXT = 20_000  # characters; a citizen's own words are far shorter than that


def fold(text: str) -> str:
    """Lower-case, accents removed, apostrophes and spaces normalised: what patterns see."""
    text = text.lower().replace("\u2019", "'")
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(text.split())


def phone_numbers(text: str) -> tuple[str, ...]:
    """Valid phone numbers in the text (Belgian notation by default), in E.164, in order."""
    found: list[str] = []
    for candidate in _PHONE_CANDIDATE.findall(text[:MAX_FACT_TEXT]):
        if sum(ch.isdigit() for ch in candidate) < 8 or re.fullmatch(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}", candidate.strip()):
            continue  # too short for a Belgian number, or a date
        try:
            number = phonenumbers.parse(candidate, "BE")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 not in found:
                found.append(e164)
    return tuple(found)


def alternative_email(text: str, known: frozenset[str]) -> str | None:
    """An address the writer asks us to use: not a known one, on a line that talks about mail."""
    for line in text.splitlines():
        if line.lstrip().startswith(">") or not _EMAIL_CUE.search(line):
            continue
        for candidate in _EMAIL.findall(line):
            address = candidate.strip(".'").lower()
            if address not in known:
                return address
    return None


def detect_facts(text: str, *, known_addresses: frozenset[str] = frozenset(), forwarded_text: str = "") -> Facts:
    """The facts stated in `text` (the new text); the agency's offer may sit in `forwarded_text`."""
    text = text[:MAX_FACT_TEXT]
    folded = fold(text)
    phones = phone_numbers(text)
    return Facts(
        status_request=bool(_PATTERNS["status"].search(folded)),
        phone_numbers=phones,
        prefers_phone=bool(_PATTERNS["phone"].search(folded)),
        alternative_email=alternative_email(text, known_addresses),
        anonymity_requested=bool(_PATTERNS["anon"].search(folded)),
        first_line_contact=bool(_PATTERNS["first"].search(folded)),
        solution_offered=bool(_PATTERNS["offered"].search(folded + " " + fold(forwarded_text[:MAX_FACT_TEXT]))),
        solution_accepted=bool(_PATTERNS["accepted"].search(folded)),
    )
