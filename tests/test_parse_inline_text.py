"""A text part marked `Content-Disposition: inline` with a file name is the body when the mail
has no other: some mail programs send a text written in a file that way (the corpus's German
fable, `HasenundFrösche.txt`), and reading it as empty made the `empty-complaint` rule ask the
sender to describe their problem. Next to a body it stays an attachment, and a real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from mailbot.classify import classify
from mailbot.model import Kind
from mailbot.parse import parse_message
from mailbot.route import route
from mailbot.rules import load_rules
from servers import unavailable

FABLE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "multilingual" / "php-mime-mail-parser__m0014.eml"
HEAD = ("From: Anna Schmitz <anna@example.de>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
        "Subject: Beschwerde\r\nMessage-ID: <inline-text@example.de>\r\nMIME-Version: 1.0\r\n")
COMPLAINT = "Sehr geehrte Damen und Herren,\r\n\r\nmein Antrag auf Kindergeld ist seit Monaten offen.\r\n"


def part(ctype: str, body: str, disposition: str = "", name: str = "") -> str:
    lines = [f"Content-Type: {ctype}; charset=utf-8" + (f'; name="{name}"' if name else "")]
    if disposition:
        lines.append(f"Content-Disposition: {disposition}" + (f'; filename="{name}"' if name else ""))
    return "\r\n".join([*lines, "Content-Transfer-Encoding: 8bit", "", body])


def mixed(*parts: str) -> bytes:
    boundary = "b1"
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    return (HEAD + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n' + body).encode()


def test_the_corpus_fable_is_read_and_routed_as_a_complaint():
    """The German text in its named inline part is the body; no attachment is left, and the
    shipped rules no longer take the mail for an empty complaint."""
    if not FABLE.is_file():
        unavailable("the shared corpus is not beside the repository (../shared/corpus)")
    mail = parse_message(FABLE.read_bytes())
    assert mail.text.startswith("Die Hasen und die Frösche") and "\"Halt\", rief nun eben" in mail.text
    assert mail.attachments == ()
    classification = classify(mail)
    assert (classification.kind, classification.language) == (Kind.NEW_COMPLAINT, "de")
    fired = route(mail, classification, load_rules(REPO / "rules")).fired
    assert "empty-complaint" not in fired and fired[-1] == "intake-desk"


@pytest.mark.parametrize("raw", [
    mixed(part("text/plain", COMPLAINT, "inline", "Beschwerde.txt")),
    (HEAD + part("text/plain", COMPLAINT, "inline", "Beschwerde.txt")).encode(),  # not multipart
    mixed(part("text/plain", "", ""), part("text/plain", COMPLAINT, "inline", "Beschwerde.txt")),  # blank body
], ids=["multipart", "single-part", "after-a-blank-body"])
def test_a_named_inline_text_part_is_the_body_when_there_is_no_other(raw):
    mail = parse_message(raw)
    assert "Kindergeld ist seit Monaten offen" in mail.text and mail.attachments == ()


def test_a_named_inline_html_part_is_read_as_text():
    mail = parse_message(mixed(part("text/html", "<p>Mein <b>Kindergeld</b> fehlt.</p>", "inline", "brief.html")))
    assert "Mein Kindergeld fehlt." in mail.text and mail.attachments == ()


def test_beside_a_body_a_named_inline_text_is_an_attachment_that_counts():
    """The citizen wrote a body and attached a text file shown inline: the body is theirs, the
    file an attachment `has_attachment` counts (as an inline PDF); an inline image still does not."""
    mail = parse_message(mixed(part("text/plain", COMPLAINT),
                               part("text/plain", "Rechnung 2026-17: 120 EUR", "inline", "rechnung.txt"),
                               part("application/pdf", "%PDF-1.4", "inline", "bescheid.pdf"),
                               part("image/png", "png", "inline", "logo.png")))
    assert "Rechnung" not in mail.text and "Kindergeld" in mail.text
    assert [(a.filename, a.inline) for a in mail.attachments] == [
        ("rechnung.txt", False), ("bescheid.pdf", False), ("logo.png", True)]


def test_a_text_disposed_as_attachment_is_never_the_body():
    mail = parse_message(mixed(part("text/plain", COMPLAINT, "attachment", "Beschwerde.txt")))
    assert mail.text == "" and [(a.filename, a.inline) for a in mail.attachments] == [("Beschwerde.txt", False)]
