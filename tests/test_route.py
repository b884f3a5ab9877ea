"""Routing: every condition and every action, rule order, continue/stop, and the trace."""

from __future__ import annotations

from mailbot.model import Address, Attachment, Classification, Facts, ForwardedMessage, Kind, Mail
from mailbot.route import Routing, explain_routing, route
from mailbot.rules import RuleSet, rules_from_texts

SERVICES = """
services:
  - {id: de-lijn, name: De Lijn, kind: agency, domains: [delijn.be], reference_pattern: 'DL-\\d{4}'}
  - {id: klantendienst, name: Klantendienst De Lijn, kind: first_line, addresses: [klantendienst@delijn.be]}
  - {id: fed, name: Federale Ombudsman, kind: ombudsman, domains: [federaalombudsman.be], competent: false}
  - {id: fin, name: FOD Financien, kind: agency, competent: false, refer_to: fed}
  - {id: gent, name: Ombudsdienst Gent, kind: ombudsman, domains: [stad.gent], competent: false}
"""
PEOPLE = """
teams: [{id: mob, name: Mobiliteit, strategy: least_open}, {id: intake, name: Intake}]
investigators:
  - {name: An, email: an@office.example, team: mob}
"""


def rules(routing: str) -> RuleSet:
    return rules_from_texts(services=SERVICES, investigators=PEOPLE, routing="rules:\n" + routing)


def mail(subject: str = "Klacht", text: str = "Mijn klacht.", *, sender: str = "burger@example.org",
         to: tuple[str, ...] = ("klachten@office.example",), cc: tuple[str, ...] = (), **kwargs: object) -> Mail:
    return Mail(message_id="m", subject=subject, from_=Address("Burger", sender),
                to=tuple(Address("", a) for a in to), cc=tuple(Address("", a) for a in cc), text=text,
                **kwargs)  # type: ignore[arg-type]


def classified(kind: Kind = Kind.NEW_COMPLAINT, language: str = "nl", **facts: bool) -> Classification:
    return Classification(kind=kind, language=language, facts=Facts(**facts))


def fires(when: str, message: Mail, classification: Classification | None = None,
          flags: frozenset[str] = frozenset()) -> bool:
    """Whether a rule with this `when` (YAML flow mapping) fires on the mail."""
    ruleset = rules(f"  - {{name: r, when: {when}, then: {{tags: [hit]}}}}\n")
    result = route(message, classification or classified(), ruleset, flags=flags)
    return result.fired == ("r",)


# ------------------------------------------------------------------------------ conditions

def test_kind_condition() -> None:
    """`kind` holds when the message kind is listed."""
    assert fires("{kind: [new_complaint]}", mail())
    assert not fires("{kind: [follow_up]}", mail())


def test_language_condition() -> None:
    """`language` holds when the mail's language is listed."""
    assert fires("{language: [fr, de]}", mail(), classified(language="fr"))
    assert not fires("{language: [fr, de]}", mail())


def test_flags_condition_needs_every_flag() -> None:
    """`flags` holds only when every listed flag is set on the case."""
    both = "{flags: [referred_by, multi_addressed]}"  # flags the robot sets (others are refused)
    assert fires(both, mail(), flags=frozenset({"referred_by", "multi_addressed", "agency_in_cc"}))
    assert not fires(both, mail(), flags=frozenset({"referred_by"}))


def test_facts_condition() -> None:
    """`facts` holds when every listed fact was detected in the text."""
    assert fires("{facts: [anonymity_requested]}", mail(), classified(anonymity_requested=True))
    assert not fires("{facts: [anonymity_requested, prefers_phone]}", mail(), classified(anonymity_requested=True))


def test_first_line_contact_condition() -> None:
    """`first_line_contact` compares with whether the citizen already contacted the agency."""
    assert fires("{first_line_contact: false}", mail())
    assert fires("{first_line_contact: true}", mail(), classified(first_line_contact=True))
    assert not fires("{first_line_contact: true}", mail())


