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
