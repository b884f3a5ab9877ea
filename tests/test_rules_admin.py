"""What an administrator gets wrong in rules/, and what the robot then does: a mention of
another ombudsman never bounces the citizen, empty or half-deployed files are not taken,
typos are refused at their line with plain advice, absences follow the office's calendar and
a rule's answer follows the language its reply is rendered in."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from mailbot.db_engine import make_engine
from mailbot.migrate import upgrade
from mailbot.model import Address, Classification, Facts, Kind, Mail
from mailbot.render import Renderer
from mailbot.route import Routing, route
from mailbot.routing_stage import RoutingStage
from mailbot.rules import load_rules
from mailbot.rules_check import check_contents

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "rules"
SERVICES = "services: []\n"
PEOPLE = "teams: [{id: mob, name: Mobiliteit}]\ninvestigators:\n  - {name: An, email: an@office.example, team: mob}\n"


def problems(routing: str = "rules: []\n", services: str = SERVICES, people: str = PEOPLE) -> list[str]:
    contents = {"services.yaml": services.encode(), "routing.yaml": routing.encode(),
                "investigators.yaml": people.encode()}
    return check_contents(contents, label="rules").problems


def rule(when: str = "", then: str = "tags: [x]") -> str:
    return "rules:\n  - name: r\n" + (f"    when: {when}\n" if when else "") + f"    then: {{{then}}}\n"


def complaint(text: str, language: str = "nl") -> tuple[Mail, Classification]:
    mail = Mail(message_id="m", subject="Klacht", from_=Address("Burger", "burger@example.org"),
                to=(Address("", "klachten@vlaamseombudsdienst.be"),), text=text)
    return mail, Classification(Kind.NEW_COMPLAINT, language, facts=Facts(first_line_contact=True))


# ---------------------------------------------------------------- 1. a mention is not a referral

def test_an_ombudsman_named_beside_our_agency_goes_to_triage_not_back() -> None:
    """"The Federal Ombudsman told me to come to you", about De Lijn: the citizen is not sent
    back; the case opens at the intake desk flagged for staff to decide."""
    mail, classification = complaint("Bus 21 van De Lijn rijdt niet meer door onze straat. Ik had eerst de "
                                     "Federale Ombudsman gemaild, maar die zei dat ik bij u moest zijn.")
    result = route(mail, classification, load_rules(SHIPPED))
    assert (result.outcome, result.refer_to, result.team) == ("investigation", None, "onthaal")
    assert "needs_triage" in result.flags
    assert result.fired == ("other-service-named-with-our-agency",)


@pytest.mark.parametrize(("text", "target"), [
    ("De FOD Financiën antwoordt niet op mijn bezwaar.", "federale-ombudsman"),
    ("Klacht over de dienstverlening van Stad Gent.", "ombudsdienst-gent"),
])
def test_a_service_we_are_not_competent_for_alone_is_still_referred(text: str, target: str) -> None:
    mail, classification = complaint(text)
    result = route(mail, classification, load_rules(SHIPPED))
    assert (result.outcome, result.refer_to) == ("refer_ombudsman", target)
    assert "needs_triage" not in result.flags


# ------------------------------------------------------- 2. empty, cut-off and half-copied files

def test_empty_files_and_missing_top_level_keys_are_refused() -> None:
    contents = {"services.yaml": b"", "routing.yaml": b"# only a comment\n", "investigators.yaml": b""}
    result = check_contents(contents, label="rules")
    assert result.ruleset is None
    assert result.problems == [
        "rules/services.yaml:1: the file is empty: it needs 'services:' (an empty list is written 'services: []')",
        "rules/routing.yaml:1: the file is empty: it needs 'rules:' (an empty list is written 'rules: []')",
        "rules/investigators.yaml:1: the file is empty: it needs 'teams:' and 'investigators:' "
        "(an empty list is written 'teams: []')",
    ]
    assert problems(people="teams: [{id: mob, name: Mobiliteit}]\n") == [
        "rules/investigators.yaml:1: missing top-level key 'investigators:' (for none, write 'investigators: []')"]
    assert problems("rules: []\n", people="teams: []\ninvestigators: []\n") == []  # explicitly none: fine


def test_an_empty_investigators_file_is_told_as_such_not_as_unknown_teams() -> None:
    told = problems(rule(then="assign: {team: mob}"), people="")
    assert told == ["rules/investigators.yaml:1: the file is empty: it needs 'teams:' and 'investigators:' "
                    "(an empty list is written 'teams: []')"]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(SHIPPED, target)
    return target


def test_a_changed_set_is_taken_only_when_it_reads_the_same_twice(rules_dir: Path) -> None:
    """A deploy caught half-way (routing.yaml cut short) is not put in force; the complete set
    is, once two consecutive checks read it unchanged."""
    stage = RoutingStage(rules_dir)
    shipped = len(stage.ruleset.routing)
    routing = rules_dir / "routing.yaml"
    full = routing.read_text(encoding="utf-8")
    routing.write_text("".join(full.splitlines(keepends=True)[:55]), encoding="utf-8")  # still valid YAML
    assert stage.reload_if_changed() is False  # first sight: not taken
    routing.write_text(full.replace("  - name: intake-desk", "  - name: intake-desk-2"), encoding="utf-8")
    assert stage.reload_if_changed() is False  # changed again since: still not taken
    assert len(stage.ruleset.routing) == shipped and stage.last_error is None
    assert stage.reload_if_changed() is True  # the same twice: taken
    assert stage.ruleset.routing[-1].name == "intake-desk-2"
    assert stage.reload_if_changed() is False


def test_a_half_copied_invalid_state_is_neither_taken_nor_reported(rules_dir: Path) -> None:
    stage = RoutingStage(rules_dir)
    (rules_dir / "routing.yaml").write_text("", encoding="utf-8")
    assert stage.reload_if_changed() is False and stage.last_error is None
    assert stage.reload_if_changed() is False
    assert "routing.yaml:1: the file is empty" in (stage.last_error or "")
    assert len(stage.ruleset.routing) > 10  # the last good rules stay in force


# -------------------------------------------------------------- 3. patterns in double quotes

def test_a_double_quoted_regex_is_refused_with_the_hint_to_use_single_quotes() -> None:
    told = problems(rule('{subject_regex: "\\b(dringend)\\b"}'))
    assert told == ["rules/routing.yaml:3: rule 'r': when.subject_regex: the pattern holds a control character "
                    "where '\\b' was probably meant (in double quotes YAML turns \\b into one): write the pattern "
                    "in single quotes, e.g. '\\b(dringend)\\b'"]
    assert problems(rule("{subject_regex: '\\b(dringend)\\b'}")) == []
    services = 'services:\n  - {id: a, name: A, kind: agency, reference_pattern: "\\bA-[0-9]+"}\n'
    [told_service] = problems(services=services)
    assert told_service.startswith("rules/services.yaml:2: service 'a': reference_pattern: the pattern holds")


# --------------------------------------------------------- 4. an ombudsman service's competence

def test_an_ombudsman_service_must_state_its_competence() -> None:
    services = "services:\n  - {id: telecom, name: Ombudsman Telecom, kind: ombudsman}\n"
    assert problems(services=services) == [
        "rules/services.yaml:2: service 'telecom': an ombudsman service needs 'competent:': false when complaints "
        "about what it covers go to it (the usual case), true when our office handles them"]
    assert problems(services=services.replace("kind: ombudsman", "kind: ombudsman, competent: false")) == []
    assert problems(services="services:\n  - {id: vdab, name: VDAB, kind: agency}\n") == []  # agencies: ours


# ----------------------------------------------------------- 5. absences on the office's calendar

ABSENT = """teams: [{id: mob, name: Mobiliteit}]
investigators:
  - {name: An, email: an@office.example, team: mob, absent_from: 2026-07-01}
  - {name: Bo, email: bo@office.example, team: mob}
