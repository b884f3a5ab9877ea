"""Check the rule files and report every problem as `file:line: who: what (did you mean 'x'?)`.

YAML is composed into nodes first so every key and list item keeps its line number; schema
errors (pydantic) are mapped back to those lines, then references between the three files are
checked. Nothing here raises on bad input: problems are data.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .conditions import Condition, KeywordCondition, ServiceCondition
from .rules import (FILE_MODELS, FILES, Actions, AnswerText, Assign, InvestigatorEntry, InvestigatorsFile, Questions,
                    Rule, RoutingFile, RuleSet, ServicesFile, Team, fingerprint_of, read_rule_files)
from .services import PerLanguage, Service

Path_ = tuple[str | int, ...]
_MAX_NODES = 100_000  # refuses "billion laughs" alias bombs

# What a key may be, by the key it sits under: for "unknown ..." messages and suggestions.
_CONTEXTS: dict[str, tuple[str, type[BaseModel]]] = {
    "then": ("action", Actions), "when": ("condition", Condition), "any": ("condition", Condition),
    "all": ("condition", Condition), "not": ("condition", Condition), "assign": ("key", Assign),
    "keywords": ("key", KeywordCondition), "service": ("key", ServiceCondition), "rules": ("key", Rule),
    "services": ("key", Service), "teams": ("key", Team), "investigators": ("key", InvestigatorEntry),
    "names": ("language", PerLanguage), "websites": ("language", PerLanguage),
    "answer_text": ("language", AnswerText), "questions": ("language", Questions),
}
_ENTITIES = {"rules": ("rule", "name"), "services": ("service", "id"), "teams": ("team", "id"),
             "investigators": ("investigator", "email")}


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


class _YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


@dataclass
class _File:
    """One parsed file: its data, the line of every key path, and where problems go."""

    name: str
    shown: str
    data: Any = None
    lines: dict[Path_, int] = field(default_factory=dict)
    raw: dict[Path_, str] = field(default_factory=dict)  # scalars as written, for messages
    duplicates: list[tuple[Path_, int, str]] = field(default_factory=list)  # reported once data is known
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self, path: Path_) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def report(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.shown}:{self.line(path)}: {self.who(path)}{message}")

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(f"{self.shown}:{self.line(path)}: {self.who(path)}{message}")

    def who(self, path: Path_) -> str:
        if len(path) < 2 or path[0] not in _ENTITIES or not isinstance(path[1], int):
            return ""
        kind, key = _ENTITIES[str(path[0])]
        try:
            value = self.raw.get((path[0], path[1], key)) or self.data[path[0]][path[1]][key]
        except (KeyError, IndexError, TypeError):
            value = None
        return f"{kind} '{value}': " if isinstance(value, str | int) else f"{kind} #{path[1] + 1}: "


def check_dir(rules_dir: Path, *, template_names: frozenset[str] | None = None) -> CheckResult:
    rules_dir = Path(rules_dir)
    return check_contents(read_rule_files(rules_dir), label=rules_dir, template_names=template_names)


def check_contents(contents: Mapping[str, bytes | None], *, label: Path | str,
                   template_names: frozenset[str] | None = None) -> CheckResult:
    """Parse, validate and cross-check the three files; the rule set only when there is no problem."""
    files = {name: _File(name, str(Path(label) / name)) for name in FILES}
    models: dict[str, Any] = {}
    for name, file in files.items():
        model = _parse_and_validate(file, contents.get(name))
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


def _parse_and_validate(file: _File, raw: bytes | None) -> BaseModel | None:
    if raw is None:
        file.problems.append(f"{file.shown}:1: the file is missing or unreadable")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        file.problems.append(f"{file.shown}:{line}: not UTF-8 text")
        return None
    try:
        file.data = _compose(text, file)
    except _YamlProblem as err:
        file.problems.append(f"{file.shown}:{err.line}: {err.message}")
        return None
    if file.data is None:
        file.data = {}
    for path, line, key in file.duplicates:
        file.problems.append(f"{file.shown}:{line}: {file.who(path)}duplicate key '{key}'")
    if not isinstance(file.data, dict):
        expected = ", ".join(f"'{k}:'" for k in FILE_MODELS[file.name].model_fields)
        file.report((), f"the file must be a mapping with {expected}")
        return None
    try:
        return FILE_MODELS[file.name].model_validate(file.data)
    except ValidationError as err:
        for error in err.errors():
            _report_schema_error(file, error)
        return None
    except RecursionError:
        file.report((), "nesting too deep")
        return None


def _compose(text: str, file: _File) -> Any:
    """YAML text to plain data, recording the line of every key path and list item."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader already rejects control characters here
        node = loader.get_single_node()
        return None if node is None else _walk(node, (), file, loader, set(), [0])
    except yaml.YAMLError as err:
        raise _YamlProblem(_error_line(err, text), f"YAML syntax error: {_yaml_message(err)}") from None
    except RecursionError:
        raise _YamlProblem(1, "YAML nesting too deep") from None
    finally:
        if loader is not None:
            loader.dispose()


