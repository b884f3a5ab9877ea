"""Choose the investigator for a new case. Pure: the caller passes the load and today's date.

Eligible: active and not absent today. Among the eligible, preference goes in tiers — the
rule's team before other teams, then people who speak the case's language, then people under
their capacity — and within the best non-empty tier the strategy decides:

    round_robin   the person assigned longest ago (never assigned comes first)
    least_open    the fewest open cases

Ties break on the e-mail address, so the same input always gives the same person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from .model import Investigator
from .rules import InvestigatorEntry, RuleSet

STRATEGIES = ("round_robin", "least_open")


@dataclass(frozen=True)
class InvestigatorLoad:
    open_cases: int = 0
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class Pick:
    """The chosen investigator (None: nobody eligible) and why, for `rules explain`."""

    investigator: Investigator | None
    reasons: tuple[str, ...]


def pick_investigator(ruleset: RuleSet, *, team: str | None, language: str, strategy: str,
                      load: Mapping[str, InvestigatorLoad], today: date,
                      preferred: str | None = None) -> Investigator | None:
    """The investigator for a new case, or None only if nobody is eligible at all."""
    return explain_pick(ruleset, team=team, language=language, strategy=strategy, load=load,
                        today=today, preferred=preferred).investigator


def explain_pick(ruleset: RuleSet, *, team: str | None, language: str, strategy: str,
                 load: Mapping[str, InvestigatorLoad], today: date, preferred: str | None = None) -> Pick:
    """Like `pick_investigator`, with the reasons for the choice."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    reasons: list[str] = []
    eligible = []
    for person in ruleset.investigators:
        if not person.active:
            reasons.append(f"{person.email}: inactive")
        elif person.is_absent(today):
            reasons.append(f"{person.email}: absent {person.absent_from or '…'} to {person.absent_to or '…'}")
        else:
            eligible.append(person)
    if preferred:
        chosen = next((p for p in eligible if p.email == preferred.strip().lower()), None)
        if chosen is not None:
            return Pick(chosen.to_model(), (*reasons, f"{chosen.email}: named by the rule"))
        reasons.append(f"{preferred}: named by the rule but not available; choosing by strategy")
    if not eligible:
        return Pick(None, (*reasons, "nobody is active and present"))

    def under_capacity(person: InvestigatorEntry) -> bool:
        return _load(load, person).open_cases < person.capacity

    tiers = []
    for in_team in ((True, False) if team else (False,)):
        for speaks in (True, False):
            for room in (True, False):
                members = [p for p in eligible
                           if (not in_team or p.team == team) and (not speaks or language in p.languages)
                           and (not room or under_capacity(p))]
                tiers.append(((in_team, speaks, room), members))
    (in_team, speaks, room), members = next((key, m) for key, m in tiers if m)
    chosen = min(members, key=lambda p: _sort_key(strategy, _load(load, p), p.email))
    reasons.append(_why(chosen, strategy, _load(load, chosen), team=team if in_team else None,
                        language=language if speaks else None, room=room, len_tier=len(members)))
    if team and not in_team:
        reasons.append(f"nobody available in team {team!r}; chosen from all teams")
    if not speaks:
        reasons.append(f"nobody available speaks {language!r}")
    if not room:
        reasons.append("everyone available is at capacity")
    return Pick(chosen.to_model(), tuple(reasons))


def _load(load: Mapping[str, InvestigatorLoad], person: InvestigatorEntry) -> InvestigatorLoad:
    return load.get(person.email) or InvestigatorLoad()


def _sort_key(strategy: str, current: InvestigatorLoad, email: str) -> tuple[object, ...]:
    if strategy == "least_open":
        return (current.open_cases, email)
    # Never assigned sorts first; datetimes are compared as given (the caller keeps them consistent).
    last = current.last_assigned_at
    return (last is not None, last.timestamp() if last else 0.0, email)


def _why(person: InvestigatorEntry, strategy: str, current: InvestigatorLoad, *, team: str | None,
         language: str | None, room: bool, len_tier: int) -> str:
    where = " in team " + repr(team) if team else ""
    speaks = f" speaking {language!r}" if language else ""
    if strategy == "least_open":
        basis = f"fewest open cases ({current.open_cases})"
    elif current.last_assigned_at is None:
        basis = "never assigned a case yet"
    else:
        basis = f"assigned longest ago ({current.last_assigned_at.isoformat(timespec='minutes')})"
    capacity = f", under capacity {person.capacity}" if room else ""
    return f"{person.email}: {basis} of {len_tier} available{where}{speaks}{capacity}"
