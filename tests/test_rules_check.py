"""`rules check` problems: each names the file, the line, the rule, what is wrong and a fix."""

from __future__ import annotations

import pytest

from mailbot.rules_check import check_contents

SERVICES = """services:
  - id: de-lijn
    name: De Lijn
    kind: agency
    domains: [delijn.be]
  - id: fed
    name: Federale Ombudsman
    kind: ombudsman
    competent: false
"""
PEOPLE = """teams:
  - {id: mob, name: Mobiliteit}
investigators:
  - {name: An, email: an@office.example, team: mob}
"""
TEMPLATES = frozenset({"ack_investigation", "referred_ombudsman", "referred_agency", "direct_answer", "ask_info"})


def problems(routing: str = "rules: []\n", services: str = SERVICES, people: str = PEOPLE,
             templates: frozenset[str] | None = TEMPLATES) -> list[str]:
    contents = {"services.yaml": services.encode(), "routing.yaml": routing.encode(),
                "investigators.yaml": people.encode()}
    return check_contents(contents, label="rules", template_names=templates).problems


def test_valid_rules_have_no_problems() -> None:
    """A consistent set of files gives no problems and a rule set."""
    contents = {"services.yaml": SERVICES.encode(), "routing.yaml": b"rules: []\n",
                "investigators.yaml": PEOPLE.encode()}
    result = check_contents(contents, label="rules")
    assert result.problems == [] and result.ruleset is not None
    assert result.summary == "rules OK: 2 services, 0 routing rules (0 enabled), 1 teams, 1 investigators (1 active)"


def test_unknown_action_with_suggestion() -> None:
    """A misspelt action is reported at its line with the rule name and the closest action."""
    routing = """rules:
  - name: de-lijn
    when: {kind: [new_complaint]}
    then:
      asign: {team: mob}
"""
    assert problems(routing) == ["rules/routing.yaml:5: rule 'de-lijn': unknown action 'asign' (did you mean 'assign'?)"]


def test_unknown_condition_with_suggestion_in_nested_any() -> None:
    """A misspelt condition inside `any` is reported as an unknown condition at its own line."""
    routing = """rules:
  - name: r
    when:
      any:
        - langauge: [fr]
    then: {tags: [x]}
"""
    assert problems(routing) == ["rules/routing.yaml:5: rule 'r': unknown condition 'langauge' (did you mean 'language'?)"]


def test_unknown_key_in_services_and_investigators() -> None:
    """Unknown keys in services.yaml and investigators.yaml name the entry and suggest the key."""
    services = SERVICES + "    domain: [x.be]\n"
    people = PEOPLE + "  - name: Bo\n    email: bo@office.example\n    team: mob\n    activ: true\n"
    assert problems(services=services, people=people) == [
        "rules/services.yaml:10: service 'fed': unknown key 'domain' (did you mean 'domains'?)",
        "rules/investigators.yaml:8: investigator 'bo@office.example': unknown key 'activ' (did you mean 'active'?)",
    ]


def test_unknown_top_level_key() -> None:
    """An unknown top-level key is reported with the known ones as suggestion."""
    assert problems("rule: []\n") == ["rules/routing.yaml:1: unknown key 'rule' (did you mean 'rules'?)"]


def test_yaml_syntax_error_names_file_and_line() -> None:
    """Broken YAML is reported with file and line of the problem."""
    routing = "rules:\n  - name: a\n    then: {tags: [x]\n  - name: b\n"
    found = problems(routing)
    assert len(found) == 1
    assert found[0].startswith("rules/routing.yaml:4: YAML syntax error: ")


def test_wrong_value_with_suggestion() -> None:
    """A value outside a fixed list is reported with the path in the rule and the closest value."""
    routing = "rules:\n  - name: r\n    when:\n      kind: [new_complant]\n    then: {tags: [x]}\n"
    [problem] = problems(routing)
    assert problem.startswith("rules/routing.yaml:4: rule 'r': when.kind.0: Input should be 'new_complaint'")
    assert problem.endswith("(did you mean 'new_complaint'?)")


def test_unquoted_yaml_boolean_is_explained() -> None:
    """A word YAML reads as a boolean (no, off) gets a hint to quote it."""
    routing = "rules:\n  - name: r\n    then:\n      tags: [no]\n"
    assert problems(routing) == ["rules/routing.yaml:4: rule 'r': then.tags.0: Input should be a valid string "
                                 "(YAML reads no as bool; write it in quotes: 'no')"]


def test_missing_then() -> None:
    """A rule without `then` is reported at the rule."""
    assert problems("rules:\n  - name: r\n    when: {language: [fr]}\n") == [
        "rules/routing.yaml:2: rule 'r': missing 'then'"]


