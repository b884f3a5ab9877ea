"""Reply templates: every name in every language, escaping, strictness, fallback, check()."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mailbot.errors import RulesError
from mailbot.render import LANGUAGES, Renderer
from mailbot.template_vars import SAMPLES, sample_context

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
NAMES = ("ack_investigation", "referred_ombudsman", "referred_agency", "direct_answer", "ask_info",
         "multi_addressed", "agency_in_cc", "forward_added", "status", "status_neutral", "undeliverable",
         "receipt_neutral", "closed_case_received", "status_overview")
PREFIXES = {"nl": "Uw klacht", "fr": "Votre plainte", "en": "Your complaint", "de": "Ihre Beschwerde"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def test_shipped_names(renderer: Renderer) -> None:
    """The shipped templates are exactly the names other modules reference, each with a sample context."""
    assert renderer.names() == frozenset(NAMES)
    assert set(SAMPLES) == set(NAMES)


def test_check_is_clean(renderer: Renderer) -> None:
    """check() renders every shipped template in every language without a problem."""
    assert renderer.check(sample_context) == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders(renderer: Renderer, name: str, language: str) -> None:
    """Each template renders in each language with both parts, the office signature and its own language."""
    reply = renderer.render(name, language, sample_context(name))
    assert reply.language == language and reply.template == name
    assert reply.subject_prefix
    assert "Vlaamse Ombudsdienst" in reply.text and "Vlaamse Ombudsdienst" in reply.html
    assert reply.html.startswith("<!DOCTYPE html>") and f'<html lang="{language}">' in reply.html
    assert "{{" not in reply.text and "{%" not in reply.text and "\n\n\n" not in reply.text
    if name not in ("status_neutral", "undeliverable", "receipt_neutral", "status_overview"):
        assert reply.subject_prefix == PREFIXES[language]
        assert "VO-2026-000123" in reply.text and "VO-2026-000123" in reply.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["ack_investigation", "status"])
def test_investigator_details_in_both_parts(renderer: Renderer, name: str, language: str) -> None:
    """The acknowledgment and the status reply carry the reference and the investigator's name, e-mail and phone."""
    reply = renderer.render(name, language, sample_context(name))
    for fact in ("VO-2026-000123", "An Peeters", "an.peeters@vlaamseombudsdienst.be", "+32 2 552 48 00"):
        assert fact in reply.text, fact
        assert fact in reply.html, fact


@pytest.mark.parametrize("language", LANGUAGES)
def test_status_neutral_gives_no_case_details(renderer: Renderer, language: str) -> None:
    """The neutral status answer names neither the case reference nor an investigator."""
    context = {**sample_context("status_neutral"), "investigator": {"name": "An Peeters"}}
    reply = renderer.render("status_neutral", language, context)
    assert "VO-2026-000123" not in reply.text + reply.html
    assert "An Peeters" not in reply.text + reply.html


@pytest.mark.parametrize("name", NAMES)
def test_html_escapes_citizen_input(renderer: Renderer, name: str) -> None:
    """A <script> in the citizen's name or in any text value is escaped in HTML and kept as text in plain text."""
    evil = "<script>alert(1)</script>"
    context = {**sample_context(name), "citizen_name": f"Jan {evil}", "original_subject": evil,
               "answer_text": evil, "questions": [evil], "services": [evil],
               "forwarded": {"sender": evil, "subject": evil}}
    reply = renderer.render(name, "nl", context)
    assert "<script>" not in reply.html
    assert "&lt;script&gt;" in reply.html
    assert f"Jan {evil}" in reply.text


def test_direct_answer_paragraphs(renderer: Renderer) -> None:
    """A multi-paragraph answer becomes HTML paragraphs and line breaks, escaped."""
    context = {**sample_context("direct_answer"), "answer_text": "Eén & twee\ndrie\n\nvier <b>"}
    reply = renderer.render("direct_answer", "nl", context)
    assert "<p>Eén &amp; twee<br>\ndrie</p>\n<p>vier &lt;b&gt;</p>" in reply.html
    assert "Eén & twee\ndrie\n\nvier <b>" in reply.text


def test_status_without_investigator_and_unknown_status(renderer: Renderer) -> None:
    """A status reply works without an investigator and shows a neutral label, never an unknown status code."""
    context = {**sample_context("status"), "investigator": None, "status": "on_hold"}
    reply = renderer.render("status", "en", context)
    assert "not yet been assigned" in reply.text and "on_hold" not in reply.text + reply.html
    assert "Current status: your complaint is being dealt with." in reply.text


def test_optional_parts_disappear(renderer: Renderer) -> None:
    """Empty office phone, agency contact or case reference leave no dangling labels."""
    context = {**sample_context("undeliverable"), "case_ref": "", "reason": "unreadable",
               "office": {**sample_context("undeliverable")["office"], "phone": "", "address": ""}}
    reply = renderer.render("undeliverable", "nl", context)
    assert "Telefoon" not in reply.text and "dossiernummer" not in reply.text.split("Met vriendelijke")[0]
    agency = {**sample_context("referred_agency"),
              "agency": {"name": "Dienst X", "email": "", "phone": "", "website": "", "address": ""}}
    assert "Contactgegevens" not in renderer.render("referred_agency", "nl", agency).text


