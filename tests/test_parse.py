"""parse_message: headers, addresses, charsets, bodies, attachments, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.errors import ParseError
from mailbot.parse import decode_bytes, decode_words, parse_message

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_empty_message_is_a_parse_error() -> None:
    """A 0-byte message cannot be read and says so."""
    with pytest.raises(ParseError, match="empty message"):
        parse_message(b"")


def test_oversize_message_names_its_size_and_the_limit() -> None:
    """A message over max_bytes is refused with both numbers in the reason."""
    with pytest.raises(ParseError, match="message of 31 bytes exceeds the limit of 30"):
        parse_message(b"Subject: x\r\n\r\n" + b"a" * 17, max_bytes=30)


def test_missing_headers_give_empty_values() -> None:
    """A body without headers parses to empty fields instead of failing."""
    mail = parse_message(b"\r\n\r\njust text")
    assert (mail.message_id, mail.subject, mail.from_, mail.date) == ("", "", None, None)


def test_ids_lose_their_angle_brackets() -> None:
    """Message-ID, In-Reply-To and References come without angle brackets."""
    mail = parse_message(load("reply_nl.eml"))
    assert mail.message_id == "reply-nl@example.be"
    assert mail.in_reply_to == ("VO-2026-000123.1@vlaamseombudsdienst.be",)
    assert mail.references[0] == "VO-2026-000123.0@vlaamseombudsdienst.be"


def test_message_id_without_brackets_is_kept() -> None:
    """A bare Message-ID value is taken as it is."""
    assert parse_message(b"Message-ID: abc@x\r\n\r\nhi").message_id == "abc@x"


def test_addresses_are_lowercased_and_names_decoded() -> None:
    """Addresses are lower-cased, display names RFC 2047-decoded, IDN domains punycoded."""
    mail = parse_message(load("rfc2231_idn.eml"))
    assert mail.from_ is not None and mail.from_.name == "José García"
    assert mail.from_.email == "jose@xn--bcher-kva.example"
    assert mail.to[0].email == "klachten@vlaamseombudsdienst.be" and mail.to[0].name == "Klachten, dienst"


def test_adjacent_encoded_words_join_without_space() -> None:
    """Whitespace between two encoded-words is not part of the subject."""
    assert parse_message(load("rfc2231_idn.eml")).subject == "Bijlage met één naam"


def test_rfc2231_filename_and_inline_image_are_listed() -> None:
    """An RFC 2231 filename is decoded; an inline image is listed as inline."""
    names = {(a.filename, a.content_type, a.inline) for a in parse_message(load("rfc2231_idn.eml")).attachments}
    assert ("brief gemeente €.pdf", "application/pdf", False) in names
    assert ("logo.png", "image/png", True) in names


def test_gb2312_label_on_utf8_bytes_is_recovered() -> None:
    """Declared GB2312 but UTF-8 bytes: the body reads as UTF-8."""
    assert "café, €5" in parse_message(load("charset_gb2312_utf8.eml")).text


def test_latin1_label_on_windows1252_bytes_is_recovered() -> None:
    """Declared ISO-8859-1 with windows-1252 quotes and euro sign: read as windows-1252."""
    mail = parse_message(load("charset_latin1_cp1252.eml"))
    assert "“€ 120” betalen – dat" in mail.text and mail.subject == "Factuur € 120"


def test_8bit_headers_and_body_without_charset_are_readable() -> None:
    """Raw latin-1 bytes without any charset declaration decode to the right accents."""
    mail = parse_message(load("charset_8bit_none.eml"))
    assert mail.subject == "Réclamation très urgente"
    assert mail.from_ is not None and mail.from_.name == "André Dupré"
    assert "déposer une plainte" in mail.text


def test_html_only_mail_is_converted_without_script_or_style() -> None:
    """An HTML-only body becomes text; script and style contents are dropped."""
    mail = parse_message(load("html_only_outlook_nl.eml"))
    assert "zie het antwoord van de gemeente" in mail.text
    assert "alert" not in mail.text and "color" not in mail.text
    assert mail.html.startswith("<html>")


def test_tnef_contents_are_listed() -> None:
    """The files inside winmail.dat are listed next to it."""
    names = [a.filename for a in parse_message(load("corpus/mimekit__rich-text.eml")).attachments]
    assert "winmail.dat" in names and "kitten-playing-with-a-christmas-tree.jpg" in names


def test_utf8_bom_before_headers_is_ignored() -> None:
    """A UTF-8 byte order mark before the headers does not hide them."""
    mail = parse_message(load("corpus/mimekit__feedback-report.eml"))
    assert mail.subject == "FW: Earn money" and mail.from_ is not None


def test_size_is_the_raw_length() -> None:
    """size is the length of the bytes given."""
    raw = load("reply_fr.eml")
    assert parse_message(raw).size == len(raw)


def test_headers_are_lowercased_and_decoded() -> None:
    """Every header is kept with a lower-cased name and decoded value."""
    mail = parse_message(load("attached_rfc822.eml"))
    assert ("subject", "Doorgestuurd: brief van de VDAB") in mail.headers
    assert mail.header("Message-ID") == "<rfc822@example.be>"


def test_broken_base64_encoded_word_does_not_fail() -> None:
    """A badly padded base64 word is decoded best-effort."""
    assert decode_words("=?utf-8?b?Sm9zw6k?=") == "José"


def test_unknown_charset_falls_back() -> None:
    """An unknown charset label still yields text."""
    assert decode_bytes("café".encode("latin-1"), "x-unknown") == "café"


CONTROLS = "".join(map(chr, [*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F]))  # all but whitespace ones


@pytest.mark.parametrize("control", list(CONTROLS), ids=[f"{ord(c):02x}" for c in CONTROLS])
def test_control_characters_never_survive_in_header_values_addresses_and_names(control: str) -> None:
    """A control character anywhere in the header block is gone from every header value,
    address, display name and Message-ID of the `Mail`; the text around it is kept."""
    c = control
    raw = (f"From: \"Jan{c} Peeters\" <jan{c}.peeters@exam{c}ple.be>\r\nTo: <{c}klachten@vlaamseombudsdienst.be>\r\n"
           f"Cc: =?utf-8?q?Ann={ord(c):02X}_Smet?= <ann@example.be>\r\nReply-To: <jan@example.be{c}>\r\n"
           f"Subject: Klacht{c} over =?utf-8?q?mijn={ord(c):02X}_toelage?=\r\nMessage-ID: <id{c}1@example.be>\r\n"
           f"In-Reply-To: <vorige{c}@example.be>\r\nReferences: <eerste@example.be> <vorige{c}@example.be>\r\n"
           "Content-Type: text/plain\r\n\r\nGeachte\r\n").encode()
    mail = parse_message(raw)
    assert (mail.from_.name, mail.from_.email) == ("Jan Peeters", "jan.peeters@example.be")
    assert [str(a) for a in (*mail.to, *mail.cc, *mail.reply_to)] == [
        "klachten@vlaamseombudsdienst.be", "Ann Smet <ann@example.be>", "jan@example.be"]
    assert mail.subject == "Klacht over mijn toelage"
    assert (mail.message_id, mail.in_reply_to, mail.references) == (
        "id1@example.be", ("vorige@example.be",), ("eerste@example.be", "vorige@example.be"))
    assert not any(c in value for _, value in mail.headers)


@pytest.mark.parametrize("control", ["\r", "\n", "\t", "\x0b", "\x0c"], ids=["cr", "lf", "tab", "vt", "ff"])
def test_whitespace_controls_in_a_header_value_become_spaces(control: str) -> None:
    """Encoded (or bare) line breaks and tabs in a header are only whitespace: a space."""
    code = f"={ord(control):02X}"
    mail = parse_message(f"From: =?utf-8?q?Jan{code}Peeters?= <jan@example.be>\r\n"
                         f"Subject: =?utf-8?q?Klacht{code}Bcc:_x@evil.example?=\r\n\r\nGeachte\r\n".encode())
    assert (mail.from_.name, mail.subject) == ("Jan Peeters", "Klacht Bcc: x@evil.example")


def test_a_bounce_keeps_no_control_characters() -> None:
    """The returned Message-ID (looked up) and the diagnostic (stored) of a delivery report
    lose their control characters like any header."""
    raw = load("bounce_our_reply.eml").replace(b"Message-ID: <VO-2026-000123.1@", b"Message-ID: <VO-2026-000123.1\x00@")
    raw = raw.replace(b"Recipient address rejected:", b"Recipient\x00 address\x07 rejected:")
    bounce = parse_message(raw).bounce
    assert bounce is not None and bounce.original_message_id == "VO-2026-000123.1@vlaamseombudsdienst.be"
    assert bounce.diagnostic == "550 5.1.1 <jan.peters@example.be>: Recipient address rejected: User unknown"
