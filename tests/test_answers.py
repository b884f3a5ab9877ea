"""A direct answer carries its text, and ask_info its questions, in every reply language.

From the rule (`answer_text`, `questions` in routing.yaml) through routing into the reply's
template context, rendered in the citizen's language; `rules check` refuses an answer or an
ask_info without them, and the templates never announce an answer or a list that is not there.
"""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import REPO, base_config, complaint
from mailbot.cli import cli
from mailbot.db import Outbox
from mailbot.model import Address, Classification, Kind, Mail
from mailbot.pipeline import process_files
from mailbot.render import LANGUAGES, Renderer
from mailbot.route import describe, route
from mailbot.routing_stage import RoutingStage
from mailbot.rules import load_rules, rules_from_texts
from mailbot.rules_check import check_contents
from mailbot.template_vars import sample_context

SHIPPED = REPO / "rules"
TEMPLATES = REPO / "templates"
PEOPLE = "teams: [{id: intake, name: Intake}]\ninvestigators: []\n"
ANSWER = "answer_text: {nl: Antwoord., fr: Réponse., en: Answer., de: Antwort.}"
QUESTIONS = "questions: {nl: [Wanneer], fr: [Quand], en: [When], de: [Wann]}"
NEIGHBOURS_FR = ("Bonjour,\n\nDepuis des mois, j'ai un conflit de voisinage à cause de la haie entre nos "
                 "jardins. Mon voisin refuse de la tailler et la situation devient impossible. "
                 "Que puis-je faire ?\n\nCordialement,\nClaire Lambert")


def problems(routing: str) -> list[str]:
    contents = {"services.yaml": b"services: []\n", "routing.yaml": routing.encode(), "investigators.yaml": PEOPLE.encode()}
    return check_contents(contents, label="rules",
                          template_names=frozenset({"direct_answer", "ask_info", "ack_investigation"})).problems


def ruleset(then: str):
    return rules_from_texts(investigators=PEOPLE, routing=f"rules:\n  - {{name: r, then: {{{then}}}}}\n")


def mail(text: str = "Mijn klacht.") -> Mail:
    return Mail(message_id="m", subject="Klacht", from_=Address("Burger", "burger@example.org"),
                to=(Address("", "klachten@office.example"),), text=text)


def new(language: str = "nl") -> Classification:
    return Classification(kind=Kind.NEW_COMPLAINT, language=language)


# ------------------------------------------------------------------------------ rules check

def test_check_refuses_an_answer_without_its_text_at_its_line() -> None:
    """`answer: direct_answer` alone is refused at the `answer` line: the reply would announce nothing."""
    routing = "rules:\n  - name: buren\n    then:\n      answer: direct_answer\n"
    assert problems(routing) == [
        "rules/routing.yaml:4: rule 'buren': answer 'direct_answer' has no answer_text: the reply would announce "
        "an answer and give none (add answer_text: {nl: …, fr: …, en: …, de: …})"]


def test_check_refuses_ask_info_without_questions_at_its_line() -> None:
    """`ask_info: true` alone is refused at its line: the reply would not say what is needed."""
    routing = "rules:\n  - name: leeg\n    then:\n      tags: [x]\n      ask_info: true\n"
    assert problems(routing) == [
        "rules/routing.yaml:5: rule 'leeg': ask_info has no questions: the reply would not say what we need "
        "(add questions: {nl: […], fr: […], en: […], de: […]})"]


def test_check_wants_every_reply_language() -> None:
    """A text or a question list missing a language is refused, naming the language and why."""
    routing = """rules:
  - name: r
    then:
      answer: direct_answer
      answer_text: {nl: Antwoord., en: Answer., de: Antwort.}
  - name: s
    then:
      ask_info: true
      questions:
        nl: [Wanneer]
        fr: [Quand]
        en: [When]
"""
    assert problems(routing) == [
        "rules/routing.yaml:5: rule 'r': missing 'fr' in then.answer_text "
        "(every reply language is needed: nl, fr, en and de)",
        "rules/routing.yaml:9: rule 's': missing 'de' in then.questions "
        "(every reply language is needed: nl, fr, en and de)",
    ]