def test_empty_then_and_two_outcomes_and_continue_with_stop() -> None:
    """`then` needs an action, one outcome at most, and `continue` cannot go with `stop`."""
    routing = """rules:
  - name: a
    then: {}
  - name: b
    when: {language: [fr]}
    then: {ask_info: true, answer: direct_answer}
  - name: c
    when: {language: [de]}
    then: {stop: true}
    continue: true
"""
    assert problems(routing) == [
        "rules/routing.yaml:3: rule 'a': then: 'then' has no action",
        "rules/routing.yaml:6: rule 'b': then: choose one outcome, not answer and ask_info",
        "rules/routing.yaml:7: rule 'c': 'continue: true' and 'stop: true' contradict each other",
    ]


def test_duplicate_rule_names() -> None:
    """A second rule with the same name is reported with the line of the first."""
    routing = """rules:
  - name: a
    when: {language: [fr]}
    then: {tags: [x]}
  - name: a
    when: {language: [de]}
    then: {tags: [y]}
"""
    assert problems(routing) == ["rules/routing.yaml:5: rule 'a': duplicate rule name 'a' (first at line 2)"]


def test_duplicate_yaml_key() -> None:
    """The same key twice in one mapping is reported at the second occurrence."""
    routing = "rules:\n  - name: a\n    then: {tags: [x]}\n    then: {tags: [y]}\n"
    assert problems(routing) == ["rules/routing.yaml:4: rule 'a': duplicate key 'then'"]


def test_unreachable_rules_after_an_unconditional_one() -> None:
    """Enabled rules after an unconditional rule without `continue` are unreachable."""
    routing = """rules:
  - name: first
    then: {tags: [x]}
    continue: true
  - name: catch-all
    then: {tags: [y]}
  - name: late
    when: {language: [fr]}
    then: {tags: [z]}
  - name: disabled
    enabled: false
    then: {tags: [z]}
"""
    assert problems(routing) == [
        "rules/routing.yaml:7: rule 'late': unreachable: rule 'catch-all' (line 5) matches every mail and stops"]


def test_unknown_service_in_condition_and_referral() -> None:
    """Service ids in conditions (also nested) and in referrals must exist; a close one is suggested."""
    routing = """rules:
  - name: r
    when:
      not:
        service: {id: [delijn]}
    then: {refer_ombudsman: fedd}
"""
    assert problems(routing) == [
        "rules/routing.yaml:5: rule 'r': unknown service 'delijn' (did you mean 'de-lijn'?)",
        "rules/routing.yaml:6: rule 'r': unknown service 'fedd' in refer_ombudsman (did you mean 'fed'?)",
    ]


def test_referral_to_the_wrong_kind_of_service() -> None:
    """refer_ombudsman must name an ombudsman service and refer_agency an agency."""
    routing = """rules:
  - name: a
    when: {language: [fr]}
    then: {refer_ombudsman: de-lijn}
  - name: b
    when: {language: [de]}
    then: {refer_agency: fed}
"""
    assert problems(routing) == [
        "rules/routing.yaml:4: rule 'a': refer_ombudsman 'de-lijn' is a service of kind agency, not ombudsman",
        "rules/routing.yaml:7: rule 'b': refer_agency 'fed' is a service of kind ombudsman, not agency or first_line",
    ]


def test_unknown_team_and_investigator() -> None:
    """Teams and investigators named in `assign` must exist in investigators.yaml."""
    routing = """rules:
  - name: r
    then:
      assign:
        team: mobb
        investigator: am@office.example
"""
    assert problems(routing) == [
        "rules/routing.yaml:5: rule 'r': unknown team 'mobb' (did you mean 'mob'?)",
        "rules/routing.yaml:6: rule 'r': unknown investigator 'am@office.example' (did you mean 'an@office.example'?)",
    ]


def test_unknown_templates_named_or_by_default() -> None:
    """Templates named by `answer`/`template`, and the defaults of outcomes, must exist."""
    routing = """rules:
  - name: a
    when: {language: [fr]}
    then: {answer: direct_anwser, answer_text: {nl: a, fr: b, en: c, de: d}}
  - name: b
    when: {language: [de]}
    then: {refer_ombudsman: fed}
"""
    assert problems(routing, templates=frozenset({"direct_answer"})) == [
        "rules/routing.yaml:4: rule 'a': unknown template 'direct_anwser' (did you mean 'direct_answer'?)",
        "rules/routing.yaml:7: rule 'b': unknown template 'referred_ombudsman' (the default for refer_ombudsman)",
    ]
    assert problems(routing, templates=None) == []


