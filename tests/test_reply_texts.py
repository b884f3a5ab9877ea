"""What the citizen reads (audit of the replies, findings 5, 8-13): the status reply agrees with
the case, no blank investigator lines, names instead of raw addresses, advice that fits the
reason, readable subjects, no greeting of a mailbox label, and the language fixes. Every
change in all four languages, and the HTML part says what the text part says."""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import select

from conftest import base_config, complaint
from mailbot.compose import build_subject, compose_reply, greeting_name
from mailbot.config import settings_from_mapping
from mailbot.db import Case, Outbox
from mailbot.decide import RoutingOutcome, decide
from mailbot.model import (Address, Classification, Facts, ForwardedMessage, Investigator, Kind, Mail,
                           Match, Reply)
from mailbot.pipeline import process_files
from mailbot.render import LANGUAGES, Renderer
from mailbot.replies import reply_context
from mailbot.route import Outcome
from mailbot.template_vars import sample_context

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
QUICK = tuple(o for o in get_args(Outcome) if o != "investigation")
NO_ONE = {"name": "", "email": "", "phone": ""}
# The sentences a quick-service or closed case must not get: the investigation's promises.
PROMISES = {"nl": ("Zodra er nieuws is", "nog niet aan een onderzoeker"),
            "fr": ("Dès que nous avons du nouveau", "pas encore été attribué"),
            "en": ("As soon as there is news", "not yet been assigned"),
            "de": ("Sobald es Neues gibt", "noch keiner Sachbearbeiterin")}