def test_check_refuses_blank_texts_empty_lists_and_unknown_languages() -> None:
    """A blank answer, an empty question list, a blank question and a misspelt language are each refused."""
    routing = """rules:
  - name: r
    then:
      answer: direct_answer
      answer_text: {nl: '  ', fr: Réponse., en: Answer., de: Antwort., es: Respuesta.}
  - name: s
    then:
      ask_info: true
      questions: {nl: [], fr: [' '], en: [When], de: [Wann]}
"""
    assert problems(routing) == [
        "rules/routing.yaml:5: rule 'r': then.answer_text.nl: must not be empty",
        "rules/routing.yaml:5: rule 'r': unknown language 'es'",
        "rules/routing.yaml:9: rule 's': then.questions.nl: Tuple should have at least 1 item after validation, not 0",
        "rules/routing.yaml:9: rule 's': then.questions.fr: must not be empty",
    ]


def test_check_refuses_texts_without_their_outcome_and_templates_without_their_text() -> None:
    """answer_text needs `answer`, questions need `ask_info`, and the answer/ask_info templates need their text."""
    routing = f"""rules:
  - name: a
    when: {{language: [fr]}}
    then: {{{ANSWER}}}
  - name: b
    when: {{language: [de]}}
    then: {{{QUESTIONS}}}
  - name: c
    when: {{language: [en]}}
    then: {{template: direct_answer}}
  - name: d
    when: {{language: [nl]}}
    then: {{template: ask_info}}
"""
    assert problems(routing) == [
        "rules/routing.yaml:4: rule 'a': answer_text without 'answer': add answer: direct_answer",
        "rules/routing.yaml:7: rule 'b': questions without 'ask_info: true'",
        "rules/routing.yaml:10: rule 'c': template 'direct_answer' prints answer text, which this rule does not "
        "give: use answer: direct_answer with answer_text instead",
        "rules/routing.yaml:13: rule 'd': template 'ask_info' prints questions, which this rule does not give: "
        "use ask_info: true with questions instead",
    ]


def test_rules_check_command_refuses_the_old_answer_form(tmp_path: Path) -> None:
    """`mailbot rules check` exits 1 on shipped rules whose answer lost its text."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name in ("services.yaml", "investigators.yaml"):
        (rules_dir / name).write_bytes((SHIPPED / name).read_bytes())
    shipped = (SHIPPED / "routing.yaml").read_text(encoding="utf-8")
    start, end = shipped.index("      answer_text:\n"), shipped.index("      tags: [snelle-dienstverlening, buiten")
    (rules_dir / "routing.yaml").write_text(shipped[:start] + shipped[end:], encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "check", "--rules-dir", str(rules_dir), "--templates-dir",
                                      str(TEMPLATES)], obj={})
    assert result.exit_code == 1
    assert re.search(r"routing\.yaml:\d+: rule 'neighbour-dispute': answer 'direct_answer' has no answer_text",
                     result.output)


def test_answer_text_is_joined_into_paragraphs_and_questions_into_one_line() -> None:
    """Lines of one paragraph are joined (the reply wraps), blank lines and '- ' items are kept."""
    routing = """rules:
  - name: r
    then:
      answer: direct_answer
      answer_text:
        nl: |
          Eerste regel
          loopt door.


          - een punt
            met vervolg
          - nog een punt
        fr: Réponse.
        en: Answer.
        de: Antwort.
"""
    rule = rules_from_texts(investigators=PEOPLE, routing=routing).routing[0]
    assert rule.then.answer_text is not None
    assert rule.then.answer_text.nl == "Eerste regel loopt door.\n\n- een punt met vervolg\n- nog een punt"
    questions = ruleset("ask_info: true, questions: {nl: ['  wat  er\n    gebeurde '], fr: [a], en: [b], de: [c]}")
    assert questions.routing[0].then.questions.nl == ("wat er gebeurde",)  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ routing

def test_route_carries_the_answer_and_the_questions() -> None:
    """The routing verdict holds the rule's texts for its outcome, and the trace shows them."""
    answered = route(mail(), new(), ruleset(f"answer: direct_answer, {ANSWER}"))
    assert answered.answer_text is not None and answered.answer_text.fr == "Réponse."
    assert answered.questions is None
    assert "    → answer with direct_answer: Antwoord." in describe(answered)
    asked = route(mail(), new(), ruleset(f"ask_info: true, {QUESTIONS}"))
    assert asked.questions is not None and asked.questions.de == ("Wann",) and asked.answer_text is None
    assert "    → ask for more information: Wanneer" in describe(asked)