def _walk(node: yaml.Node, path: Path_, file: _File, loader: yaml.SafeLoader, active: set[int],
          count: list[int]) -> Any:
    file.lines.setdefault(path, node.start_mark.line + 1)
    count[0] += 1
    if count[0] > _MAX_NODES:
        raise _YamlProblem(node.start_mark.line + 1, "document too large (too many aliases or values)")
    if id(node) in active:
        raise _YamlProblem(node.start_mark.line + 1, "an alias refers to itself")
    if isinstance(node, yaml.ScalarNode):
        file.raw[path] = str(node.value)
        return loader.construct_object(node)
    active = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), file, loader, active, count) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        written: set[str] = set()
        for key_node, _ in node.value:  # duplicates among the keys as written, before merging
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(line, "a key must be plain text")
            if key_node.value in written and key_node.tag != "tag:yaml.org,2002:merge":
                file.duplicates.append((path, line, str(key_node.value)))
            written.add(key_node.value)
        loader.flatten_mapping(node)  # resolves `<<: *defaults`; keys written here override merged ones
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(key_node.start_mark.line + 1, "a key must be plain text")
            key = str(key_node.value)  # the text as written: `on`, `no` stay words, not booleans
            file.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, (*path, key), file, loader, active, count)
        return result
    raise _YamlProblem(node.start_mark.line + 1, "unsupported YAML node")


def _error_line(err: yaml.YAMLError, text: str) -> int:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(err, "position", None)  # ReaderError: a character offset
    return text[:position].count("\n") + 1 if isinstance(position, int) else 1


