"""Check the rule files and report every problem as `file:line: who: what (did you mean 'x'?)`.

Each file is parsed and validated against its schema with every problem at its line
(`rules_yaml`); then the references between the three files are checked here. Nothing here
raises on bad input: problems are data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conditions import Condition
from .rules import (FILES, InvestigatorsFile, Rule, RoutingFile, RuleSet, ServicesFile, fingerprint_of,
                    read_rule_files)
from .rules_yaml import CheckedFile, KeyPath, parse_and_validate, suggest
from .services import Service


@dataclass
class CheckResult:
    ruleset: RuleSet | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # accepted, but the replies suffer

    @property
    def summary(self) -> str:
        """The verdict; warnings come first, one per line, so `rules check` shows them."""
        if self.ruleset is None:
            return f"{len(self.problems)} problem(s)"
        rs = self.ruleset
        return "".join(f"warning: {w}\n" for w in self.warnings) + (
                f"rules OK: {len(rs.services)} services, {len(rs.routing)} routing rules "
                f"({sum(r.enabled for r in rs.routing)} enabled), {len(rs.teams)} teams, "
                f"{len(rs.investigators)} investigators ({sum(i.active for i in rs.investigators)} active)")


def check_dir(rules_dir: Path, *, template_names: frozenset[str] | None = None) -> CheckResult:
    rules_dir = Path(rules_dir)
    return check_contents(read_rule_files(rules_dir), label=rules_dir, template_names=template_names)


def check_contents(contents: Mapping[str, bytes | None], *, label: Path | str,
                   template_names: frozenset[str] | None = None) -> CheckResult:
    """Parse, validate and cross-check the three files; the rule set only when there is no problem."""
    files = {name: CheckedFile(name, str(Path(label) / name)) for name in FILES}
    models: dict[str, Any] = {}
    for name, file in files.items():
        model = parse_and_validate(file, contents.get(name))
        if model is not None:
            models[name] = model
    services: ServicesFile | None = models.get("services.yaml")
    routing: RoutingFile | None = models.get("routing.yaml")
    people: InvestigatorsFile | None = models.get("investigators.yaml")
    if services is not None:
        _check_services(files["services.yaml"], services)
    if people is not None:
        _check_people(files["investigators.yaml"], people)
    if routing is not None:
        _check_routing(files["routing.yaml"], routing, services, people, template_names)
    if services is not None and routing is not None:
        _check_referral_contacts(files["services.yaml"], services, routing)
    problems = [p for file in files.values() for p in file.problems]
    if problems or services is None or routing is None or people is None:
        return CheckResult(None, problems)
    ruleset = RuleSet(services=services.services, routing=routing.rules, teams=people.teams,
                      investigators=people.investigators, fingerprint=fingerprint_of(contents))
    return CheckResult(ruleset, [], [w for file in files.values() for w in file.warnings])


def _duplicates(items: Iterator[tuple[KeyPath, str]], file: CheckedFile, what: str) -> None:
    first: dict[str, KeyPath] = {}
    for path, value in items:
        if value in first:
            file.report(path, f"duplicate {what} '{value}' (first at line {file.line(first[value])})")
        else:
            first[value] = path


def _check_services(file: CheckedFile, services: ServicesFile) -> None:
    items = list(enumerate(services.services))
    _duplicates((((("services", i, "id"), s.id)) for i, s in items), file, "service id")
    _duplicates(((("services", i, "addresses", j), a) for i, s in items for j, a in enumerate(s.addresses)),
                file, "address")
    _duplicates(((("services", i, "domains", j), d) for i, s in items for j, d in enumerate(s.domains)),
                file, "domain")
    ids = [s.id for s in services.services]
    for i, service in items:
        if service.refer_to is not None and service.refer_to not in ids:
            file.report(("services", i, "refer_to"),
                        f"unknown service '{service.refer_to}' in refer_to{suggest(service.refer_to, ids)}")


# What a referral reply offers when the service has no contact details (the templates' fallback).
_FALLBACK = {"refer_ombudsman": "www.ombudsman.be", "refer_agency": "1700 and www.vlaanderen.be"}


def _check_referral_contacts(file: CheckedFile, services: ServicesFile, routing: RoutingFile) -> None:
    """Warn about a service an enabled rule can refer citizens to that has no contact, phone,
    website or address: the referral reply could not say how to reach it. A warning, not a
    problem: the templates fall back to a general line, and a rule set in the making may
    refer before the contact details are known (the shipped directory has them all)."""
    index = {s.id: i for i, s in enumerate(services.services)}
    referrers: dict[str, list[tuple[str, str]]] = {}
    for rule in routing.rules:
        if rule.enabled:
            for action, target in _referral_targets(rule, services.services):
                referrers.setdefault(target, []).append((rule.name, action))
    for target, via in referrers.items():
        service = services.services[index[target]] if target in index else None
        if service is None or service.has_contact:
            continue
        names = ", ".join(dict.fromkeys(f"'{name}'" for name, _ in via))
        fallback = " / ".join(dict.fromkeys(_FALLBACK[action] for _, action in via))
        file.warn(("services", index[target]),
                  f"no contact, website, phone or address, yet rule {names} can refer citizens to it: "
                  f"the reply can only point to {fallback} (add contact: https://… and/or phone)")


def _referral_targets(rule: Rule, services: tuple[Service, ...]) -> Iterator[tuple[str, str]]:
    """(action, service id) for every service the rule's referrals can point at; a `detected`
    one can point at any service its `when.service` condition lets through (see route._referral)."""
    cond = rule.when.service
    for action in ("refer_ombudsman", "refer_agency"):
        wanted = getattr(rule.then, action)
        if wanted is None:
            continue
        if wanted != "detected":
            yield action, wanted
            continue
        for service in services:
            if cond is not None and not ((not cond.id or service.id in cond.id)
                                         and (not cond.kind or service.kind in cond.kind)
                                         and (cond.competent is None or service.competent == cond.competent)):
                continue
            if action == "refer_ombudsman" and service.referral_target:
                yield action, service.referral_target
            elif action == "refer_agency" and service.kind in ("agency", "first_line"):
                yield action, service.id


def _check_people(file: CheckedFile, people: InvestigatorsFile) -> None:
    _duplicates((((("teams", i, "id"), t.id)) for i, t in enumerate(people.teams)), file, "team id")
    _duplicates(((("investigators", i, "email"), p.email) for i, p in enumerate(people.investigators)),
                file, "investigator e-mail")
    teams = [t.id for t in people.teams]
    for i, person in enumerate(people.investigators):
        if person.team not in teams:
            file.report(("investigators", i, "team"), f"unknown team '{person.team}'{suggest(person.team, teams)}")


def _check_routing(file: CheckedFile, routing: RoutingFile, services: ServicesFile | None,
                   people: InvestigatorsFile | None, template_names: frozenset[str] | None) -> None:
    rules = list(enumerate(routing.rules))
    _duplicates((((("rules", i, "name"), r.name)) for i, r in rules), file, "rule name")
    _check_flags(file, routing)
    known = {s.id: s for s in services.services} if services else None
    catch_all: tuple[int, Rule] | None = None
    for i, rule in rules:
        at: KeyPath = ("rules", i)
        if catch_all is not None and rule.enabled:
            j, other = catch_all
            file.report((*at, "name"), f"unreachable: rule '{other.name}' (line {file.line(('rules', j))}) "
                                       "matches every mail and stops")
        if rule.enabled and rule.stops and rule.when.is_empty and catch_all is None:
            catch_all = (i, rule)
        _check_reply_texts(file, rule, at)
        if known is not None:
            for path, service_id in _condition_services(rule.when, (*at, "when")):
                if service_id not in known:
                    file.report(path, f"unknown service '{service_id}'{suggest(service_id, list(known))}")
            _check_referrals(file, rule, at, known)
        if people is not None:
            _check_assign(file, rule, at, people)
        if template_names:  # none at all: the missing templates folder is the one problem to tell
            _check_templates(file, rule, at, template_names)


# The case flags the robot itself sets before the rules run (matching: To/Cc, a referral by
# another ombudsman, a duplicate); a `flags:` condition can test these and any flag a rule sets.
ROBOT_FLAGS = ("agency_in_cc", "multi_addressed", "possible_duplicate", "referred_by")


def _check_flags(file: CheckedFile, routing: RoutingFile) -> None:
    """A `flags:` condition on a flag nothing ever sets never holds: most likely a typo."""
    known = sorted({*ROBOT_FLAGS, *(f for rule in routing.rules for f in rule.then.flags)})
    for i, rule in enumerate(routing.rules):
        for path, flag in _condition_flags(rule.when, ("rules", i, "when")):
            if flag not in known:
                file.report(path, f"flag '{flag}' is never set: no rule sets it and the robot sets only "
                                  f"{', '.join(ROBOT_FLAGS)}{suggest(flag, known)}")


def _condition_flags(cond: Condition, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    yield from (((*path, "flags", j), f) for j, f in enumerate(cond.flags or ()))
    for key, group in (("any", cond.any), ("all", cond.all)):
        for j, inner in enumerate(group or ()):
            yield from _condition_flags(inner, (*path, key, j))
    if cond.not_ is not None:
        yield from _condition_flags(cond.not_, (*path, "not"))


def _condition_services(cond: Condition, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if cond.service is not None:
        yield from (((*path, "service", "id", j), s) for j, s in enumerate(cond.service.id))
    for key, group in (("any", cond.any), ("all", cond.all)):
        for j, inner in enumerate(group or ()):
            yield from _condition_services(inner, (*path, key, j))
    if cond.not_ is not None:
        yield from _condition_services(cond.not_, (*path, "not"))


def _check_referrals(file: CheckedFile, rule: Rule, at: KeyPath, known: dict[str, Service]) -> None:
    for action, kinds in (("refer_ombudsman", ("ombudsman",)), ("refer_agency", ("agency", "first_line"))):
        target = getattr(rule.then, action)
        if target is None or target == "detected":
            continue
        path = (*at, "then", action)
        if target not in known:
            file.report(path, f"unknown service '{target}' in {action}{suggest(target, [*known, 'detected'])}")
        elif known[target].kind not in kinds:
            file.report(path, f"{action} '{target}' is a service of kind {known[target].kind}, "
                              f"not {' or '.join(kinds)}")


# The shipped templates that print an answer / a list of questions, and the text each one needs.
_NEEDS_TEXT = {"direct_answer": "answer_text", "ask_info": "questions"}


def _check_reply_texts(file: CheckedFile, rule: Rule, at: KeyPath) -> None:
    """An answer needs its text and ask_info its questions: a reply announcing an answer or a
    list of information must never go out without it. And a text needs the outcome it serves."""
    then, here = rule.then, (*at, "then")
    if then.answer and then.answer_text is None:
        file.report((*here, "answer"), f"answer '{then.answer}' has no answer_text: the reply would announce "
                                       "an answer and give none (add answer_text: {nl: …, fr: …, en: …, de: …})")
    if then.ask_info and then.questions is None:
        file.report((*here, "ask_info"), "ask_info has no questions: the reply would not say what we need "
                                         "(add questions: {nl: […], fr: […], en: […], de: […]})")
    if then.answer_text is not None and not then.answer:
        file.report((*here, "answer_text"), "answer_text without 'answer': add answer: direct_answer")
    if then.questions is not None and not then.ask_info:
        file.report((*here, "questions"), "questions without 'ask_info: true'")
    needed = _NEEDS_TEXT.get(then.template or "")
    if needed and getattr(then, needed) is None and not (then.answer or then.ask_info):
        instead = ("answer: direct_answer with answer_text" if needed == "answer_text"
                   else "ask_info: true with questions")
        file.report((*here, "template"), f"template '{then.template}' prints {needed.replace('_', ' ')}, "
                                         f"which this rule does not give: use {instead} instead")


def _check_assign(file: CheckedFile, rule: Rule, at: KeyPath, people: InvestigatorsFile) -> None:
    assign = rule.then.assign
    if assign is None:
        return
    teams = [t.id for t in people.teams]
    emails = [p.email for p in people.investigators]
    if assign.team is not None and assign.team not in teams:
        file.report((*at, "then", "assign", "team"), f"unknown team '{assign.team}'{suggest(assign.team, teams)}")
    if assign.investigator is not None and assign.investigator.lower() not in emails:
        file.report((*at, "then", "assign", "investigator"),
                    f"unknown investigator '{assign.investigator}'{suggest(assign.investigator.lower(), emails)}")


def _check_templates(file: CheckedFile, rule: Rule, at: KeyPath, names: frozenset[str]) -> None:
    from .route import DEFAULT_TEMPLATES  # route imports rules; imported late to keep the layering

    then = rule.then
    wanted: list[tuple[str, str]] = [(key, getattr(then, key)) for key in ("answer", "template") if getattr(then, key)]
    if not then.template:
        for outcome in ("refer_ombudsman", "refer_agency", "ask_info"):
            if getattr(then, outcome):
                wanted.append((outcome, DEFAULT_TEMPLATES[outcome]))
    for key, name in wanted:
        if name not in names:
            note = "" if key in ("answer", "template") else f" (the default for {key})"
            file.report((*at, "then", key), f"unknown template '{name}'{note}{suggest(name, sorted(names))}")
