"""Facts from the text: status, phone, e-mail, anonymity, first-line contact, solutions."""

from __future__ import annotations

import pytest

from mailbot.intent import detect_facts, phone_numbers


@pytest.mark.parametrize("text", [
    "Wat is de stand van zaken?", "Hoe ver staat mijn dossier?", "Où en est mon dossier ?",
    "Quel est l'état d'avancement de ma plainte ?", "What is the status of my complaint?",
    "Wie ist der Stand meiner Beschwerde?",
])
def test_status_requests_in_four_languages(text: str) -> None:
    """Status questions in nl/fr/en/de are recognised."""
    assert detect_facts(text).status_request


def test_complaint_is_not_a_status_request() -> None:
    """A plain complaint does not ask for the status."""
    assert not detect_facts("Ik wil klagen over de gemeente die mijn aanvraag weigerde.").status_request


@pytest.mark.parametrize(("text", "number"), [
    ("bel 0470 12 34 56", "+32470123456"), ("gsm: 0470/12.34.56", "+32470123456"),
    ("+32 470 12 34 56", "+32470123456"), ("0032 (0)470 123456", "+32470123456"),
    ("tel. 02/552.44.44", "+3225524444"), ("09 234 45 67", "+3292344567"),
    ("+32(0)9 234 56 78", "+3292345678"), ("053-12 34 56", "+3253123456"),
])
def test_belgian_phone_numbers_in_common_notations(text: str, number: str) -> None:
    """Belgian numbers are found in spaced, slashed, dotted and international notations."""
    assert phone_numbers(text) == (number,)


def test_reference_and_amounts_are_not_phone_numbers() -> None:
    """Case references, dates and amounts are not taken for phone numbers."""
    assert phone_numbers("Dossier VO-2026-000123 van 12/03/2025, bedrag 1.234,56 EUR") == ()


@pytest.mark.parametrize("text", ["Bel mij aub", "Liefst telefonisch contact", "Appelez-moi svp", "Please call me", "Rufen Sie mich bitte an"])
def test_phone_preference(text: str) -> None:
    """'bel mij', 'liefst telefonisch' and their fr/en/de forms mean: prefers phone."""
    assert detect_facts(text).prefers_phone


def test_alternative_email_excludes_known_addresses() -> None:
    """A new address on a line about e-mail is the alternative; known ones are ignored."""
    facts = detect_facts("Mail mij voortaan op Nieuw@Example.org aub", known_addresses=frozenset({"jan@x.be"}))
    assert facts.alternative_email == "nieuw@example.org"
    assert detect_facts("mijn adres: jan@x.be", known_addresses=frozenset({"jan@x.be"})).alternative_email is None


@pytest.mark.parametrize("text", [
    "Ik wil anoniem blijven.", "Geef mijn naam niet door aan de gemeente, mijn naam niet doorgeven",
    "Merci de ne pas communiquer mon nom.", "Please do not disclose my identity.", "Bitte meinen Namen nicht nennen.",
])
def test_anonymity_requests(text: str) -> None:
    """Asking that the identity stays hidden is detected in all four languages."""
    assert detect_facts(text).anonymity_requested


@pytest.mark.parametrize("text", [
    "Ik heb al een klacht ingediend bij de stad.", "J'ai déjà porté plainte auprès de la commune.",
    "I already complained to the agency.", "Ich habe mich bereits beschwert.",
])
def test_first_line_contact(text: str) -> None:
    """A statement that the agency was contacted first is detected."""
    assert detect_facts(text).first_line_contact


def test_solution_offered_in_forwarded_text_and_accepted_in_new_text() -> None:
    """The agency's offer may be in the forward; the citizen's acceptance in the new text."""
    facts = detect_facts("Ik ga akkoord met het voorstel.", forwarded_text="Wij bieden u een terugbetaling aan.")
    assert facts.solution_offered and facts.solution_accepted


@pytest.mark.parametrize("text", [
    "Ik heb hen al twee keer gemaild zonder antwoord.",
    "Ik heb nooit antwoord gekregen op mijn brief aan de dienst.",
    "Je leur ai déjà écrit deux fois, sans réponse.",
    "I wrote to them but never received a reply from the agency: no reply from them.",
    "Ich habe keine Antwort erhalten.",
])
def test_contact_without_the_word_complaint_counts_as_first_line(text):
    """Having written to the agency without an answer is first-line contact in every language."""
    from mailbot.intent import detect_facts

    assert detect_facts(text).first_line_contact


