"""Forwarded messages: every client format, attached and nested."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.forwards import find_inline
from mailbot.parse import parse_message

DATA = Path(__file__).parent / "data"
MARCH_3 = datetime(2025, 3, 3, 10, 12, tzinfo=ZoneInfo("Europe/Brussels"))

CASES = [  # file, source, sender, subject, body fragment
    ("outlook_fwd_nl.eml", "outlook-nl", "info@wonen.vlaanderen.be", "Uw aanvraag huurpremie", "geweigerd"),
    ("outlook_fwd_fr.eml", "outlook-fr", "contact@logement.example.be", "Votre demande de prime", "refusée"),
    ("outlook_fwd_de.eml", "outlook-de", "post@eupen.example.be", "Ihr Antrag", "abgelehnt"),
    ("html_only_outlook_nl.eml", "outlook-nl", "info@zottegem.example.be", "Uw vraag over de afvalbelasting", "onderzocht"),
    ("gmail_fwd_nl.eml", "gmail-nl", "info@stad.gent", "Beslissing over uw dossier", "behandeld"),
    ("gmail_fwd_fr.eml", "gmail-fr", "info@mouscron.example.be", "Décision", "clôturé"),
    ("gmail_fwd_en.eml", "gmail-en", "office@city.example.org", "Decision", "closed"),
    ("apple_fwd_nl.eml", "apple-nl", "klantendienst@delijn.be", "Uw klacht", "terugbetaling"),
    ("apple_fwd_fr.eml", "apple-fr", "service@sncb.example.be", "Votre plainte", "regrettons"),
    ("thunderbird_fwd_nl.eml", "thunderbird-nl", "info@vlabel.be", "Aanslagbiljet", "volgt"),
    ("thunderbird_fwd_fr.eml", "thunderbird-fr", "service@public.example.be", "Avis", "Votre avis"),
    ("thunderbird_fwd_de.eml", "thunderbird-de", "amt@example.de", "Bescheid", "Ihr Bescheid"),
    ("attached_rfc822.eml", "rfc822", "klantendienst@vdab.be", "Uw inschrijving – beslissing", "stopgezet"),
    ("toplevel_rfc822.eml", "rfc822", "info@kindengezin.be", "Uw groeipakket", "herzien"),
]


@pytest.mark.parametrize(("name", "source", "sender", "subject", "fragment"), CASES)
def test_forward_gives_sender_date_subject_and_body(name: str, source: str, sender: str, subject: str, fragment: str) -> None:
    """Each client's forward yields the original sender, date, subject and body."""
    mail = parse_message((DATA / name).read_bytes())
    assert len(mail.forwarded) == 1
    fwd = mail.forwarded[0]
    assert (fwd.source, fwd.subject) == (source, subject)
    assert fwd.sender is not None and fwd.sender.email == sender and fwd.sender.name
    assert fwd.date == MARCH_3
    assert fragment in fwd.body


def test_nested_forwards_are_listed_outermost_first() -> None:
    """A forward of a forward gives both messages, outer one first."""
    fwds = parse_message((DATA / "nested_fwd_nl.eml").read_bytes()).forwarded
    assert [f.sender.email for f in fwds if f.sender] == ["an@example.be", "boetes@parkeren.antwerpen.be"]
    assert "50 euro" not in fwds[0].body and "50 euro" in fwds[1].body


def test_attached_message_keeps_its_message_id() -> None:
    """A message/rfc822 forward carries the original Message-ID."""
    assert parse_message((DATA / "attached_rfc822.eml").read_bytes()).forwarded[0].message_id == "vdab-123@vdab.be"


def test_outlook_reply_block_is_not_a_forward() -> None:
    """Outlook's header block above reply history counts only when the subject says FW."""
    text = "Ok\n\nFrom: A <a@x.be>\nSent: Monday, 3 March 2025 10:12\nTo: B\nSubject: Vraag\n\nOld text"
    assert find_inline(text, "RE: Vraag") == []
    assert find_inline(text, "FW: Vraag")[0].sender.email == "a@x.be"  # type: ignore[union-attr]


def test_outlook_original_message_marker_counts_without_fw_subject() -> None:
    """'-----Original Message-----' marks a forwarded original even without FW: (corpus label)."""
    mail = parse_message((DATA / "corpus/django-helpdesk__forwarded-message.eml").read_bytes())
    assert mail.forwarded[0].sender is not None and mail.forwarded[0].sender.email == "noreply@github.com"


def test_returned_message_of_a_bounce_is_not_a_forward() -> None:
    """The original inside a delivery report is not a forward."""
    assert parse_message((DATA / "bounce_our_reply.eml").read_bytes()).forwarded == ()
