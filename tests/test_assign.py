"""Picking the investigator: strategies, language, teams, capacity, absence, determinism."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mailbot.assign import InvestigatorLoad, explain_pick, pick_investigator
from mailbot.rules import RuleSet, rules_from_texts

TODAY = date(2026, 3, 10)

PEOPLE = """
teams:
  - {id: a, name: Team A}
  - {id: b, name: Team B}
investigators:
  - {name: Zoë, email: zoe@office.example, team: a, languages: [nl]}
  - {name: Yves, email: yves@office.example, team: a, languages: [nl, fr]}
  - {name: Xavier, email: xavier@office.example, team: a, languages: [nl], capacity: 2}
  - {name: Wim, email: wim@office.example, team: b, languages: [nl, de]}
"""


def people(extra: str = "") -> RuleSet:
    return rules_from_texts(investigators=PEOPLE + extra)


def pick(ruleset: RuleSet, *, team: str | None = "a", language: str = "nl", strategy: str = "round_robin",
         load: dict[str, InvestigatorLoad] | None = None, today: date = TODAY) -> str | None:
    chosen = pick_investigator(ruleset, team=team, language=language, strategy=strategy,
                               load=load or {}, today=today)
    return chosen.email if chosen else None


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 9, 0)


def test_round_robin_picks_never_assigned_then_longest_ago() -> None:
    """Round-robin prefers someone never assigned, else the one assigned longest ago."""
    ruleset = people()
    load = {"zoe@office.example": InvestigatorLoad(0, at(5)), "yves@office.example": InvestigatorLoad(0, at(3))}
    assert pick(ruleset, load=load) == "xavier@office.example"
    load["xavier@office.example"] = InvestigatorLoad(0, at(4))
    assert pick(ruleset, load=load) == "yves@office.example"


def test_round_robin_is_fair_over_many_cases() -> None:
    """Assigning in a loop with round-robin gives every team member the same number of cases."""
    ruleset = people()
    load: dict[str, InvestigatorLoad] = {}
    counts: dict[str, int] = {}
    for n in range(30):
        email = pick(ruleset, load=load)
        assert email is not None
        counts[email] = counts.get(email, 0) + 1
        load[email] = InvestigatorLoad(0, datetime(2026, 3, 1, 8, 0).replace(minute=n))
    assert counts == {"xavier@office.example": 10, "yves@office.example": 10, "zoe@office.example": 10}


def test_least_open_picks_fewest_open_cases_under_capacity() -> None:
    """least_open takes the fewest open cases, skipping people at capacity while others have room."""
    ruleset = people()
    load = {"zoe@office.example": InvestigatorLoad(5), "yves@office.example": InvestigatorLoad(3),
            "xavier@office.example": InvestigatorLoad(2)}  # xavier is at his capacity of 2
    assert pick(ruleset, strategy="least_open", load=load) == "yves@office.example"


def test_everyone_at_capacity_still_gets_a_pick() -> None:
    """When everyone is at capacity, the strategy still chooses, and the reason says so."""
    ruleset = rules_from_texts(investigators="""
teams: [{id: a, name: A}]
investigators:
  - {name: P, email: p@office.example, team: a, capacity: 1}
  - {name: Q, email: q@office.example, team: a, capacity: 1}
""")
    load = {"p@office.example": InvestigatorLoad(4), "q@office.example": InvestigatorLoad(2)}
    result = explain_pick(ruleset, team="a", language="nl", strategy="least_open", load=load, today=TODAY)
    assert result.investigator.email == "q@office.example"
    assert "everyone available is at capacity" in result.reasons


def test_ties_break_on_email() -> None:
    """With equal load the alphabetically first e-mail wins, so picks are deterministic."""
    ruleset = people()
    assert pick(ruleset, strategy="least_open") == "xavier@office.example"
    assert pick(ruleset, strategy="round_robin") == "xavier@office.example"


def test_language_speakers_are_preferred() -> None:
    """A French case goes to the team member who speaks French, even if others are due first."""
    ruleset = people()
    load = {"yves@office.example": InvestigatorLoad(9, at(9))}
    assert pick(ruleset, language="fr", load=load) == "yves@office.example"


def test_language_falls_back_to_other_speakers() -> None:
    """With no speaker of the case's language in the team, another team member is picked."""
    result = explain_pick(people(), team="a", language="en", strategy="round_robin", load={}, today=TODAY)
    assert result.investigator.email == "xavier@office.example"
    assert "nobody available speaks 'en'" in result.reasons