def test_phone_number_before_a_comma_and_write_to_cue():
    """A number followed by a comma is read whole; "schrijven naar <address>" is another address to use."""
    from mailbot.intent import detect_facts

    facts = detect_facts("Bel mij op 0470 12 34 56, of schrijven naar an@example.org graag.")
    assert facts.phone_numbers == ("+32470123456",)
    assert facts.alternative_email == "an@example.org"
    assert detect_facts("Het bedrag was 1.250,50 euro.").phone_numbers == ()


# -- audit findings H2, H3, M3, M6, M7, L2: common phrasings with words in between ----------------

_LONG_COMPLAINT = "Geachte, " + "Mijn premie werd zonder duidelijke motivering geweigerd en dat vind ik onterecht. " * 8


@pytest.mark.parametrize("text", [
    "Ik heb Opgroeien al drie keer gemaild en gebeld maar kreeg nooit een antwoord.",
    "Ik heb de VDAB al verschillende keren gecontacteerd.",
    "Ik heb mijn probleem al gemeld aan De Lijn.",
    "Daarom heb ik de dienst al twee keer opgebeld.",
    "I already wrote to them several times.",
    "I contacted the agency twice but they did not reply.",
    "Ich habe mich bereits mehrfach bei ihnen beschwert.",
    "Ich habe der Behörde schon zweimal geschrieben.",
    "J'ai déjà contacté l'administration plusieurs fois.",
    "J'ai déjà écrit plusieurs fois au service.",
    "J'ai contacté le service trois fois, sans réponse.",
])
def test_first_line_contact_with_words_in_between(text: str) -> None:
    """An object and adverbs between "ik heb", "al" and "gemaild" (and the fr/en/de forms) still mean contact."""
    assert detect_facts(text).first_line_contact


@pytest.mark.parametrize("text", [
    "Ik heb de dienst nog niet gecontacteerd.",
    "Ik heb al een jaar geen contact opgenomen met hen.",
    "Ik heb al drie jaar recht op een premie.",
    "I have not contacted the agency yet.",
    "I contacted a lawyer.",
    "Ich habe die Behörde noch nicht kontaktiert.",
    "Ich habe schon lange nicht mehr geschrieben.",
    "Je n'ai pas encore contacté l'administration.",
])
def test_no_first_line_contact_when_negated_or_unrelated(text: str) -> None:
    """A negation inside the gap, or no contact verb, is not first-line contact."""
    assert not detect_facts(text).first_line_contact


@pytest.mark.parametrize("text", [
    "Hoe staat het met mijn klacht over het groeipakket?",
    "Kunt u mij laten weten hoe het met mijn dossier gaat?",
    "Is er al nieuws?", "Heeft u al nieuws?",
    "Zijn er al ontwikkelingen in mijn dossier?",
    "Graag had ik een update gekregen over mijn dossier.",
    "Avez-vous du nouveau concernant mon dossier ?",
    "Could you give me an update?", "Any news?",
    "Gibt es etwas Neues zu meiner Beschwerde?",
    "ich wollte mich nach dem aktuellen Stand meiner Beschwerde erkundigen.",
    _LONG_COMPLAINT + "Hoe staat het met mijn klacht?",
])
def test_common_status_questions(text: str) -> None:
    """Status questions in everyday wording are recognised; those naming the case also in a long mail."""
    assert detect_facts(text).status_request


@pytest.mark.parametrize("text", [
    "Ik zag op het nieuws dat de premie wordt afgeschaft en nu krijg ik niets.",
    "Na de update van de software werkt mijn account niet meer.",
    "Ik wil graag een update van de software krijgen.",
    "Ik heb een update gekregen van de app en nu kan ik niet meer inloggen.",
    "Ik vroeg de VDAB hoe het met mijn dossier stond, maar niemand wist het.",
    _LONG_COMPLAINT + "Ik belde de dienst en vroeg: is er al nieuws? Ze zeiden nee.",
    "Die Behörde hat mich nicht über den Stand meiner Akte informiert.",
    "Die Behörde hat mir nichts Neues zu meiner Beschwerde gesagt.",
])
def test_news_and_updates_in_a_complaint_are_not_status_requests(text: str) -> None:
    """"het nieuws", a software update, a past question to the agency, or a general news question
    in a long complaint do not make a status request."""
    assert not detect_facts(text).status_request