def test_a_later_outcome_drops_the_earlier_answer() -> None:
    """When a later rule changes the outcome, the earlier rule's answer is not sent with it."""
    routing = f"""rules:
  - {{name: a, then: {{answer: direct_answer, {ANSWER}}}, continue: true}}
  - {{name: b, then: {{ask_info: true, {QUESTIONS}}}}}
"""
    result = route(mail(), new(), rules_from_texts(investigators=PEOPLE, routing=routing))
    assert (result.outcome, result.answer_text, result.questions is not None) == ("ask_info", None, True)


@pytest.mark.parametrize("language", LANGUAGES)
def test_template_context_is_in_the_reply_language(tmp_path: Path, language: str) -> None:
    """The reply's context holds the answer and the questions in the citizen's language."""
    stage = RoutingStage(tmp_path, ruleset=ruleset(f"answer: direct_answer, {ANSWER}"))
    routing = route(mail(), new(language), stage.ruleset)
    expected = {"nl": "Antwoord.", "fr": "Réponse.", "en": "Answer.", "de": "Antwort."}[language]
    assert stage.template_context(routing, language)["answer_text"] == expected
    stage = RoutingStage(tmp_path, ruleset=ruleset(f"ask_info: true, {QUESTIONS}"))
    routing = route(mail(), new(language), stage.ruleset)
    expected_q = {"nl": ["Wanneer"], "fr": ["Quand"], "en": ["When"], "de": ["Wann"]}[language]
    assert stage.template_context(routing, language)["questions"] == expected_q


# ------------------------------------------------------------------------------ templates

ANNOUNCES = {"nl": "Hieronder vindt u ons antwoord", "fr": "Voici notre réponse",
             "en": "find our answer below", "de": "Unsere Antwort finden Sie unten"}