def test_regex_that_does_not_compile() -> None:
    """A regular expression that does not compile is reported at its line."""
    routing = "rules:\n  - name: r\n    when:\n      subject_regex: '(unclosed'\n    then: {tags: [x]}\n"
    [problem] = problems(routing)
    assert problem.startswith("rules/routing.yaml:4: rule 'r': when.subject_regex: regular expression does not compile")


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)+$", r"^(a|aa)+$", r"(x+x+)+y"])
def test_catastrophic_regex_is_refused(pattern: str) -> None:
    """A pattern that backtracks exponentially is refused at load, within a time bound."""
    routing = f"rules:\n  - name: r\n    when:\n      body_regex: '{pattern}'\n    then: {{tags: [x]}}\n"
    [problem] = problems(routing)
    assert problem.startswith("rules/routing.yaml:4: rule 'r': when.body_regex: regular expression is too slow")


def test_bad_reference_pattern_in_services() -> None:
    """A service's reference_pattern is checked like a rule's regex."""
    services = SERVICES + "    reference_pattern: '(a+)+$'\n"
    [problem] = problems(services=services)
    assert problem.startswith("rules/services.yaml:10: service 'fed': reference_pattern: regular expression is too slow")


def test_service_consistency() -> None:
    """Duplicate ids and domains, unknown refer_to and a non-competent agency without target are reported."""
    services = SERVICES + """  - {id: fed, name: Dup, kind: ombudsman, competent: false, domains: [delijn.be]}
  - {id: fin, name: FOD, kind: agency, competent: false, refer_to: fedd}
  - {id: nmbs, name: NMBS, kind: agency, competent: false}
"""
    assert problems(services=services) == [
        "rules/services.yaml:12: service 'nmbs': not competent: set refer_to to the service that is",
    ]
    services = SERVICES + """  - {id: fed, name: Dup, kind: ombudsman, competent: false, domains: [delijn.be]}
  - {id: fin, name: FOD, kind: agency, competent: false, refer_to: fedd}
"""
    assert problems(services=services) == [
        "rules/services.yaml:10: service 'fed': duplicate service id 'fed' (first at line 6)",
        "rules/services.yaml:10: service 'fed': duplicate domain 'delijn.be' (first at line 5)",
        "rules/services.yaml:11: service 'fin': unknown service 'fedd' in refer_to (did you mean 'fed'?)",
    ]


def test_investigator_consistency() -> None:
    """Unknown teams, duplicate e-mails and an absence ending before it starts are reported."""
    people = PEOPLE + """  - {name: Bo, email: AN@office.example, team: mob}
  - {name: Cy, email: cy@office.example, team: mobi}
  - {name: Di, email: di@office.example, team: mob, absent_from: 2026-05-02, absent_to: 2026-05-01}
"""
    assert problems(people=people) == [
        "rules/investigators.yaml:7: investigator 'di@office.example': absent_to is before absent_from",
    ]
    people = PEOPLE + """  - {name: Bo, email: AN@office.example, team: mob}
  - {name: Cy, email: cy@office.example, team: mobi}
"""
    assert problems(people=people) == [
        "rules/investigators.yaml:5: investigator 'AN@office.example': duplicate investigator e-mail "
        "'an@office.example' (first at line 4)",
        "rules/investigators.yaml:6: investigator 'cy@office.example': unknown team 'mobi' (did you mean 'mob'?)",
    ]


def test_file_level_problems() -> None:
    """Missing files, non-UTF-8 bytes, non-mapping documents and alias tricks are problems, not crashes."""
    contents: dict[str, bytes | None] = {"services.yaml": None, "routing.yaml": b"rules: []\n\xff\n",
                                         "investigators.yaml": b"- a list\n"}
    assert check_contents(contents, label="rules").problems == [
        "rules/services.yaml:1: the file is missing or unreadable",
        "rules/routing.yaml:2: not UTF-8 text",
        "rules/investigators.yaml:1: the file must be a mapping with 'teams:', 'investigators:'",
    ]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    [problem] = problems(bomb)
    assert problem.startswith("rules/routing.yaml:") and "document too large" in problem
    assert problems("rules: &r [*r]\n") == ["rules/routing.yaml:1: an alias refers to itself"]


def test_merge_keys_are_supported() -> None:
    """YAML merge keys (`<<: *defaults`) work in rules."""
    routing = """defaults: &d {tags: [x]}
rules:
  - name: r
    then: {<<: *d, priority: high}
"""
    assert problems(routing) == ["rules/routing.yaml:1: unknown key 'defaults'"]
    routing = """rules:
  - name: a
    when: {language: [fr]}
    then: &t {tags: [x], priority: high}
  - name: b
    then: {<<: *t, tags: [y]}
"""
    assert problems(routing) == []