def _yaml_message(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    if problem:
        return f"{problem} ({context})" if context else str(problem)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _report_schema_error(file: _File, error: Any) -> None:
    loc: Path_ = tuple(part for part in error["loc"] if isinstance(part, int) or not _is_tag(str(part)))
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden" and loc:
        key, parent = str(loc[-1]), [p for p in loc[:-1] if isinstance(p, str)]
        what, model = _CONTEXTS.get(parent[-1], ("key", FILE_MODELS[file.name])) if parent else (
            "key", FILE_MODELS[file.name])
        names = [f.alias or n for n, f in model.model_fields.items()]
        file.report(loc, f"unknown {what} '{key}'{_suggest(key, names)}")
        return
    field_path = ".".join(str(p) for p in (loc[2:] if file.who(loc) else loc))
    if kind == "missing":
        parent_path = ".".join(str(p) for p in (loc[2:-1] if file.who(loc) else loc[:-1]))
        why = (" (every reply language is needed: nl, fr, en and de)"
               if len(loc) > 1 and loc[-2] in ("answer_text", "questions") else "")
        file.report(loc[:-1], f"missing '{loc[-1]}'" + (f" in {parent_path}" if parent_path else "") + why)
        return
    hint = ""
    written = file.raw.get(loc)
    if kind == "string_type" and written is not None and not isinstance(error.get("input"), str):
        hint = f" (YAML reads {written} as {type(error['input']).__name__}; write it in quotes: '{written}')"
    if kind in ("literal_error", "enum") and isinstance(error.get("input"), str):
        hint = _suggest(error["input"], re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
    file.report(loc, f"{field_path}: {message}{hint}" if field_path else f"{message}{hint}")


def _is_tag(part: str) -> bool:
    # pydantic inserts validator names like "function-after[...]" into locations
    return "[" in part or part in ("str", "bool", "int", "list", "tuple", "dict")


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _duplicates(items: Iterator[tuple[Path_, str]], file: _File, what: str) -> None:
    first: dict[str, Path_] = {}
    for path, value in items:
        if value in first:
            file.report(path, f"duplicate {what} '{value}' (first at line {file.line(first[value])})")
        else:
            first[value] = path


def _check_services(file: _File, services: ServicesFile) -> None:
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
                        f"unknown service '{service.refer_to}' in refer_to{_suggest(service.refer_to, ids)}")


# What a referral reply offers when the service has no contact details (the templates' fallback).
_FALLBACK = {"refer_ombudsman": "www.ombudsman.be", "refer_agency": "1700 and www.vlaanderen.be"}


def _check_referral_contacts(file: _File, services: ServicesFile, routing: RoutingFile) -> None:
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


def _check_people(file: _File, people: InvestigatorsFile) -> None:
    _duplicates((((("teams", i, "id"), t.id)) for i, t in enumerate(people.teams)), file, "team id")
    _duplicates(((("investigators", i, "email"), p.email) for i, p in enumerate(people.investigators)),
                file, "investigator e-mail")
    teams = [t.id for t in people.teams]
    for i, person in enumerate(people.investigators):
        if person.team not in teams:
            file.report(("investigators", i, "team"), f"unknown team '{person.team}'{_suggest(person.team, teams)}")


def _check_routing(file: _File, routing: RoutingFile, services: ServicesFile | None,
                   people: InvestigatorsFile | None, template_names: frozenset[str] | None) -> None:
    rules = list(enumerate(routing.rules))
    _duplicates((((("rules", i, "name"), r.name)) for i, r in rules), file, "rule name")
    known = {s.id: s for s in services.services} if services else None
    catch_all: tuple[int, Rule] | None = None
    for i, rule in rules:
        at: Path_ = ("rules", i)
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
                    file.report(path, f"unknown service '{service_id}'{_suggest(service_id, list(known))}")
            _check_referrals(file, rule, at, known)
        if people is not None:
            _check_assign(file, rule, at, people)
        if template_names is not None:
            _check_templates(file, rule, at, template_names)


def _condition_services(cond: Condition, path: Path_) -> Iterator[tuple[Path_, str]]:
    if cond.service is not None:
        yield from (((*path, "service", "id", j), s) for j, s in enumerate(cond.service.id))
    for key, group in (("any", cond.any), ("all", cond.all)):
        for j, inner in enumerate(group or ()):
            yield from _condition_services(inner, (*path, key, j))
    if cond.not_ is not None:
        yield from _condition_services(cond.not_, (*path, "not"))


def _check_referrals(file: _File, rule: Rule, at: Path_, known: dict[str, Service]) -> None:
    for action, kinds in (("refer_ombudsman", ("ombudsman",)), ("refer_agency", ("agency", "first_line"))):
        target = getattr(rule.then, action)
        if target is None or target == "detected":
            continue
        path = (*at, "then", action)
        if target not in known:
            file.report(path, f"unknown service '{target}' in {action}{_suggest(target, [*known, 'detected'])}")
        elif known[target].kind not in kinds:
            file.report(path, f"{action} '{target}' is a service of kind {known[target].kind}, "
                              f"not {' or '.join(kinds)}")


# The shipped templates that print an answer / a list of questions, and the text each one needs.
_NEEDS_TEXT = {"direct_answer": "answer_text", "ask_info": "questions"}


def _check_reply_texts(file: _File, rule: Rule, at: Path_) -> None:
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


def _check_assign(file: _File, rule: Rule, at: Path_, people: InvestigatorsFile) -> None:
    assign = rule.then.assign
    if assign is None:
        return
    teams = [t.id for t in people.teams]
    emails = [p.email for p in people.investigators]
    if assign.team is not None and assign.team not in teams:
        file.report((*at, "then", "assign", "team"), f"unknown team '{assign.team}'{_suggest(assign.team, teams)}")
    if assign.investigator is not None and assign.investigator.lower() not in emails:
        file.report((*at, "then", "assign", "investigator"),
                    f"unknown investigator '{assign.investigator}'{_suggest(assign.investigator.lower(), emails)}")


def _check_templates(file: _File, rule: Rule, at: Path_, names: frozenset[str]) -> None:
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
            file.report((*at, "then", key), f"unknown template '{name}'{note}{_suggest(name, sorted(names))}")