ANNOUNCES_TEXT = {"nl": "Hieronder vindt u ons antwoord", "fr": "Voici notre réponse",
                  "en": "find our answer below", "de": "Antwort finden Sie unten"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("empty", ["", "  \n "])
def test_direct_answer_without_text_announces_no_answer(renderer: Renderer, language: str, empty: str) -> None:
    """Without an answer text neither part says that an answer follows; the case reference stays."""
    reply = renderer.render("direct_answer", language, {**sample_context("direct_answer"), "answer_text": empty})
    assert ANNOUNCES[language] not in reply.html and ANNOUNCES_TEXT[language] not in reply.text.replace("\n", " ")
    assert "VO-2026-000123" in reply.text and "VO-2026-000123" in reply.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("questions", [[], ["", "  "]])
def test_ask_info_never_shows_an_empty_list(renderer: Renderer, language: str, questions: list[str]) -> None:
    """Without questions the template asks its own general ones: the list is never empty, in either part."""
    reply = renderer.render("ask_info", language, {**sample_context("ask_info"), "questions": questions})
    items = [line for line in reply.text.splitlines() if line.startswith("  - ")]
    assert len(items) == 3 and all(len(line) > 10 for line in items)
    assert reply.html.count("<li>") == 3 and "<li></li>" not in reply.html


def test_long_answers_and_questions_are_wrapped_in_plain_text_only(renderer: Renderer) -> None:
    """The plain-text part wraps a long answer and long questions; HTML keeps whole paragraphs."""
    long = " ".join(["woord"] * 60)
    context = {**sample_context("direct_answer"), "answer_text": f"{long}\n\n{long}"}
    reply = renderer.render("direct_answer", "nl", context)
    assert max(len(line) for line in reply.text.splitlines()) <= 76
    assert f"<p>{long}</p>\n<p>{long}</p>" in reply.html
    asked = renderer.render("ask_info", "nl", {**sample_context("ask_info"), "questions": [long]})
    item = asked.text.split("  - ", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(item) > 1 and all(line.startswith("    ") for line in item[1:])
    assert max(len(line) for line in asked.text.splitlines()) <= 76


def test_editor_schema_requires_every_language() -> None:
    """The shipped JSON Schema offers answer_text and questions and requires all four languages."""
    schema = json.loads((SHIPPED / "schema" / "routing.schema.json").read_text(encoding="utf-8"))
    actions = schema["$defs"]["Actions"]["properties"]
    assert {"answer_text", "questions"} <= set(actions)
    for name in ("AnswerText", "Questions"):
        assert schema["$defs"][name]["required"] == ["nl", "fr", "en", "de"]
        assert schema["$defs"][name]["additionalProperties"] is False


# ------------------------------------------------------------------------------ shipped rules

WORDS = {"nl": ("vrederechter", "buurtbemiddeling"), "fr": ("juge de paix", "médiation de quartier"),
         "en": ("justice of the peace", "mediation"), "de": ("Friedensrichter", "Nachbarschaftsmediation")}


def test_shipped_neighbour_answer_and_empty_complaint_questions_exist_in_every_language() -> None:
    """The shipped answer points to the justice of the peace and local mediation; the questions ask what happened."""
    rules = {r.name: r for r in load_rules(SHIPPED).routing}
    answer = rules["neighbour-dispute"].then.answer_text
    questions = rules["empty-complaint"].then.questions
    assert answer is not None and questions is not None
    for language in LANGUAGES:
        text = answer.in_language(language)
        assert all(word in text for word in WORDS[language]), language
        assert "\n\n" in text and len(questions.in_language(language)) >= 4


@pytest.mark.parametrize(("language", "body", "expected"), [
    ("nl", "Dag,\n\nIk heb al maanden een burenruzie over de haag. Mijn buurman wil niet snoeien.\n\nJef",
     "vrederechter"),
    ("fr", NEIGHBOURS_FR, "juge de paix"),
])
def test_pipeline_sends_the_answer_in_the_citizens_language(make_app, sqlite_url, language: str, body: str,
                                                             expected: str) -> None:
    """Through the real pipeline: the neighbour-dispute reply contains the shipped answer, in the mail's language."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint(subject="Burenruzie", body=body)])
    with app.sessions() as session:
        [(template, mime)] = session.execute(select(Outbox.template, Outbox.mime)).all()
    message = message_from_bytes(mime, policy=default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert (template, message["Content-Language"]) == ("direct_answer", language)
    assert ANNOUNCES_TEXT[language] in text.replace("\n", " ")
    assert expected in text.replace("\n", " ") and expected in html


def test_pipeline_asks_the_shipped_questions_for_an_empty_complaint(make_app, sqlite_url) -> None:
    """Through the real pipeline: an empty complaint gets the ask_info reply with the rule's questions."""
    app = make_app(db_url=sqlite_url)
    raw = (b"From: Ahmed Yilmaz <ahmed.yilmaz@example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
           b"Subject: klacht\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <leeg@example.be>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\r\n")
    process_files(app.intake, [raw])
    with app.sessions() as session:
        [(template, mime)] = session.execute(select(Outbox.template, Outbox.mime)).all()
    text = message_from_bytes(mime, policy=default).get_body(("plain",)).get_content()
    assert template == "ask_info"
    assert "  - over welke overheidsdienst uw klacht gaat" in text
    assert "  - wanneer het is gebeurd (een datum of een periode)" in text


def test_rules_explain_shows_the_answer_that_would_be_sent(tmp_path: Path) -> None:
    """`rules explain` shows the answer in the reply's language, as text and as JSON."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=f"sqlite:///{tmp_path / 'none.sqlite3'}")))
    eml = tmp_path / "mail.eml"
    eml.write_bytes(complaint(subject="Conflit de voisinage", body=NEIGHBOURS_FR))
    runner = CliRunner()
    text = runner.invoke(cli, ["--config", str(config), "rules", "explain", str(eml)], obj={})
    assert text.exit_code == 0, text.output
    assert "reply:     direct_answer (fr)" in text.output
    assert "           answer:" in text.output and "juge de paix" in " ".join(text.output.split())
    assert max(len(line) for line in text.output.splitlines() if line.startswith("             ")) <= 100
    data = json.loads(runner.invoke(cli, ["--config", str(config), "rules", "explain", str(eml), "--json"],
                                    obj={}).output)
    [reply] = data["replies"]
    assert reply["answer_text"].startswith("Votre plainte porte sur un différend avec vos voisins.")
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"From: A <a@example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\nSubject: klacht\r\n"
                      b"Message-ID: <e@example.be>\r\n\r\n\r\n")
    asked = runner.invoke(cli, ["--config", str(config), "rules", "explain", str(empty)], obj={})
    assert "           asks for:" in asked.output
    assert "             - een korte beschrijving van wat er is gebeurd" in asked.output