def test_has_attachment_condition_ignores_inline_parts() -> None:
    """`has_attachment` counts real attachments, not inline images."""
    logo = Attachment("logo.png", "image/png", 10, inline=True)
    scan = Attachment("brief.pdf", "application/pdf", 10)
    assert fires("{has_attachment: false}", mail(attachments=(logo,)))
    assert fires("{has_attachment: true}", mail(attachments=(logo, scan)))


def test_from_condition_address_or_domain() -> None:
    """`from` matches an exact address, or a domain and its subdomains (with or without '@')."""
    assert fires("{from: [burger@example.org]}", mail())
    assert fires("{from: ['@example.org']}", mail(sender="x@sub.example.org"))
    assert fires("{from: [example.org]}", mail())
    assert not fires("{from: [example.org]}", mail(sender="x@badexample.org"))
    assert not fires("{from: [other@example.org]}", mail())


def test_to_cc_and_recipients_conditions() -> None:
    """`to`, `cc` and `recipients` (either) look at the right header."""
    message = mail(to=("klachten@office.example",), cc=("info@delijn.be",))
    assert fires("{cc: [delijn.be]}", message)
    assert not fires("{to: [delijn.be]}", message)
    assert fires("{recipients: [delijn.be]}", message)
    assert fires("{to: [klachten@office.example]}", message)


def test_service_condition_by_id_kind_competence_and_place() -> None:
    """`service` holds when a detected service matches id, kind, competence and where it was seen."""
    message = mail(text="Ik heb ook de Federale Ombudsman geschreven.", cc=("klantendienst@delijn.be",))
    assert fires("{service: {id: [fed]}}", message)
    assert fires("{service: {kind: [first_line], in: [cc]}}", message)
    assert fires("{service: {competent: false, in: [text]}}", message)
    assert not fires("{service: {id: [fed], in: [to, cc]}}", message)
    assert not fires("{service: {kind: [agency]}}", message)
    assert fires("{service: {}}", message)
    assert not fires("{service: {}}", mail())


def test_service_condition_by_reference_and_forward() -> None:
    """Services are also detected by their file numbers and as sender of a forwarded message."""
    assert fires("{service: {id: [de-lijn], in: [reference]}}", mail(text="dossier DL-1234"))
    forwarded = ForwardedMessage(sender=Address("", "noreply@delijn.be"), date=None, subject="", body="")
    assert fires("{service: {in: [forwarded]}}", mail(forwarded=(forwarded,)))


def test_subject_and_body_regex_conditions_ignore_case() -> None:
    """`subject_regex` and `body_regex` search their part, case-insensitively."""
    message = mail(subject="DRINGEND: bus", text="tram 4 reed niet")
    assert fires("{subject_regex: 'dringend'}", message)
    assert not fires("{subject_regex: 'tram'}", message)
    assert fires("{body_regex: 'tram \\d+'}", message)
    assert not fires("{body_regex: 'dringend'}", message)


def test_keywords_any_all_and_scope() -> None:
    """`keywords` any/all match whole words, ignoring case and accents, in subject, body or both."""
    message = mail(subject="Groeipakket", text="De kinderbijslag is te laat. Zelfs de crèche belt.")
    assert fires("{keywords: {any: [foo, KINDERBIJSLAG]}}", message)
    assert fires("{keywords: {all: [kinderbijslag, creche]}}", message)
    assert not fires("{keywords: {all: [kinderbijslag, foo]}}", message)
    assert not fires("{keywords: {any: [kinder]}}", message)
    assert fires("{keywords: {any: [groeipakket], in: subject}}", message)
    assert not fires("{keywords: {any: [groeipakket], in: body}}", message)


def test_keywords_fuzzy_tolerates_typos() -> None:
    """With `fuzzy`, a misspelt keyword still matches above the threshold."""
    message = mail(text="Ik krijg geen kinderbijslg meer")
    assert fires("{keywords: {any: [kinderbijslag], fuzzy: 85}}", message)
    assert not fires("{keywords: {any: [kinderbijslag]}}", message)
    assert not fires("{keywords: {any: [huurpremie], fuzzy: 85}}", message)


