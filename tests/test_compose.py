"""Composing replies: subject, threading headers, both parts, and no header injection."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.compose import ComposedReply, build_subject, compose_reply, make_message_id, strip_reply_markers
from mailbot.model import Address
from mailbot.render import Renderer, RenderedReply
from mailbot import sanitize
from mailbot.sanitize import HeaderError
from mailbot.template_vars import sample_context

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
REF = "VO-2026-000123"
HEADERS = {"from", "to", "reply-to", "subject", "date", "message-id", "in-reply-to", "references",
           "auto-submitted", "x-auto-response-suppress", "content-language", "mime-version", "content-type"}
INJECTIONS = ["x\r\nBcc: evil@example.net", "x\nBcc: evil@example.net", "x\rBcc: evil@example.net",
              "=?utf-8?q?x=0D=0ABcc:evil@example.net?=", "=?utf-8?b?eA0KQmNjOiBldmlsQGV4YW1wbGUubmV0?=",
              "x\u2028Bcc: evil@example.net", "x\x85Bcc: evil@example.net", "x\r\n\r\n<html>body",
              '"x" <evil@example.net>, Bcc: evil@example.net']


def rendered(language: str = "nl", name: str = "ack_investigation") -> RenderedReply:
    return Renderer(TEMPLATES).render(name, language, sample_context(name))


def compose(**overrides: object) -> ComposedReply:
    args: dict[str, object] = dict(
        rendered=rendered(), from_address="klachten@vlaamseombudsdienst.be", from_name="Vlaamse Ombudsdienst",
        to=Address("Jan Janssens", "jan@example.org"),
        reply_to=Address("An Peeters", "an.peeters@vlaamseombudsdienst.be"),
        case_ref=REF, original_subject="Terugbetaling studietoelage", in_reply_to="orig-1@example.org",
        references=["<root@example.org>"], message_id="<abc123@vlaamseombudsdienst.be>",
        date=datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc))
    args.update(overrides)
    return compose_reply(**args)  # type: ignore[arg-type]


def parse(msg: ComposedReply) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(bytes(msg))  # type: ignore[return-value]


def test_headers_and_parts() -> None:
    """A reply carries the required headers and a text plus HTML alternative, CRLF line ends."""
    msg = compose()
    raw = bytes(msg)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    back = parse(msg)
    assert {k.lower() for k in back.keys()} == HEADERS
    assert back["Subject"] == f"Uw klacht [{REF}] Terugbetaling studietoelage"
    assert back["From"].addresses[0].display_name == "Vlaamse Ombudsdienst"
    assert back["From"].addresses[0].addr_spec == "klachten@vlaamseombudsdienst.be"
    assert back["To"].addresses[0].addr_spec == "jan@example.org"
    assert back["Reply-To"].addresses[0].addr_spec == "an.peeters@vlaamseombudsdienst.be"
    assert back["Message-ID"] == "<abc123@vlaamseombudsdienst.be>"
    assert back["In-Reply-To"] == "<orig-1@example.org>"
    assert back["References"] == "<root@example.org> <orig-1@example.org>"
    assert back["Auto-Submitted"] == "auto-replied"
    assert back["X-Auto-Response-Suppress"] == "All"
    assert back["Content-Language"] == "nl"
    assert back["Date"].datetime == datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    assert back.get_content_type() == "multipart/alternative"
    plain, html = back.get_body(("plain",)), back.get_body(("html",))
    assert plain is not None and html is not None
    for fact in (REF, "An Peeters", "an.peeters@vlaamseombudsdienst.be", "+32 2 552 48 00"):
        assert fact in plain.get_content() and fact in html.get_content()


@pytest.mark.parametrize("language", ["nl", "fr", "en", "de"])
def test_language_and_prefix(language: str) -> None:
    """Subject prefix and Content-Language follow the rendered language."""
    back = parse(compose(rendered=rendered(language)))
    assert back["Content-Language"] == language
    assert back["Subject"].startswith({"nl": "Uw klacht", "fr": "Votre plainte", "en": "Your complaint",
                                       "de": "Ihre Beschwerde"}[language] + f" [{REF}] ")


def test_optional_headers_left_out() -> None:
    """Without Reply-To, parent or references those headers are absent, not empty."""
    back = parse(compose(reply_to=None, in_reply_to=None, references=[]))
    assert not {"reply-to", "in-reply-to", "references"} & {k.lower() for k in back.keys()}


def test_non_ascii_display_name_encoded() -> None:
    """Non-ASCII display names are RFC 2047 encoded on the wire and decode back intact."""
    msg = compose(from_name="Vlaamse Ombudsdienst – Klachtendienst", to=Address("Zoë Müller, \"Jr\"", "zoe@example.org"))
    raw = bytes(msg)
    assert raw.isascii() is True or b"=?utf-8?" in raw
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    back = parse(msg)
    assert back["To"].addresses[0].display_name == 'Zoë Müller, "Jr"'
    assert back["From"].addresses[0].display_name == "Vlaamse Ombudsdienst – Klachtendienst"


@pytest.mark.parametrize("attack", INJECTIONS)
@pytest.mark.parametrize("field", ["subject", "to_name", "from_name", "reply_to_name", "case_ref"])
def test_no_header_injection(field: str, attack: str) -> None:
    """CR/LF, unicode separators and encoded words in any input never add a header or end the header block."""
    overrides: dict[str, object] = {
        "subject": {"original_subject": attack},
        "to_name": {"to": Address(attack, "jan@example.org")},
        "from_name": {"from_name": attack},
        "reply_to_name": {"reply_to": Address(attack, "an.peeters@vlaamseombudsdienst.be")},
        "case_ref": {"case_ref": attack},
    }[field]
    msg = compose(**overrides)
    raw = bytes(msg)
    back = parse(msg)
    assert {k.lower() for k in back.keys()} == HEADERS
    assert back.defects == []
    assert len(back["To"].addresses) == 1 and back["To"].addresses[0].addr_spec == "jan@example.org"
    assert not re.search(rb"^bcc:", raw, re.IGNORECASE | re.MULTILINE)
    for name in ("Subject", "From", "To", "Reply-To"):
        assert "\n" not in str(back[name]) and "\r" not in str(back[name])


@pytest.mark.parametrize("attack", INJECTIONS + ["<a@b>\r\nBcc: evil@example.net"])
def test_no_injection_via_threading_ids(attack: str) -> None:
    """Broken parent or reference ids are dropped instead of breaking the header block."""
    back = parse(compose(in_reply_to=attack, references=[attack, "<ok@example.org>"]))
    assert {k.lower() for k in back.keys()} <= HEADERS
    assert "bcc" not in {k.lower() for k in back.keys()}
    assert back["References"].startswith("<ok@example.org>")


@pytest.mark.parametrize("kwargs", [{"to": Address("x", "jan@example.org\r\nBcc: evil@example.net")},
                                    {"to": Address("x", "jan@example.org, evil@example.net")},
                                    {"from_address": "klachten@\nexample.org"},
                                    {"reply_to": Address("x", "not-an-address")},
                                    {"message_id": "<a b@c>"}, {"message_id": "no-domain"}])
def test_bad_addresses_refused(kwargs: dict[str, object]) -> None:
    """An unusable address or Message-ID raises HeaderError instead of producing a mail."""
    with pytest.raises(HeaderError):
        compose(**kwargs)


def test_references_bounded() -> None:
    """A long thread keeps at most 20 references, root first and parent last."""
    refs = [f"<m{i}@example.org>" for i in range(100)]
    back = parse(compose(references=refs, in_reply_to="<m99@example.org>"))
    ids = back["References"].split()
    assert len(ids) == 20 and ids[0] == "<m0@example.org>" and ids[-1] == "<m99@example.org>"


def test_naive_date_is_utc() -> None:
    """A naive date is taken as UTC."""
    back = parse(compose(date=datetime(2026, 3, 2, 9, 30)))
    assert back["Date"].datetime == datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def test_make_message_id() -> None:
    """Message-IDs are `<random@domain>` and never repeat."""
    ids = {make_message_id("vlaamseombudsdienst.be") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"<[0-9a-f]{32}@vlaamseombudsdienst\.be>", i) for i in ids)
    with pytest.raises(HeaderError):
        make_message_id("bad domain>")


@pytest.mark.parametrize("original, expected", [
    ("Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    ("Re: Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    ("RE: Fwd: Antw: TR: AW: WG: Doorst: Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    ("Re[2]: Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    (f"Re: Uw klacht [{REF}] Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    (f"Re: Uw klacht [{REF}] Re: Uw klacht [{REF}] Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    (f"AW: Ihre Beschwerde [{REF}] Terugbetaling", f"Uw klacht [{REF}] Terugbetaling"),
    (f"Terugbetaling [{REF.lower()}]", f"Uw klacht [{REF}] Terugbetaling"),
    (f"[{REF}]", f"Uw klacht [{REF}]"),
    ("", f"Uw klacht [{REF}]"),
    ("Reactie op beslissing", f"Uw klacht [{REF}] Reactie op beslissing"),
])
def test_build_subject(original: str, expected: str) -> None:
    """Reply markers and an earlier `prefix [REF]` are stripped, so the reference appears exactly once."""
    assert build_subject("Uw klacht", REF, original) == expected


def test_subject_without_reference() -> None:
    """Without a case reference there are no empty brackets: `<prefix>: <subject>` (French: ` : `)."""
    assert build_subject("Uw vraag", "", "Re: stand van zaken?") == "Uw vraag: stand van zaken?"
    assert build_subject("Uw bericht", "", "Re: Uw bericht: Scan") == "Uw bericht: Scan"
    assert build_subject("Votre message", "", "Scan", language="fr") == "Votre message : Scan"
    assert build_subject("Uw vraag", "", "") == "Uw vraag"


def test_subject_bounded_keeps_reference() -> None:
    """A very long original subject is cut, never the prefix or the reference."""
    subject = build_subject("Uw klacht", REF, "heel lang onderwerp " * 50)
    assert len(subject) <= 200 and subject.startswith(f"Uw klacht [{REF}] ") and subject.endswith("…")


def test_strip_reply_markers() -> None:
    """Only leading markers go; words that merely start like one stay."""
    assert strip_reply_markers("Re: Fw: Reactie") == "Reactie"
    assert strip_reply_markers("Trein vertraagd") == "Trein vertraagd"
    assert strip_reply_markers("Referentie 12") == "Referentie 12"


@settings(max_examples=200, deadline=None)
@given(subject=st.text(), name=st.text(max_size=300))
def test_fuzzed_inputs_keep_header_set(subject: str, name: str) -> None:
    """Random subjects and display names never change the set of headers or the recipient."""
    back = parse(compose(original_subject=subject, to=Address(name, "jan@example.org"), from_name=name))
    assert {k.lower() for k in back.keys()} == HEADERS
    assert [a.addr_spec for a in back["To"].addresses] == ["jan@example.org"]
    assert len(back["Subject"]) <= 200


def test_reply_bytes_are_seven_bit_with_crlf_and_short_lines():
    """The composed reply is plain 7-bit ASCII with CRLF line ends and no line over 998 octets,
    so any relay can carry it; the accented text survives the round trip."""
    msg = compose(to=Address("Zoë Dupont-Ünal", "zoe@example.org"),
                  original_subject="Überweisung déjà = 100 % " + "lang " * 80,
                  rendered=rendered("fr"))
    raw = bytes(msg)
    assert all(byte < 128 for byte in raw)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = parse(msg)
    assert parsed["To"].addresses[0].display_name == "Zoë Dupont-Ünal"
    assert "déjà = 100 %" in parsed["Subject"]
    assert "Bonjour" in parsed.get_body(("plain",)).get_content()


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
       html=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
       subject=st.text(max_size=400), name=st.text(max_size=150), language=st.sampled_from(["nl", "fr", "en", "de"]))
def test_round_trip_through_the_standard_parser(text: str, html: str, subject: str, name: str,
                                                language: str) -> None:
    """What the standard library reads back is exactly what we meant to send: the cleaned
    subject and display name, and both bodies character for character (line ends aside);
    the wire stays 7-bit with CRLF and lines within 998 octets."""
    reply = RenderedReply(template="ack_investigation", language=language, subject_prefix="Uw klacht",
                          text=text, html=html)
    msg = compose(rendered=reply, original_subject=subject, to=Address(name, "jan@example.org"))
    raw = bytes(msg)
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = parse(msg)
    assert back.defects == [] and back["Subject"] == msg.subject == build_subject("Uw klacht", REF, subject)
    expected, shown = sanitize.display_name(name), back["To"].addresses[0].display_name
    if expected.isascii():
        assert shown == expected
    else:  # Python's address parser puts a space between encoded words; RFC 2047 §6.2 drops it
        assert shown.replace(" ", "") == expected.replace(" ", "")
        to = str(message_from_bytes(raw)["To"]).replace("\r\n", "")
        assert str(make_header(decode_header(to))) == f"{expected} <jan@example.org>"
    assert back["Content-Language"] == language
    plain, rich = back.get_body(("plain",)), back.get_body(("html",))
    assert plain is not None and rich is not None
    assert _lines(plain.get_content()) == _lines(text)
    assert _lines(rich.get_content()) == _lines(html)


def test_long_headers_are_folded_at_spaces_within_78_columns():
    """A long References or Subject is folded at spaces so no header line passes 78 columns
    when its words allow, never right after the colon, and unfolds to the same value."""
    refs = [f"<thread-message-{i}@mail.example.org>" for i in range(15)]
    msg = compose(references=refs, in_reply_to=refs[-1], original_subject="heel lang onderwerp " * 8)
    head = bytes(msg).split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    assert max(len(line) for line in head) <= 78
    assert all(line.startswith(" ") or line.split(":", 1)[1].strip() for line in head)
    back = parse(msg)
    assert back["References"].split() == refs
    assert back["Subject"] == msg.subject and len(msg.subject) > 78
    long_id = "<" + "x" * 100 + "@example.org>"  # longer than a line: it stays beside its name
    raw = bytes(compose(references=[long_id], in_reply_to=None)).decode("ascii")
    assert f"\r\nReferences: {long_id}\r\n" in raw
