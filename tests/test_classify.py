"""classify: kind, language and evidence for each kind of mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.classify import classify
from mailbot.language import detect
from mailbot.model import Kind
from mailbot.parse import parse_message

DATA = Path(__file__).parent / "data"
OWN = frozenset({"klachten@vlaamseombudsdienst.be"})


def classified(name: str):  # type: ignore[no-untyped-def]
    return classify(parse_message((DATA / name).read_bytes()), own_addresses=OWN)


@pytest.mark.parametrize(("name", "kind", "language"), [
    ("outlook_fwd_nl.eml", Kind.AGENCY_FORWARD, "nl"),
    ("outlook_fwd_fr.eml", Kind.AGENCY_FORWARD, "fr"),
    ("reply_nl.eml", Kind.STATUS_REQUEST, "nl"),
    ("reply_fr.eml", Kind.STATUS_REQUEST, "fr"),
    ("reply_de.eml", Kind.STATUS_REQUEST, "de"),
    ("reply_en_bottom.eml", Kind.NEW_COMPLAINT, "en"),
    ("charset_8bit_none.eml", Kind.NEW_COMPLAINT, "fr"),
    ("ooo_nl.eml", Kind.AUTOMATIC, "nl"),
    ("bounce_our_reply.eml", Kind.AUTOMATIC, "en"),
])
def test_kind_and_language(name: str, kind: Kind, language: str) -> None:
    """Each fixture gets the expected kind and language."""
    result = classified(name)
    assert (result.kind, result.language) == (kind, language)
    assert result.reasons


def test_automatic_mail_carries_reason_and_bounce() -> None:
    """A bounce is automatic with an auto_reason and the parsed Bounce."""
    result = classified("bounce_our_reply.eml")
    assert result.auto_reason and result.bounce is not None and result.is_automatic


def test_facts_are_filled() -> None:
    """Phone number and phone preference reach the classification."""
    facts = classified("reply_nl.eml").facts
    assert facts.phone_numbers == ("+32470123456",) and facts.prefers_phone


def test_quoted_history_from_us_is_not_an_agency_forward() -> None:
    """An Outlook reply quoting our own mail is a new complaint (the matcher makes it a follow-up)."""
    raw = (b"From: jan@example.be\r\nSubject: FW: VO-2026-000123\r\n\r\nZie hieronder.\r\n\r\n"
           b"Van: Vlaamse Ombudsdienst <klachten@vlaamseombudsdienst.be>\r\nVerzonden: maandag 3 maart 2025 10:12\r\n"
           b"Aan: jan@example.be\r\nOnderwerp: VO-2026-000123\r\n\r\nOude tekst")
    assert classify(parse_message(raw), own_addresses=OWN).kind is Kind.NEW_COMPLAINT


def test_short_or_unclear_text_uses_the_default_language() -> None:
    """Too little text to judge gives the default language."""
    assert detect("ok", default="fr") == "fr"
    assert classify(parse_message(b"Subject: x\r\n\r\nok"), default_language="de").language == "de"