def test_any_all_not_combinations() -> None:
    """`any` needs one, `all` needs every, `not` inverts; nesting works."""
    message = mail(text="tram")
    assert fires("{any: [{language: [fr]}, {body_regex: tram}]}", message)
    assert not fires("{any: [{language: [fr]}, {body_regex: bus}]}", message)
    assert fires("{all: [{language: [nl]}, {body_regex: tram}]}", message)
    assert not fires("{all: [{language: [nl]}, {body_regex: bus}]}", message)
    assert fires("{not: {body_regex: bus}}", message)
    assert not fires("{not: {any: [{body_regex: bus}, {body_regex: tram}]}}", message)


def test_empty_when_matches_every_mail() -> None:
    """A rule without `when` fires on every mail."""
    ruleset = rules("  - {name: all, then: {tags: [x]}}\n")
    assert route(mail(), classified(Kind.FOLLOW_UP), ruleset).fired == ("all",)


# --------------------------------------------------------------------------------- actions

def test_default_is_an_investigation() -> None:
    """With no rule firing, the routing is an investigation with the acknowledgment template."""
    result = route(mail(), classified(), rules("  - {name: r, when: {language: [fr]}, then: {tags: [x]}}\n"))
    assert result == Routing(trace=result.trace)
    assert (result.outcome, result.template, result.team, result.strategy) == (
        "investigation", "ack_investigation", None, "round_robin")


def test_assign_team_uses_the_team_strategy_unless_given() -> None:
    """`assign` sets team and investigator; the strategy defaults to the team's."""
    result = route(mail(), classified(), rules("  - {name: r, then: {assign: {team: mob}}}\n"))
    assert (result.team, result.strategy, result.investigator_email) == ("mob", "least_open", None)
    result = route(mail(), classified(), rules(
        "  - {name: r, then: {assign: {team: mob, strategy: round_robin, investigator: an@office.example}}}\n"))
    assert (result.team, result.strategy, result.investigator_email) == ("mob", "round_robin", "an@office.example")


def test_refer_ombudsman_explicit_and_detected() -> None:
    """`refer_ombudsman` names a service or takes the referral target of the detected one."""
    result = route(mail(), classified(), rules("  - {name: r, then: {refer_ombudsman: gent}}\n"))
    assert (result.outcome, result.refer_to, result.template) == ("refer_ombudsman", "gent", "referred_ombudsman")
    ruleset = rules("  - {name: r, when: {service: {competent: false}}, then: {refer_ombudsman: detected}}\n")
    result = route(mail(text="Probleem met FOD Financien"), classified(), ruleset)
    assert (result.outcome, result.refer_to) == ("refer_ombudsman", "fed")


def test_detected_referral_without_a_service_is_skipped() -> None:
    """A `detected` referral with no suitable service leaves the outcome alone and says why."""
    result = route(mail(), classified(), rules("  - {name: r, then: {refer_ombudsman: detected}}\n"))
    assert result.outcome == "investigation"
    assert result.trace[0].actions == ("refer_ombudsman: no detected service to refer to (skipped)", "stop")


def test_refer_agency() -> None:
    """`refer_agency: detected` refers the citizen to the agency found in the mail."""
    ruleset = rules("  - {name: r, when: {first_line_contact: false}, then: {refer_agency: detected}}\n")
    result = route(mail(text="De Lijn rijdt niet"), classified(), ruleset)
    assert (result.outcome, result.refer_to, result.template) == ("refer_agency", "de-lijn", "referred_agency")


ANSWER = "answer_text: {nl: Antwoord., fr: Réponse., en: Answer., de: Antwort.}"
QUESTIONS = "questions: {nl: ['Wanneer?'], fr: ['Quand ?'], en: ['When?'], de: ['Wann?']}"


def test_answer_ask_info_and_template() -> None:
    """`answer` uses its template, `ask_info` the ask_info template, `template` overrides either."""
    answered = rules(f"  - {{name: r, then: {{answer: direct_answer, {ANSWER}}}}}\n")
    assert route(mail(), classified(), answered).template == "direct_answer"
    result = route(mail(), classified(), rules(f"  - {{name: r, then: {{ask_info: true, {QUESTIONS}}}}}\n"))
    assert (result.outcome, result.template) == ("ask_info", "ask_info")
    custom = rules(f"  - {{name: r, then: {{ask_info: true, {QUESTIONS}, template: custom}}}}\n")
    result = route(mail(), classified(), custom)
    assert result.template == "custom"
    result = route(mail(), classified(), rules("  - {name: r, then: {template: multi_addressed}}\n"))
    assert (result.outcome, result.template) == ("investigation", "multi_addressed")