def test_absent_people_are_skipped_inclusive_dates() -> None:
    """Someone absent from/to (inclusive) is not picked on those days, and is again afterwards."""
    ruleset = people("""  - {name: Anna, email: anna@office.example, team: a, absent_from: 2026-03-10, absent_to: 2026-03-12}
""")
    assert pick(ruleset, today=date(2026, 3, 10)) == "xavier@office.example"
    assert pick(ruleset, today=date(2026, 3, 12)) == "xavier@office.example"
    assert pick(ruleset, today=date(2026, 3, 13)) == "anna@office.example"
    assert pick(ruleset, today=date(2026, 3, 9)) == "anna@office.example"


def test_open_ended_absence() -> None:
    """An absence with only absent_from lasts from then on; with only absent_to, until then."""
    ruleset = people("""  - {name: Anna, email: anna@office.example, team: a, absent_from: 2026-03-01}
  - {name: Bart, email: bart@office.example, team: a, absent_to: 2026-03-20}
""")
    assert pick(ruleset, today=date(2027, 1, 1)) == "bart@office.example"
    assert pick(ruleset, today=date(2026, 2, 1)) == "anna@office.example"


def test_inactive_people_are_never_picked() -> None:
    """An inactive investigator is skipped even when nobody else speaks the language."""
    ruleset = people("""  - {name: Anna, email: anna@office.example, team: a, languages: [en], active: false}
""")
    assert pick(ruleset, language="en") != "anna@office.example"


def test_team_falls_back_to_other_teams() -> None:
    """When nobody in the rule's team is available, someone from another team is picked."""
    ruleset = rules_from_texts(investigators="""
teams: [{id: a, name: A}, {id: b, name: B}]
investigators:
  - {name: P, email: p@office.example, team: a, active: false}
  - {name: Q, email: q@office.example, team: b}
""")
    result = explain_pick(ruleset, team="a", language="nl", strategy="round_robin", load={}, today=TODAY)
    assert result.investigator.email == "q@office.example"
    assert "nobody available in team 'a'; chosen from all teams" in result.reasons


def test_no_team_means_everyone() -> None:
    """Without a team, everyone active and present is a candidate."""
    assert pick(people(), team=None, language="de") == "wim@office.example"


def test_nobody_eligible_gives_none() -> None:
    """None comes back only when nobody at all is active and present."""
    ruleset = rules_from_texts(investigators="""
teams: [{id: a, name: A}]
investigators:
  - {name: P, email: p@office.example, team: a, active: false}
  - {name: Q, email: q@office.example, team: a, absent_from: 2026-01-01, absent_to: 2026-12-31}
""")
    assert pick(ruleset) is None
    assert pick(rules_from_texts()) is None


def test_preferred_investigator_when_available() -> None:
    """A person named by a rule is chosen when available, otherwise the strategy decides."""
    ruleset = people("""  - {name: Anna, email: anna@office.example, team: b, absent_from: 2026-03-01}
""")
    chosen = pick_investigator(ruleset, team="a", language="nl", strategy="round_robin", load={},
                               today=TODAY, preferred="WIM@office.example")
    assert chosen.email == "wim@office.example"
    result = explain_pick(ruleset, team="a", language="nl", strategy="round_robin", load={}, today=TODAY,
                          preferred="anna@office.example")
    assert result.investigator.email == "xavier@office.example"
    assert any("anna@office.example: named by the rule but not available" in r for r in result.reasons)


def test_result_is_the_model_investigator() -> None:
    """The pick is a mailbot.model.Investigator with name, e-mail, phone, team and languages."""
    ruleset = rules_from_texts(investigators="""
teams: [{id: a, name: A}]
investigators:
  - {name: P Q, email: P@Office.example, phone: "+32 2 000 00 00", team: a, languages: [nl, fr]}
""")
    chosen = pick_investigator(ruleset, team="a", language="nl", strategy="least_open", load={}, today=TODAY)
    assert (chosen.name, chosen.email, chosen.phone, chosen.team, chosen.languages) == (
        "P Q", "p@office.example", "+32 2 000 00 00", "a", ("nl", "fr"))
    assert ruleset.investigator("p@OFFICE.example") == chosen


def test_unknown_strategy_is_an_error() -> None:
    """A strategy other than round_robin or least_open raises ValueError."""
    with pytest.raises(ValueError, match="unknown strategy 'random'"):
        pick(people(), strategy="random")