def test_anonymous_greeting(renderer: Renderer) -> None:
    """Without a citizen name the greeting is the formal neutral one."""
    reply = renderer.render("ack_investigation", "fr", {**sample_context("ack_investigation"), "citizen_name": ""})
    assert reply.text.startswith("Madame, Monsieur,")


@pytest.mark.parametrize("language", ["es", "", "x-klingon", "NL-be"])
def test_dutch_fallback(renderer: Renderer, language: str) -> None:
    """An unknown or malformed language falls back to Dutch; `NL-be` is read as Dutch."""
    reply = renderer.render("ack_investigation", language, sample_context("ack_investigation"))
    assert reply.language == "nl" and reply.subject_prefix == "Uw klacht"


def test_region_codes(renderer: Renderer) -> None:
    """`fr-BE` and `de_DE` pick the French and German templates."""
    assert renderer.render("status", "fr-BE", sample_context("status")).language == "fr"
    assert renderer.render("status", "de_DE", sample_context("status")).language == "de"


def test_missing_language_file_falls_back(copy: Path) -> None:
    """A template without a German file is sent in Dutch, and check() does not complain about it."""
    (copy / "agency_in_cc" / "de.txt.j2").unlink()
    (copy / "agency_in_cc" / "de.html.j2").unlink()
    renderer = Renderer(copy)
    assert renderer.render("agency_in_cc", "de", sample_context("agency_in_cc")).language == "nl"
    assert renderer.check(sample_context) == []


def test_strict_undefined_raises(renderer: Renderer) -> None:
    """A missing variable is an error naming the template file and line, not an empty string."""
    context = sample_context("ack_investigation")
    del context["investigator"]
    with pytest.raises(RulesError, match=r"templates/ack_investigation/nl\.txt\.j2:\d+: .*investigator"):
        renderer.render("ack_investigation", "nl", context)


def test_unknown_template(renderer: Renderer) -> None:
    """An unknown or path-like template name is refused."""
    for name in ("nope", "../etc", "_shared"):
        with pytest.raises(RulesError, match="unknown template"):
            renderer.render(name, "nl", {})


def test_check_reports_missing_variable_with_line(copy: Path) -> None:
    """check() reports an undefined variable as `templates/<name>/<lang>.txt.j2:LINE: message`."""
    path = copy / "status" / "en.txt.j2"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "Oops {{ no_such_variable }}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = Renderer(copy).check(sample_context)
    assert problems == ["templates/status/en.txt.j2:6: 'no_such_variable' is undefined"]


def test_check_reports_syntax_error_with_line(copy: Path) -> None:
    """check() reports a Jinja syntax error with its file and line."""
    path = copy / "ask_info" / "fr.html.j2"
    path.write_text(path.read_text(encoding="utf-8") + "{% if %}\n", encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())
    problems = Renderer(copy).check(sample_context)
    assert len(problems) == 1 and problems[0].startswith(f"templates/ask_info/fr.html.j2:{line}: ")


def test_check_reports_missing_part(copy: Path) -> None:
    """A language with a text part but no HTML part, or a template without Dutch, is a problem."""
    (copy / "forward_added" / "en.html.j2").unlink()
    (copy / "status" / "nl.txt.j2").unlink()
    problems = Renderer(copy).check(sample_context)
    assert "templates/forward_added/en.html.j2:1: file missing" in problems
    assert "templates/status/nl.txt.j2:1: file missing" in problems


def test_sandbox_blocks_python_internals(copy: Path) -> None:
    """A template cannot reach Python internals: the sandbox refuses and check() reports it."""
    path = copy / "direct_answer" / "nl.txt.j2"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "{% block body %}", "{% block body %}{{ office.__class__.__mro__ }}"), encoding="utf-8")
    problems = Renderer(copy).check(sample_context)
    assert len(problems) == 1 and problems[0].startswith("templates/direct_answer/nl.txt.j2:")


def test_edit_is_used_only_once_put_in_use(copy: Path) -> None:
    """An edited file is not rendered until the reload check puts the new set in use (`use`):
    until then the renderer keeps the set it read (the last good one); no new Renderer needed."""
    from mailbot.render import read_templates

    renderer = Renderer(copy)
    assert renderer.render("status_neutral", "en", sample_context("status_neutral")).subject_prefix == "Your request"
    subject = copy / "status_neutral" / "en.subject.j2"
    subject.write_text("Your question\n", encoding="utf-8")
    assert renderer.render("status_neutral", "en", sample_context("status_neutral")).subject_prefix == "Your request"
    renderer.use(read_templates(copy))
    assert renderer.render("status_neutral", "en", sample_context("status_neutral")).subject_prefix == "Your question"


def test_python_error_in_template_reported(copy: Path) -> None:
    """A non-Jinja error inside an expression (adding text to a number) is reported with file and line too."""
    path = copy / "undeliverable" / "de.txt.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("{{ max_size_mb }}", '{{ max_size_mb + "x" }}'),
                    encoding="utf-8")
    problems = Renderer(copy).check(sample_context)
    assert len(problems) == 1 and re.match(r"templates/undeliverable/de\.txt\.j2:\d+: ", problems[0])


def test_status_with_blank_investigator(renderer: Renderer) -> None:
    """An investigator with no e-mail address reads as unassigned rather than an empty contact block."""
    context = {**sample_context("status"), "investigator": {"name": "", "email": "", "phone": ""}}
    assert "nog niet aan een onderzoeker toegewezen" in renderer.render("status", "nl", context).text
