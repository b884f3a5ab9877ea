"""Header sanitising and address checks: nothing a citizen writes can leave our header line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot import sanitize
from mailbot.errors import MailbotError
from mailbot.sanitize import HeaderError


@pytest.mark.parametrize("raw", ["a\r\nBcc: x", "a\rb", "a\nb", "a\u2028b", "a\u2029b", "a\x85b", "a\x0bb", "a\x0cb"])
def test_line_breaks_become_spaces(raw: str) -> None:
    """Every kind of line break becomes one space."""
    assert "\n" not in sanitize.header_text(raw) and "\r" not in sanitize.header_text(raw)
    assert sanitize.header_text(raw).startswith("a ")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u200d", "\u202e", "\u2066",
                                  "\u2069", "\ufeff", "\u00ad", "\u061c", "\u200e"])
def test_controls_are_removed(char: str) -> None:
    """Control, zero-width and bidi characters are removed."""
    assert sanitize.header_text(f"ab{char}cd") == "abcd"


def test_whitespace_collapsed_and_trimmed() -> None:
    """Runs of whitespace (tabs, no-break spaces) collapse to one space and the ends are trimmed."""
    assert sanitize.header_text("  a \t\u00a0 b  ") == "a b"


def test_unicode_kept_and_normalised() -> None:
    """Accented letters survive, composed to NFC."""
    assert sanitize.header_text("Bru\u0308ssel café") == "Brüssel café"


def test_length_bounded() -> None:
    """Subjects and display names are bounded, ending in an ellipsis."""
    subject = sanitize.header_text("woord " * 100)
    assert len(subject) <= sanitize.SUBJECT_MAX and subject.endswith("…")
    assert len(sanitize.display_name("x" * 500)) == sanitize.DISPLAY_NAME_MAX


@pytest.mark.parametrize("raw", ["=?utf-8?q?x=0D=0ABcc:evil?=", "=?UTF-8?B?eA0KQmNjOiBldmls?=",
                                 "hallo =?utf-8?q?x=0ABcc:evil?= daar"])
def test_encoded_words_are_decoded_and_defanged(raw: str) -> None:
    """Encoded words are decoded and cleaned, so no parser can turn them into a line break later."""
    text = sanitize.header_text(raw)
    assert "=?" not in text and "\n" not in text and "\r" not in text
    assert "Bcc" in text


def test_nested_encoded_words() -> None:
    """An encoded word that decodes to another encoded word is still neutralised."""
    inner = "=?utf-8?q?x=0D=0ABcc:evil?="
    outer = "=?utf-8?b?" + __import__("base64").b64encode(inner.encode()).decode() + "?="
    assert "=?" not in sanitize.header_text(outer)


@given(st.text())
def test_never_a_line_break(raw: str) -> None:
    """Whatever the input, the output is one line without control characters."""
    text = sanitize.header_text(raw)
    assert not any(ch in text for ch in "\r\n\x00\u2028\u2029\x85")
    assert "=?" not in text and len(text) <= sanitize.SUBJECT_MAX


@pytest.mark.parametrize("address", ["jan@example.org", "Jan.Peeters+klacht@Example.ORG", "a@b-c.example.be"])
def test_good_addresses(address: str) -> None:
    """Ordinary addresses pass, with the domain lower-cased."""
    local, _, domain = sanitize.check_address(address).rpartition("@")
    assert domain == domain.lower() and local == address.rpartition("@")[0]


def test_idn_domain() -> None:
    """A non-ASCII domain is converted to its ASCII form."""
    assert sanitize.check_address("jan@bücher.example") == "jan@xn--bcher-kva.example"


@pytest.mark.parametrize("address", ["", "jan", "@example.org", "jan@", "jan@@example.org", "jan@localhost",
                                     "jan@example.org\r\nBcc: x@evil.org", "jan @example.org", "<jan@example.org>",
                                     "jan@example.org, x@evil.org", "a..b@example.org", ".a@example.org",
                                     "jan@-example.org", "\"jan\"@example.org", "x" * 65 + "@example.org"])
def test_bad_addresses(address: str) -> None:
    """Anything that is not one plain addr-spec is refused with a HeaderError (a MailbotError)."""
    with pytest.raises(HeaderError):
        sanitize.check_address(address)
    assert not sanitize.is_valid_address(address)
    assert issubclass(HeaderError, MailbotError)


def test_message_ids() -> None:
    """Message-IDs get angle brackets; ones with spaces, brackets or controls are dropped."""
    assert sanitize.message_id("abc@x.org") == "<abc@x.org>"
    assert sanitize.message_id(" <abc@x.org> ") == "<abc@x.org>"
    for bad in ("", "<>", "a b@x", "a\r\nBcc: x", "<a<b@x>", "a\x00b@x", "=?utf-8?q?x=0ABcc:y?=@x"):
        assert sanitize.message_id(bad) is None


def test_references_bounded_and_deduplicated() -> None:
    """References keep the thread root and the newest ids, without repeats, parent last."""
    ids = [f"m{i}@x" for i in range(50)] + ["m3@x", "bad id"]
    refs = sanitize.references(ids, "parent@x", limit=5)
    assert refs == ["<m0@x>", "<m48@x>", "<m49@x>", "<m3@x>", "<parent@x>"]


def test_domain_check() -> None:
    """Only plain host names are accepted for Message-IDs."""
    assert sanitize.check_domain("Ombuds.Example.be") == "ombuds.example.be"
    with pytest.raises(HeaderError):
        sanitize.check_domain("evil>\r\nBcc: x")