NOW = {"nl": "Stand van zaken:", "fr": "État du dossier\u00a0:", "en": "Current status:", "de": "Aktueller Stand:"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def render(renderer: Renderer, name: str, language: str, **extra: Any):
    return renderer.render(name, language, {**sample_context(name), **extra})


def flat(text: str) -> str:
    """Text with its line breaks and HTML entities undone, for phrase look-ups."""
    return " ".join(html_lib.unescape(text).replace("\xa0", " ").split())


def body(text: str) -> str:
    """The text part without greeting and signature (the signature names the office)."""
    return text.split("\n\n", 1)[1].rsplit("\n\n", 3)[0]


def words(reply) -> tuple[list[str], list[str]]:
    """The word sequences of the text part and of the visible HTML."""
    visible = re.sub(r"(?s)<head>.*?</head>|<[^>]+>", " ", reply.html)
    return [w for w in reply.text.split() if w != "-"], html_lib.unescape(visible).split()


def same_words(reply) -> None:
    text, html = words(reply)
    # <strong>REF</strong>. puts a space before the full stop in the HTML words: not a difference.
    assert [w.rstrip(".") for w in text] == [w for w in (w.rstrip(".") for w in html) if w], reply.template


# ------------------------------------------------------------------ 5: status agrees with the case

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("outcome", QUICK)
def test_status_of_a_quick_service_case_says_what_was_done(renderer, outcome, language):
    """An open case handled by quick service is not "being investigated, we will contact you": the reply
    says what was done (each outcome its own text), names no investigator, and both parts agree."""
    reply = render(renderer, "status", language, status="open", outcome=outcome, investigator=NO_ONE)
    investigation = render(renderer, "status", language, status="open", outcome="investigation",
                           investigator=NO_ONE)
    assert NOW[language] in reply.text
    for promise in PROMISES[language]:
        assert promise not in flat(reply.text) and promise not in flat(reply.html)
        assert promise in flat(investigation.text)
    others = {o: body(render(renderer, "status", language, status="open", outcome=o).text) for o in QUICK}
    assert len(set(others.values())) == len(QUICK)  # one text per outcome
    same_words(reply)


@pytest.mark.parametrize("language", LANGUAGES)
def test_status_of_a_quick_service_case_moved_on_follows_the_status(renderer, language):
    """Once staff move the case on (e.g. waiting for the citizen), the status label is what counts."""
    reply = render(renderer, "status", language, status="waiting_citizen", outcome="ask_info")
    assert "An Peeters" in reply.text and PROMISES[language][0] in flat(reply.text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_status_of_a_closed_case_promises_nothing(renderer, language):
    """A closed case: no investigator paragraph and no "we will contact you when there is news"."""
    reply = render(renderer, "status", language, status="closed")
    for part in (flat(reply.text), flat(reply.html)):
        assert "An Peeters" not in part and "an.peeters@" not in part
        assert PROMISES[language][0] not in part
    same_words(reply)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("status", ["on_hold", "referred", "weird_CODE_42"])
def test_unknown_status_gets_a_neutral_label_not_the_code(renderer, status, language):
    """A status value the template does not know is never shown: a neutral label is."""
    reply = render(renderer, "status", language, status=status)
    assert status not in reply.text and status not in reply.html
    line = next(x for x in reply.text.splitlines() if x.startswith(NOW[language]))
    assert len(line) > len(NOW[language]) + 5
    same_words(reply)


def test_german_status_labels_start_with_a_capital(renderer):
    """After "Aktueller Stand:" a full sentence starts with a capital letter."""
    for status in ("open", "investigating", "waiting_agency", "waiting_citizen", "closed", "x"):
        line = next(x for x in render(renderer, "status", "de", status=status).text.splitlines()
                    if x.startswith("Aktueller Stand:"))
        assert line.removeprefix("Aktueller Stand: ")[0].isupper(), line


def test_english_status_says_is_being_handled_by(renderer):
    """English: "Your complaint is being handled by", not "is handled by"."""
    text = " ".join(render(renderer, "status", "en").text.split())
    assert "Your complaint is being handled by An Peeters" in text
    assert "is handled by" not in text


# ------------------------------------------------------------------ 8: nobody assigned

@pytest.mark.parametrize("language", LANGUAGES)
def test_acknowledgment_without_investigator_has_no_blank_lines(renderer, language):
    """With nobody assigned there are no empty name/e-mail lines: the reply says one will be assigned
    and that we will say who; both parts agree."""
    reply = render(renderer, "ack_investigation", language, investigator=NO_ONE)
    assert not re.search(r"E-Mail:\s*$|E-mail\s*:\s*$|^\s*(onderzoekt|examine|is investigating|bearbeitet)",
                         reply.text, re.MULTILINE | re.IGNORECASE)
    assert "mailto:" not in reply.html.split("<p style")[0] and "<strong></strong>" not in reply.html
    told = {"nl": "laten u weten wie dat is", "fr": "nous vous ferons savoir de qui il s'agit",
            "en": "let you know who it is", "de": "teilen Ihnen mit, wer das ist"}[language]
    assert told in " ".join(reply.text.split()) and told in " ".join(html_lib.unescape(reply.html).split())
    assert told not in " ".join(render(renderer, "ack_investigation", language).text.split())
    same_words(reply)


def _decision(*, investigator: Investigator | None, outcome: str = "investigation"):
    citizen = Address("An De Smet", "an.desmet@example.be")
    mail = Mail(message_id="m", subject="Klacht", from_=citizen, text="Mijn klacht.")
    return decide(mail, Classification(kind=Kind.NEW_COMPLAINT, language="nl", facts=Facts()),
                  Match(None, None), recipient=citizen, routing=RoutingOutcome(outcome),
                  investigator=investigator)


def test_no_investigator_flags_the_case_for_triage():
    """An investigation nobody could be assigned to (everyone absent) is flagged needs_triage, with
    the reason; with an investigator, or for a referral, it is not."""
    alone = _decision(investigator=None)
    assert "needs_triage" in alone.flags and [r.template for r in alone.replies] == ["ack_investigation"]
    assert any("no investigator" in reason for reason in alone.reasons)
    someone = Investigator(name="An Peeters", email="an.peeters@vlaamseombudsdienst.example", phone="")
    assert "needs_triage" not in _decision(investigator=someone).flags
    assert "needs_triage" not in _decision(investigator=None, outcome="refer_agency").flags


# ------------------------------------------------------------------ 9, 12: context from the mail

SETTINGS = settings_from_mapping(base_config())


def _context(*, to: Address, forwarded_sender: Address | None = None, case: Case | None = None,
             template: str = "forward_added") -> dict[str, Any]:
    forwarded = (ForwardedMessage(sender=forwarded_sender, date=None, subject="Uw dossier", body="x"),)
    mail = Mail(message_id="m", subject="Fwd: Uw dossier", from_=to,
                forwarded=forwarded if forwarded_sender else ())
    return reply_context(SETTINGS, case, Reply(template, to, "nl", mail.subject), mail)


def test_forwarded_sender_is_shown_by_name_or_address(renderer):
    """forward_added names the agency ("Klantendienst De Lijn"), not "Name <address>"; the bare
    address when the sender has no name."""
    citizen = Address("Sofie Maes", "sofie@example.be")
    named = _context(to=citizen, forwarded_sender=Address("Klantendienst De Lijn", "klantendienst@delijn.be"))
    assert named["forwarded"]["sender"] == "Klantendienst De Lijn"
    nameless = _context(to=citizen, forwarded_sender=Address("", "klantendienst@delijn.be"))
    assert nameless["forwarded"]["sender"] == "klantendienst@delijn.be"
    for language in LANGUAGES:
        reply = renderer.render("forward_added", language, {**sample_context("forward_added"), **named})
        assert "(Klantendienst De Lijn)" in " ".join(reply.text.split()) and "&lt;" not in reply.html  # rewrapped
        assert "delijn.be" not in reply.text and "delijn.be" not in reply.html


def test_status_context_carries_the_case_outcome_and_status():
    """The status reply is given the case's outcome (how the first reaction went) and status."""
    case = Case(ref="VO-2026-000007", status="open", citizen_email="lotte@example.be", outcome="refer_agency",
                flags=[], also_sent_to=[])
    context = _context(to=Address("Lotte", "lotte@example.be"), case=case, template="status")
    assert (context["outcome"], context["status"]) == ("refer_agency", "open")
    assert _context(to=Address("", "x@example.be"), template="status")["outcome"] == "investigation"


@pytest.mark.parametrize("name, email, greeted", [
    ("Info", "info@example.org", ""),
    ("Scanner", "scan-3@kantoor.example.be", ""),
    ("SECRETARIAAT", "gemeente@example.be", ""),
    ("No-Reply", "x@example.be", ""),
    ("noreply", "robot@example.be", ""),
    ("Contact", "c@example.be", ""),
    ("office", "o@example.be", ""),
    ("jpeeters", "jpeeters@example.be", ""),
    ("Sofie.Maes", "sofie.maes@example.be", ""),
    ("Sofie Maes", "sofie.maes@example.be", "Sofie Maes"),
    ("Sofie", "sofie.maes@example.be", "Sofie"),
    ("Info Desk Maes", "info@example.be", "Info Desk Maes"),  # more than one word: a name
    ("", "a@example.be", ""),
])
def test_greeting_name(name, email, greeted):
    """A one-word display name equal to the local part, or a role word, is a mailbox label."""
    assert greeting_name(Address(name, email)) == greeted


@pytest.mark.parametrize("language, neutral", [("nl", "Geachte mevrouw, geachte heer,"), ("fr", "Madame, Monsieur,"),
                                               ("en", "Dear Sir or Madam,"), ("de", "Sehr geehrte Damen und Herren,")])
def test_mailbox_label_gets_the_neutral_greeting(renderer, language, neutral):
    """"Info <info@…>" is greeted "Geachte mevrouw, geachte heer,", never "Beste Info,"."""
    context = _context(to=Address("Info", "info@example.org"), template="undeliverable")
    reply = renderer.render("undeliverable", language, context)
    assert reply.text.startswith(neutral) and f"<p>{neutral}</p>" in reply.html
    person = _context(to=Address("Sofie Maes", "sofie@example.be"), template="undeliverable")
    assert "Sofie Maes," in renderer.render("undeliverable", language, person).text.splitlines()[0]


# ------------------------------------------------------------------ 10: unreadable vs too large

@pytest.mark.parametrize("language, advice, size_advice", [
    ("nl", "met de tekst in de e-mail zelf en bijlagen als PDF, Word of foto (JPG)", "kleinere of minder bijlagen"),
    ("fr", "avec le texte dans l'e-mail même et les pièces jointes en PDF, Word ou photo (JPG)",
     "pièces jointes plus petites"),
    ("en", "with the text in the e-mail itself and attachments as PDF, Word or photo (JPG)",
     "smaller or fewer attachments"),
    ("de", "mit dem Text in der E-Mail selbst und Anhängen als PDF, Word-Datei oder Foto (JPG)",
     "kleineren oder weniger Anhängen"),
])
def test_undeliverable_advice_fits_the_reason(renderer, language, advice, size_advice):
    """Unreadable mail gets advice for unreadable mail; "smaller attachments" stays for too large."""
    unreadable = render(renderer, "undeliverable", language, reason="unreadable")
    too_large = render(renderer, "undeliverable", language, reason="too_large")
    for reply in (unreadable, too_large):
        same_words(reply)
    flat = " ".join(unreadable.text.split())
    assert advice in flat and advice in " ".join(html_lib.unescape(unreadable.html).split())
    assert size_advice not in flat and size_advice not in unreadable.html
    assert size_advice in " ".join(too_large.text.split()) and advice not in " ".join(too_large.text.split())


# ------------------------------------------------------------------ 11: subjects without a reference

@pytest.mark.parametrize("language, subject", [("nl", "Uw bericht: Scan van mijn dossier"),
                                               ("fr", "Votre message : Scan van mijn dossier"),
                                               ("en", "Your message: Scan van mijn dossier"),
                                               ("de", "Ihre Nachricht: Scan van mijn dossier")])
def test_subject_without_reference_is_prefix_colon_subject(renderer, language, subject):
    """Without a case reference the subject reads "<prefix>: <their subject>" in every language
    (French puts a space before the colon); a reply to it does not double the prefix."""
    rendered = render(renderer, "undeliverable", language, case_ref="")
    composed = compose_reply(
        rendered=rendered, from_address="klachten@vlaamseombudsdienst.be", from_name="Vlaamse Ombudsdienst",
        to=Address("", "jan@example.org"), reply_to=None, case_ref="", original_subject="Scan van mijn dossier",
        in_reply_to=None, references=[], message_id="<abc@vlaamseombudsdienst.be>",
        date=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert message_from_bytes(bytes(composed), policy=default)["Subject"] == subject
    again = build_subject(rendered.subject_prefix, "", f"Re: {subject}", language=language)
    assert again == subject


def test_subject_with_reference_is_unchanged():
    """With a reference the subject stays `<prefix> [REF] <subject>`."""
    assert build_subject("Uw klacht", "VO-2026-000001", "Scan", language="nl") == "Uw klacht [VO-2026-000001] Scan"


# ------------------------------------------------------------------ 13: language fixes

@pytest.mark.parametrize("name, language, extra, wanted, unwanted", [
    ("agency_in_cc", "fr", {}, "Nous nous permettons de vous demander", "Une demande amicale"),
    ("referred_ombudsman", "fr", {"we_forwarded": True}, "Vous n'avez pas besoin de l'introduire à nouveau",
     "ne devez pas"),
    ("multi_addressed", "nl", {}, "moeten andere klagers langer wachten", "ook voor andere klagers"),
    ("multi_addressed", "fr", {}, "d'autres plaignants doivent attendre plus longtemps", "y compris pour"),
    ("multi_addressed", "fr", {}, "même si ce n'est qu'après un premier examen qu'il apparaît", "même s'il n'apparaît"),
    ("multi_addressed", "de", {}, "andere Beschwerdeführer müssen länger", "auch für andere"),
    ("multi_addressed", "en", {}, "other people have to wait longer", "time is lost"),
    ("referred_agency", "de", {}, "können wir als Ombudsdienst vermitteln", "kann der Ombudsdienst"),
    ("referred_ombudsman", "de", {"we_forwarded": True}, "diese Ombudsstelle wird sich", "diese Stelle wird"),
])
def test_language_fixes(renderer, name, language, extra, wanted, unwanted):
    """Calques and slips a native speaker would notice are gone, in the text and the HTML part."""
    reply = render(renderer, name, language, **extra)
    text, html = " ".join(reply.text.split()), " ".join(html_lib.unescape(reply.html).replace("\xa0", " ").split())
    assert wanted in text and wanted in html
    assert unwanted not in text and unwanted not in html


def test_german_uses_ombudsstelle_for_others_only(renderer):
    """German: "Ombudsdienst" is us, "Ombudsstelle" another service; never the other way round."""
    us = render(renderer, "referred_agency", "de").text
    others = render(renderer, "referred_ombudsman", "de", we_forwarded=True).text
    assert "Ombudsstelle" not in us
    assert "Ombudsdienst" not in body(others)


# ------------------------------------------------------------------ end to end, through the pipeline

@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(db_url=sqlite_url)


def _texts(app) -> list[tuple[str, str, str]]:
    with app.sessions() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        mimes = [(row.template, bytes(row.mime)) for row in rows]
    out = []
    for template, mime in mimes:
        message = message_from_bytes(mime, policy=default)
        out.append((template, message["Subject"], message.get_body(("plain",)).get_content()))
    return out


@pytest.mark.parametrize("change, expected, absent", [
    ({"outcome": "refer_agency"}, "daarom hebben wij u naar die dienst doorverwezen", "Zodra er nieuws is"),
    ({"status": "closed"}, "uw dossier is afgesloten", "Zodra er nieuws is"),
    ({"status": "on_hold_by_staff"}, "uw dossier is in behandeling", "on_hold_by_staff"),
])
def test_status_reply_through_the_pipeline_agrees_with_the_case(app, change, expected, absent):
    """A status request on a case that was referred, closed, or has a status code the templates do
    not know gets a reply that agrees with the case (the case's columns reach the template)."""
    process_files(app.intake, [complaint()])
    with app.sessions.begin() as session:
        case = session.execute(select(Case)).scalar_one()
        for key, value in change.items():
            setattr(case, key, value)
        ref = case.ref
    question = "Goedendag,\n\nWat is de stand van zaken van mijn klacht?\n\nJan Peeters"
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", body=question)])
    template, subject, text = _texts(app)[-1]
    assert template == "status" and ref in subject
    flat = " ".join(text.split())
    assert expected in flat and absent not in flat


def test_mailbox_label_sender_is_greeted_neutrally_through_the_pipeline(app):
    """A complaint from "Info <info@…>" is acknowledged "Geachte mevrouw, geachte heer,"."""
    process_files(app.intake, [complaint(sender="info@example.org", name="Info")])
    [(template, _, text)] = _texts(app)
    assert template == "ack_investigation"
    assert text.startswith("Geachte mevrouw, geachte heer,") and "Beste Info" not in text