def test_tags_flags_notify_accumulate_and_priority_takes_the_highest() -> None:
    """With `continue`, tags, flags and notify add up and the highest priority stays."""
    ruleset = rules("""  - {name: a, then: {tags: [x], flags: [f], priority: urgent, notify: [Boss@office.example]}, continue: true}
  - {name: b, then: {tags: [x, y], priority: low, notify: [team@office.example]}}
""")
    result = route(mail(), classified(), ruleset)
    assert (result.tags, result.flags, result.priority) == (("x", "y"), ("f",), "urgent")
    assert result.notify == ("boss@office.example", "team@office.example")
    assert result.fired == ("a", "b")


def test_flags_set_by_a_rule_are_seen_by_later_rules() -> None:
    """A flag added by a `continue` rule satisfies a `flags` condition further down."""
    ruleset = rules("""  - {name: a, then: {flags: [multi]}, continue: true}
  - {name: b, when: {flags: [multi]}, then: {assign: {team: intake}}}
""")
    assert route(mail(), classified(), ruleset).team == "intake"


def test_later_rules_override_outcome_and_team() -> None:
    """When several rules fire, the later one decides outcome and team."""
    ruleset = rules("""  - {name: a, then: {assign: {team: mob}, refer_ombudsman: fed}, continue: true}
  - {name: b, then: {assign: {team: intake}, ask_info: true, questions: {nl: [a], fr: [a], en: [a], de: [a]}}}
""")
    result = route(mail(), classified(), ruleset)
    assert (result.team, result.outcome, result.refer_to) == ("intake", "ask_info", None)


def test_first_match_wins_and_stop() -> None:
    """Without `continue` the first matching rule ends the evaluation; `stop: true` says so explicitly."""
    ruleset = rules("""  - {name: a, when: {language: [fr]}, then: {tags: [a]}}
  - {name: b, when: {kind: [new_complaint]}, then: {tags: [b], stop: true}}
  - {name: c, then: {tags: [c]}}
""")
    result = route(mail(), classified(), ruleset)
    assert result.fired == ("b",)
    assert [(t.name, t.matched, t.evaluated) for t in result.trace] == [
        ("a", False, True), ("b", True, True), ("c", False, False)]
    assert result.trace[2].reason == "not evaluated: rule 'b' stopped"


def test_disabled_rules_never_fire() -> None:
    """A rule with `enabled: false` is skipped and shown as disabled in the trace."""
    ruleset = rules("  - {name: 'off', enabled: false, then: {tags: [x]}}\n")
    result = route(mail(), classified(), ruleset)
    assert result.fired == () and result.trace[0].reason == "disabled" and not result.trace[0].enabled


def test_trace_names_the_deciding_condition() -> None:
    """The trace gives the failing condition of a miss and the conditions that held for a hit."""
    ruleset = rules("""  - {name: a, when: {kind: [new_complaint], language: [fr]}, then: {tags: [a]}}
  - {name: b, when: {kind: [new_complaint], body_regex: klacht}, then: {tags: [b]}}
""")
    trace = explain_routing(mail(), classified(), ruleset)
    assert trace[0].reason == "language is nl, not one of ['fr']"
    assert trace[1].reason == "kind is new_complaint; body_regex 'klacht' found 'klacht'"
    assert trace[1].actions == ("tag b", "stop")


def test_detected_services_and_agency_refs_are_reported() -> None:
    """The routing lists the detected service ids and the agencies' file numbers."""
    result = route(mail(text="De Lijn, dossier DL-4321"), classified(), rules("  - {name: r, then: {tags: [x]}}\n"))
    assert result.services == ("de-lijn",)
    assert result.agency_refs == (("de-lijn", "DL-4321"),)
