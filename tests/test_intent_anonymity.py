"""Anonymity requests (audit C, item 4): everyday wording in nl/fr/en/de, a web form's own
anonymity question, and a refusal of anonymity that is no request."""

from __future__ import annotations

import time

import pytest

from mailbot.intent import detect_facts


@pytest.mark.parametrize("text", [
    # nl
    "Ik wens dat mijn identiteit geheim blijft.",
    "Hou mijn identiteit geheim a.u.b.",
    "Houd mijn naam alstublieft geheim tegenover de huisvestingsmaatschappij.",
    "Mijn naam moet echt geheim blijven, ik woon naast de schepen.",
    "Ik wil niet dat mijn gegevens aan de stad worden bezorgd.",
    "Ik wil niet dat mijn naam ooit aan de school wordt doorgegeven.",
    "Graag discreet behandelen, ik vrees represailles.",
    "Ik verzoek om vertrouwelijkheid.",
    "Ik vraag u uitdrukkelijk om discretie in dit dossier.",
    "Kunt u de dienst contacteren zonder mijn naam te noemen?",
    "Ik blijf liefst onbekend voor de dienst; ik wil graag onbekend blijven.",
    # fr
    "Je ne veux pas que l'administration sache que je me suis plaint.",
    "Je ne souhaite pas que la commune apprenne que c'est moi.",
    "Veuillez garder mon identité secrète.",
    "Je souhaite que mon nom reste secret.",
    "Je demande la confidentialité.",
    "Je vous prie de bien vouloir traiter ma plainte de manière confidentielle.",
    "Merci de traiter ce dossier en toute discrétion.",
    # en
    "Please don't tell the council who I am.",
    "Please treat this confidentially.",
    "Please handle my complaint in strict confidence.",
    "I'd rather the agency didn't know it was me.",
    "I don't want the landlord to find out it was me.",
    "Please keep this confidential, my neighbour works there.",
    "I request confidentiality.",
    # de
    "Die Behörde soll nicht erfahren, wer ich bin.",
    "Ich möchte nicht, dass die Stadt erfährt, dass ich mich beschwert habe.",
    "Bitte behandeln Sie meine Beschwerde vertraulich.",
    "Ich bitte um Vertraulichkeit.",
    "Bitte diskret behandeln.",
    "Bitte halten Sie meinen Namen geheim; mein Name soll geheim bleiben.",
])
def test_anonymity_in_everyday_wording(text: str) -> None:
    """Wishes that the agency not learn who complains, worded without 'anoniem', are requests."""
    assert detect_facts(text).anonymity_requested


@pytest.mark.parametrize("text", [
    "Anoniem: ja",
    "Anoniem blijven? Ja",
    "Mag uw naam aan de betrokken dienst worden doorgegeven? Nee",
    "Naam doorgeven aan de dienst? Nee",
    "Naam doorgeven aan instantie: neen",
    "Identiteit geheim houden: ja",
    "Wenst u dat uw naam niet wordt doorgegeven? Ja",
    "Mogen uw gegevens aan de dienst worden bezorgd of doorgegeven? Nee",
    "Anonymat souhaité : oui",
    "Votre nom peut-il être communiqué à l'administration ? Non",
    "Anonymous: yes",
    "May we pass on your name to the agency? No",
    "Anonym: ja",
    "Darf Ihr Name an die Behörde weitergegeben werden? Nein",
])
def test_web_form_anonymity_question(text: str) -> None:
    """A form's anonymity question answered yes, or its 'may we pass on your name' answered no."""
    body = f"Naam: An Peeters\nE-mail: an@example.be\n{text}\nKlacht: de container werd niet geledigd.\n"
    assert detect_facts(body).anonymity_requested


@pytest.mark.parametrize("text", [
    "Anoniem: nee",
    "Anoniem: ",
    "Mag uw naam aan de betrokken dienst worden doorgegeven? Ja",
    "Anonymat souhaité : non",
    "Anonymous: no",
    "Anonym: nein",
    "Niet anoniem: ja",
    "Gegevens delen met partners voor nieuwsbrieven: nee",
    "Toestemming om uw gegevens te verwerken: ja",
    "Hebt u al contact gehad met de dienst: nee",
    "Naam: Nee Jansen",
])
def test_web_form_without_anonymity(text: str) -> None:
    """No, an empty answer, a negated question, consent lines and a name are no anonymity."""
    body = f"Naam: An Peeters\n{text}\nKlacht: de container werd niet geledigd.\n"
    assert not detect_facts(body).anonymity_requested


@pytest.mark.parametrize("text", [
    "Ik wil niet anoniem blijven, u mag mijn naam geven.",
    "Ik hoef niet anoniem te blijven.",
    "Mijn naam hoeft niet geheim te blijven.",
    "Je ne souhaite pas rester anonyme, vous pouvez donner mon nom.",
    "I do not need to remain anonymous; you may give my name.",
    "I don't want to stay anonymous.",
    "Ich möchte nicht anonym bleiben, Sie dürfen meinen Namen nennen.",
    # Reports about the agency, not wishes.
    "De dienst heeft mijn klacht niet vertrouwelijk behandeld.",
    "The agency did not treat my data confidentially.",
    "Le service n'a pas traité ma plainte de manière confidentielle.",
    "Ik vroeg de dienst of het geheim was, maar niemand antwoordde.",
    "De brief van de stad vermeldt dat de beslissing geheim blijft tot de gemeenteraad.",
    "Ich möchte nicht, dass die Sache verjährt.",
])
def test_refusing_anonymity_is_no_request(text: str) -> None:
    """A negated wish ('niet anoniem blijven') and reports about the agency are no request."""
    assert not detect_facts(text).anonymity_requested


def test_a_request_after_an_unrelated_negation_counts() -> None:
    """A negation in another clause does not cancel the wish: only one right before it does."""
    assert detect_facts("Ik weet het niet zeker. Maar ik wil anoniem blijven.").anonymity_requested
    assert detect_facts("Niet vergeten: ik wil anoniem blijven.").anonymity_requested
    assert detect_facts("I am not sure, but please treat this confidentially.").anonymity_requested


@pytest.mark.parametrize("text", [
    "mijn naam " * 10_000, "ik wil niet dat mijn gegevens " * 4_000, "anoniem: " * 10_000,
    ("Anoniem blijven " + "x" * 200 + "? ja\n") * 400, "houd mijn naam " * 8_000, "ne veux pas que " * 7_000,
    "niet anoniem blijven " * 5_000,
], ids=lambda text: text[:24])
def test_hostile_text_is_read_in_bounded_time(text: str) -> None:
    """The new phrases and the form rule stay bounded on long repetitive text."""
    started = time.perf_counter()
    detect_facts(text)
    assert time.perf_counter() - started < 1.5
