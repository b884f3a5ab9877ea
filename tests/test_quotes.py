"""Quoted history and signatures are separated from the new text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.parse import parse_message
from mailbot.quotes import new_text

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("name", "kept", "dropped"), [
    ("reply_nl.eml", "stand van zaken", "goed ontvangen"),
    ("reply_fr.eml", "Où en est mon dossier", "bien reçu"),
    ("reply_de.eml", "wie ist der Stand", "erhalten"),
    ("reply_en_bottom.eml", "Please reply to my new address", "we received"),
    ("outlook_fwd_nl.eml", "niet mee eens", "geweigerd"),
])
def test_reply_keeps_new_text_only(name: str, kept: str, dropped: str) -> None:
    """The new text keeps what the sender wrote and drops the quoted original."""
    mail = parse_message((DATA / name).read_bytes())
    assert kept in mail.new_text and dropped not in mail.new_text


def test_mobile_signature_ends_the_new_text() -> None:
    """'Verzonden vanaf mijn iPhone' and what follows are not new text."""
    assert "iPhone" not in parse_message((DATA / "reply_nl.eml").read_bytes()).new_text


def test_signature_delimiter_ends_the_new_text() -> None:
    """The '-- ' line starts the signature."""
    assert new_text("Hallo\n\nGroet\n-- \nJan\n0470 12 34 56") == "Hallo\n\nGroet"


def test_unquoted_attribution_cuts_history() -> None:
    """A top-posted reply: everything from 'Op … schreef …:' down is history."""
    text = "Dank u.\n\nOp ma 3 mrt 2025 om 10:12 schreef Dienst <d@x.be>:\nOude tekst"
    assert new_text(text) == "Dank u."


def test_talon_outlook_reply_matches_its_expected_reply_text() -> None:
    """talon's Outlook fixture: only 'Hello' is new."""
    assert parse_message((DATA / "corpus/talon__outlook.eml").read_bytes()).new_text == "Hello"