@pytest.mark.parametrize("text", [
    "Mijn naam mag niet doorgegeven worden aan de gemeente, ik ben bang voor represailles.",
    "Ik wil niet dat de dienst weet dat ik deze klacht indien.",
    "Gelieve mijn naam niet te vermelden tegenover Wonen in Vlaanderen.",
    "Ik wens anoniem te blijven tegenover de huisvestingsmaatschappij.",
    "Je ne souhaite pas que mon nom soit communiqué à l'administration.",
    "Merci de ne pas transmettre mon identité au service concerné.",
    "Je souhaite rester anonyme.",
    "Please do not tell the agency my name; I fear retaliation.",
    "I would like my identity to remain confidential.",
    "I wish to remain anonymous.",
    "Ich möchte nicht, dass mein Name an die Behörde weitergegeben wird.",
    "Ich möchte anonym bleiben.",
])
def test_anonymity_requests_in_everyday_wording(text: str) -> None:
    """Asking that the name is not passed on is detected with words between name, negation and verb."""
    assert detect_facts(text).anonymity_requested


@pytest.mark.parametrize("text", [
    "Volgens de dienst werd mijn dossier geblokkeerd na een anonieme melding van een buur.",
    "Ik wil klagen over een anonieme brief.",
    "De gemeente heeft mijn gegevens niet correct doorgegeven aan de VDAB.",
    "Mijn naam werd niet vermeld in de brief.",
    "Une plainte anonyme a été déposée contre moi.",
    "An anonymous tip led to the inspection.",
    "Ein anonymer Hinweis führte zur Kontrolle.",
])
def test_mentioning_anonymity_is_not_a_request(text: str) -> None:
    """An anonymous report by someone else, or data not passed on by the agency, is no request."""
    assert not detect_facts(text).anonymity_requested


@pytest.mark.parametrize("text", [
    "Gelieve mij te bellen op 0486 55 44 33, ik lees mijn mails zelden.",
    "Kunt u mij terugbellen?",
    "Je préfère être contactée par téléphone au 0475 11 22 33.",
    "Bitte rufen Sie mich unter 0479 12 34 56 an.",
    "Bitte rufen Sie mich unter 0479/12.34.56 an.",
])
def test_phone_preference_with_words_in_between(text: str) -> None:
    """"mij te bellen", "contactée par téléphone", "rufen Sie mich unter … an" mean: prefers phone."""
    assert detect_facts(text).prefers_phone


@pytest.mark.parametrize("text", [
    "De dienst beloofde mij te bellen maar deed het nooit.",
    "Gelieve mij niet te bellen, ik ben doof.",
    "Bitte rufen Sie mich nicht an, ich höre schlecht.",
])
def test_phone_not_preferred_when_reported_or_refused(text: str) -> None:
    """A promise the agency broke, or a request not to call, is no phone preference."""
    assert not detect_facts(text).prefers_phone


@pytest.mark.parametrize(("text", "address"), [
    ("Antwoord mij aub op mijn nieuwe adres katrien.peeters@outlook.be, dit adres verdwijnt.", "katrien.peeters@outlook.be"),
    ("Mijn nieuw e-mailadres is jan@nieuw.be.", "jan@nieuw.be"),
    ("Contacteer mij voortaan via jan@nieuw.be", "jan@nieuw.be"),
    ("Veuillez me répondre à l'adresse sophie.lambert@gmail.com.", "sophie.lambert@gmail.com"),
    ("Écrivez-moi à sophie@gmail.com", "sophie@gmail.com"),
    ("Please write to me at john@new.example", "john@new.example"),
    ("Please reply to john@new.example", "john@new.example"),
    ("Schreiben Sie mir an hans@neu.example", "hans@neu.example"),
    ("Meine neue E-Mail-Adresse: hans@neu.example", "hans@neu.example"),
])
def test_alternative_email_needs_a_request(text: str, address: str) -> None:
    """An address the citizen asks us to write to is the alternative e-mail address."""
    assert detect_facts(text).alternative_email == address


@pytest.mark.parametrize("text", [
    "Ik heb op 3 maart een e-mail gestuurd naar info@wonenvlaanderen.be maar nooit een antwoord gekregen.",
    "Ik mailde ook naar premies@vlaanderen.be maar dat leverde niets op.",
    "Mail mij gerust.\nIk schreef eerder naar info@dienst.be.",
    "J'ai écrit à info@admin.example sans réponse.",
    "I wrote to info@agency.example twice.",
    "Ich habe meine E-Mail an info@behoerde.example geschickt.",
    "> Mail mij op oud@example.be",
])
def test_a_mentioned_address_is_not_an_alternative(text: str) -> None:
    """An address the citizen only mentions (the agency's, quoted text) is not where to reply."""
    assert detect_facts(text).alternative_email is None


@pytest.mark.parametrize("text", [
    "Na onderzoek kunnen wij u een terugbetaling van 385 euro voorstellen.",
    "De Lijn heeft mij intussen een terugbetaling van 385 euro voorgesteld.",
    "Nous pouvons vous proposer un remboursement.",
    "We can offer you a refund.",
    "Wir können Ihnen eine Erstattung von 385 Euro anbieten.",
])
def test_solution_offered_with_words_in_between(text: str) -> None:
    """The agency's offer counts with the amount between "terugbetaling" and "voorstellen"."""
    assert detect_facts("", forwarded_text=text).solution_offered


