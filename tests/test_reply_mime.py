"""Replies as mail clients see them: RFC 2047 limits, parse-back without defects, dark-mode-safe HTML."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from pathlib import Path

import mailparser
import pytest

from mailbot.model import Address
from mailbot.render import LANGUAGES, Renderer
from mailbot.template_vars import sample_context
from tests.test_compose import compose, rendered

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
LONG_NAME = "Zoë Müller-Ünal van den Broecke-Dupré, échevine à Sint-Genesius-Rode"
LONG_FROM = "Vlaamse Ombudsdienst – Klachtendienst van het Vlaams Parlement"
LONG_SUBJECT = "Überweisung déjà payée — réclamation concernant l'école " * 3


def _raw_header(raw: bytes, name: str) -> str:
    """The header as sent, unfolded (CRLF removed, the space kept: RFC 5322 §2.2.3)."""
    value = message_from_bytes(raw)[name]  # compat32: the raw value
    return str(value).replace("\r\n", "").replace("\n", "")


def test_encoded_words_stay_within_rfc2047_limits_and_decode_exactly() -> None:
    """Long non-ASCII names and subjects become several encoded words of at most 75
    characters, on lines of at most 76, that an RFC 2047 decoder joins back exactly."""
    msg = compose(from_name=LONG_FROM, to=Address(LONG_NAME, "zoe@example.org"),
                  reply_to=Address(LONG_NAME, "an.peeters@vlaamseombudsdienst.be"), original_subject=LONG_SUBJECT)
    raw = bytes(msg)
    head = raw.split(b"\r\n\r\n", 1)[0]
    words = ENCODED_WORD.findall(head)
    assert len(words) > 6 and max(len(word) for word in words) <= 75
    assert all(len(line) <= 76 for line in head.split(b"\r\n") if ENCODED_WORD.search(line))
    decoded = {name: str(make_header(decode_header(_raw_header(raw, name)))) for name in ("From", "To", "Subject")}
    assert decoded["From"] == f"{LONG_FROM} <klachten@vlaamseombudsdienst.be>"
    assert decoded["To"] == f"{LONG_NAME} <zoe@example.org>"
    assert decoded["Subject"] == msg.subject
    parsed = mailparser.parse_from_bytes(raw)
    assert parsed.defects == []  # it reported "overlong-encoded-word" for one 100-character word
    assert parsed.to == [(LONG_NAME, "zoe@example.org")] and parsed.subject == msg.subject


def test_name_split_between_words() -> None:
    """A name too long for one encoded word is cut after a space, not inside a word,
    so a decoder that wrongly adds a space between encoded words still shows whole words."""
    raw = bytes(compose(to=Address(LONG_NAME, "zoe@example.org")))
    to = _raw_header(raw, "To")
    pieces = [str(make_header(decode_header(word))) for word in to.split(" ") if word.startswith("=?")]
    assert len(pieces) > 1 and all(piece.endswith(" ") for piece in pieces[:-1])
    assert BytesParser(policy=policy.default).parsebytes(raw)["To"].addresses[0].display_name.split() == LONG_NAME.split()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(Renderer(TEMPLATES).names()))
def test_every_reply_parses_back_cleanly(name: str, language: str) -> None:
    """Every template in every language, as sent, parses without defects in the standard
    library and mail-parser: text part first, HTML second, both utf-8 quoted-printable."""
    raw = bytes(compose(rendered=rendered(language, name), to=Address(LONG_NAME, "zoe@example.org"),
                        original_subject=LONG_SUBJECT))
    back = BytesParser(policy=policy.default).parsebytes(raw)
    assert back.defects == [] and all(part.defects == [] for part in back.walk())
    assert [part.get_content_type() for part in back.iter_parts()] == ["text/plain", "text/html"]
    for part in back.iter_parts():
        assert part["Content-Transfer-Encoding"] == "quoted-printable" and part.get_content_charset() == "utf-8"
    assert mailparser.parse_from_bytes(raw).defects == []
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(Renderer(TEMPLATES).names()))
def test_html_leaves_colours_to_the_mail_client(name: str, language: str) -> None:
    """The HTML part sets no text or background colour and declares light and dark support:
    a client in dark mode keeps its own light-on-dark pair instead of our dark grey on its
    dark background."""
    html = Renderer(TEMPLATES).render(name, language, sample_context(name)).html
    styles = " ".join(re.findall(r'style="([^"]*)"', html))
    assert not re.search(r"(^|[;\s])(color|background(-color)?)\s*:", styles), styles
    assert "<style" not in html and 'bgcolor=' not in html and "<font" not in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert f'<html lang="{language}">' in html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(Renderer(TEMPLATES).names()))
def test_text_lines_stay_short_with_long_inserted_names(name: str, language: str) -> None:
    """A long agency or sender name inserted in a sentence is wrapped with it: the text part
    keeps to 76 characters a line, the way a plain-text mail reads on a phone."""
    context = sample_context(name)
    for key in ("agency", "forwarded", "service"):
        if isinstance(context.get(key), dict):
            field = "sender" if key == "forwarded" else "name"
            context[key][field] = "Agentschap voor Natuur en Bos, afdeling Beheer en Handhaving"
    text = Renderer(TEMPLATES).render(name, language, context).text
    assert [line for line in text.splitlines() if len(line) > 76] == []