"""


@pytest.mark.parametrize(("zone", "now", "expected"), [
    ("Europe/Brussels", datetime(2026, 6, 30, 22, 30, tzinfo=timezone.utc), "bo@office.example"),  # 00:30 there
    ("Europe/Brussels", datetime(2026, 6, 30, 21, 30, tzinfo=timezone.utc), "an@office.example"),  # 23:30 there
    ("America/New_York", datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc), "an@office.example"),  # still 30 June
])
def test_an_absence_starts_at_midnight_in_the_office(rules_dir: Path, sqlite_url: str, zone: str,
                                                     now: datetime, expected: str) -> None:
    (rules_dir / "investigators.yaml").write_text(ABSENT, encoding="utf-8")
    (rules_dir / "routing.yaml").write_text("rules: []\n", encoding="utf-8")
    engine = make_engine(sqlite_url)
    upgrade(engine)
    stage = RoutingStage(rules_dir, timezone=zone)
    try:
        with sessionmaker(engine)() as session:
            pick = stage.pick(session, Routing(), "nl", now)
    finally:
        engine.dispose()
    assert pick.investigator is not None and pick.investigator.email == expected


# ------------------------------------------------------------------ 6. typos that never match

def test_a_language_not_detected_is_refused() -> None:
    assert problems(rule("{language: [DE, duits]}")) == [
        "rules/routing.yaml:3: rule 'r': when.language: 'DE', 'duits': not a language the robot detects; "
        "write nl, fr, en, de (lowercase) (did you mean 'de'?)"]
    assert problems(rule("{language: [de]}")) == []


def test_a_flag_nothing_sets_is_refused() -> None:
    assert problems(rule("{not: {flags: [refered_by]}}")) == [
        "rules/routing.yaml:3: rule 'r': flag 'refered_by' is never set: no rule sets it and the robot sets only "
        "agency_in_cc, multi_addressed, possible_duplicate, referred_by (did you mean 'referred_by'?)"]
    assert problems(rule("{flags: [referred_by]}")) == []
    set_above = "rules:\n  - {name: a, then: {flags: [vip]}, continue: true}\n  - {name: b, when: {flags: [vip]}, " \
                "then: {tags: [x]}}\n"
    assert problems(set_above) == []


# --------------------------------------------------------------------------- 7. plain advice

def test_schema_errors_are_told_as_what_to_write() -> None:
    people = "teams: [{id: mob, name: M}]\ninvestigators:\n  - name: An\n    email: an@office.example\n" \
             "    team: mob\n    languages: nl\n    absent_from: 01-07-2026\n"
    assert problems(people=people) == [
        "rules/investigators.yaml:6: investigator 'an@office.example': languages: write a list, e.g. [nl]",
        "rules/investigators.yaml:7: investigator 'an@office.example': absent_from: '01-07-2026' is not a date: "
        "write a date as YYYY-MM-DD, e.g. 2026-07-01",
    ]
    when_list = "rules:\n  - name: r\n    when:\n      - facts: [anonymity_requested]\n    then: {tags: [x]}\n"
    assert problems(when_list) == [
        "rules/routing.yaml:3: rule 'r': when: write the conditions as keys (kind: …, keywords: …), not as a "
        "list of '- ' items; to combine conditions, use any: [...] or all: [...]"]
    nested_continue = "rules:\n  - name: r\n    then:\n      tags: [x]\n      continue: true\n"
    assert problems(nested_continue) == [
        "rules/routing.yaml:5: rule 'r': unknown action 'continue' (`continue` belongs to the rule, one level up, "
        "next to `then:`)"]
    stop_at_rule = "rules:\n  - name: r\n    then: {tags: [x]}\n    stop: true\n"
    assert problems(stop_at_rule) == [
        "rules/routing.yaml:4: rule 'r': unknown key 'stop' (`stop` is an action: put it under the rule's `then:`)"]


# ------------------------------------------------ 8. the answer in the language of the reply

ANSWER = "answer_text: {nl: Ons antwoord., fr: Notre réponse., en: Our answer., de: Unsere Antwort.}"


def test_the_answer_follows_the_language_the_template_is_rendered_in(rules_dir: Path, tmp_path: Path) -> None:
    """direct_answer has no French file: the reply is rendered in Dutch, and so is the answer in it."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    for path in (templates / "direct_answer").glob("fr.*"):
        path.unlink()
    (rules_dir / "routing.yaml").write_text(rule(then=f"answer: direct_answer, {ANSWER}"), encoding="utf-8")
    stage = RoutingStage(rules_dir, renderer=Renderer(templates))
    mail, classification = complaint("Bonjour, j'ai un problème.", language="fr")
    routed = stage.route(None, mail, classification, datetime(2026, 3, 2, 10, tzinfo=timezone.utc))  # type: ignore[arg-type]
    assert routed.outcome.context["answer_text"] == "Ons antwoord."
    _, english = complaint("Hello, I have a problem.", language="en")
    routed = stage.route(None, mail, english, datetime(2026, 3, 2, 10, tzinfo=timezone.utc))  # type: ignore[arg-type]
    assert routed.outcome.context["answer_text"] == "Our answer."


def test_office_date_is_the_date_in_the_configured_zone(rules_dir: Path) -> None:
    stage = RoutingStage(rules_dir, timezone="Europe/Brussels")
    assert stage.office_date(datetime(2026, 6, 30, 22, 30, tzinfo=timezone.utc)) == date(2026, 7, 1)