@pytest.mark.parametrize("text", [
    "Ze hebben mij geen terugbetaling aangeboden.",
    "Ik vroeg een terugbetaling, maar die werd nooit voorgesteld.",
    "Een terugbetaling werd mij niet aangeboden.",
])
def test_no_solution_offered_when_negated(text: str) -> None:
    """"geen terugbetaling aangeboden" is the opposite of an offer."""
    assert not detect_facts(text).solution_offered


@pytest.mark.parametrize("text", [
    "ik heb al " * 12_000, "a" * 100_000, ("x" * 60 + "@") * 2_000, "rufen sie mich " * 8_000,
    "mijn naam mag " * 8_000, "0486/55.44.33." * 8_000,
])
def test_hostile_text_is_read_in_bounded_time(text: str) -> None:
    """Bounded gaps keep a 100,000-character text well under a second."""
    import time

    started = time.perf_counter()
    detect_facts(text)
    assert time.perf_counter() - started < 1.5


# -- audit C, item 5: "gemeld bij", reported to, and the web form's own question -------------------

@pytest.mark.parametrize("text", [
    "Ik heb dat gemeld bij De Lijn, dossiernummer bij hen is DL-2026417, maar ze antwoorden niet.",
    "Ik heb het probleem bij De Lijn gemeld.",
    "Daarom heb ik het gemeld aan de stad.",
    "Je l'ai signalé à De Lijn.",
    "J'ai signalé le problème à la commune.",
    "Nous l'avons signalé au service.",
    "I reported it to De Lijn.",
    "We have reported the problem to the agency.",
    "Ich habe es bei der Stadt gemeldet.",
    "Ich habe das der Behörde gemeldet.",
    "Naam: An Janssens\nHebt u al contact gehad met de dienst: ja\n\nUw klacht:\nDe bus stopt niet meer.",
    "Contact met de dienst: ja",
    "Avez-vous déjà contacté le service concerné : oui",
    "Have you contacted the agency? Yes",
    "Kontakt mit der Behörde: ja",
])
def test_reported_to_the_agency_and_form_answers_are_first_line_contact(text: str) -> None:
    """Reporting the problem to someone, and a web form's "contact with the agency: yes", mean contact."""
    assert detect_facts(text).first_line_contact


@pytest.mark.parametrize("text", [
    "Ik heb het nog niet gemeld.",
    "Ik heb het nog niet gemeld bij De Lijn.",
    "Ik heb dat nooit aan De Lijn gemeld.",
    "Je ne l'ai pas signalé à la commune.",
    "I have not reported it to the agency.",
    "I haven't reported it to them yet.",
    "Ich habe es noch nicht gemeldet.",
    "Ich habe es nicht bei der Stadt gemeldet.",
    "Hebt u al contact gehad met de dienst: nee",
    "Contact met de dienst: nee",
    "Hebt u al contact gehad met de dienst:\nJa, ik wil graag een antwoord.",
    "Contact met de dienst: jammer genoeg niet",
    "Betrokken dienst: De Lijn\nToestemming verwerking persoonsgegevens: ja",
    "Ik heb gemerkt dat de bus niet meer stopt.",
])
def test_not_reported_or_answered_no_is_no_first_line_contact(text: str) -> None:
    """A negation, a "nee", an empty answer or another form question with "ja" is no contact."""
    assert not detect_facts(text).first_line_contact


@pytest.mark.parametrize("text", [
    "Heb ik al gemeld dat ik verhuisd ben? Mijn nieuwe adres is Kerkstraat 3.",
    "Ik heb u al gemeld dat mijn adres veranderd is.",
    "Ik heb jullie al drie keer gemaild over mijn klacht.",
    "Ik heb het al bij u gemeld.",
])
def test_telling_us_or_asking_us_is_no_contact_with_the_agency(text: str) -> None:
    """A question to us ("Heb ik al gemeld…?") or what the citizen told us ("ik heb u al
    gemeld") says nothing about the agency: before, each counted as first-line contact."""
    assert not detect_facts(text).first_line_contact


@pytest.mark.parametrize("text", [
    "Daarom heb ik het al gemeld aan de stad.",
    "Ik heb uw brief gelezen en heb De Lijn al gemaild.",
    "Ik heb al bij De Lijn gemeld dat de bus niet stopt.",
])
def test_contact_with_the_agency_stays_contact_around_those_words(text: str) -> None:
    assert detect_facts(text).first_line_contact
