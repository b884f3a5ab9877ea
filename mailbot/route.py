"""Route one mail: evaluate the ordered rules of `routing.yaml` into a `Routing`. Pure.

First match wins unless the rule says `continue: true`. When several rules fire, lists (tags,
flags, notify) accumulate, the highest priority wins, and later rules override the rest
(outcome, team, investigator, strategy, template). No rule fired: open an investigation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .conditions import Context, evaluate, matching_detections
from .model import Classification, Mail
from .rules import PRIORITY_ORDER, AnswerText, Priority, Questions, Rule, RuleSet, Strategy
from .services import Detection, agency_references, detect_services

Outcome = Literal["investigation", "refer_ombudsman", "refer_agency", "answer", "ask_info"]
DEFAULT_TEMPLATES: dict[str, str] = {
    "investigation": "ack_investigation",
    "refer_ombudsman": "referred_ombudsman",
    "refer_agency": "referred_agency",
    "answer": "direct_answer",
    "ask_info": "ask_info",
}


@dataclass(frozen=True)
class RuleTrace:
    """One rule's verdict: whether it matched and the condition that decided it."""

    name: str
    matched: bool
    reason: str
    enabled: bool = True
    evaluated: bool = True
    actions: tuple[str, ...] = ()  # what the rule did, when it matched


@dataclass(frozen=True)
class Routing:
    team: str | None = None
    investigator_email: str | None = None  # explicit assignment by a rule
    strategy: Strategy = "round_robin"
    outcome: Outcome = "investigation"
    template: str | None = "ack_investigation"
    refer_to: str | None = None  # service id for refer_ombudsman / refer_agency
    tags: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # flags added by rules (not the ones passed in)
    priority: Priority = "normal"
    notify: tuple[str, ...] = ()
    fired: tuple[str, ...] = ()
    trace: tuple[RuleTrace, ...] = ()
    services: tuple[str, ...] = ()  # ids of the services detected in the mail, first seen first
    agency_refs: tuple[tuple[str, str], ...] = ()  # (service id, the agency's file number)
    answer_text: AnswerText | None = None  # outcome "answer": the text per language
    questions: Questions | None = None  # outcome "ask_info": the questions per language


@dataclass
class _State:
    team: str | None = None
    investigator: str | None = None
    strategy: Strategy | None = None
    outcome: Outcome | None = None
    template: str | None = None
    refer_to: str | None = None
    tags: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    priority: Priority = "normal"
    notify: list[str] = field(default_factory=list)
    answer_text: AnswerText | None = None
    questions: Questions | None = None


def route(mail: Mail, classification: Classification, ruleset: RuleSet, *,
          flags: frozenset[str] = frozenset()) -> Routing:
    """Evaluate every rule in order; `flags` are the case's flags, visible to `flags:` conditions."""
    detections = detect_services(ruleset, mail)
    ctx = Context(mail, classification, detections, set(flags))
    state = _State()
    trace: list[RuleTrace] = []
    fired: list[str] = []
    stopped_by: str | None = None
    for rule in ruleset.routing:
        if stopped_by is not None:
            trace.append(RuleTrace(rule.name, False, f"not evaluated: rule '{stopped_by}' stopped",
                                   enabled=rule.enabled, evaluated=False))
        elif not rule.enabled:
            trace.append(RuleTrace(rule.name, False, "disabled", enabled=False, evaluated=False))
        else:
            matched, reason = evaluate(rule.when, ctx)
            actions = _apply(rule, ctx, state) if matched else ()
            trace.append(RuleTrace(rule.name, matched, reason, actions=actions))
            if matched:
                fired.append(rule.name)
                if rule.stops:
                    stopped_by = rule.name
    outcome: Outcome = state.outcome or "investigation"
    team = ruleset.team(state.team) if state.team else None
    return Routing(
        team=state.team, investigator_email=state.investigator,
        strategy=state.strategy or (team.strategy if team else "round_robin"),
        outcome=outcome, template=state.template or DEFAULT_TEMPLATES[outcome], refer_to=state.refer_to,
        tags=tuple(state.tags), flags=tuple(state.flags), priority=state.priority,
        notify=tuple(state.notify), fired=tuple(fired), trace=tuple(trace),
        services=tuple(dict.fromkeys(d.service.id for d in detections)),
        agency_refs=tuple(agency_references(ruleset, f"{mail.subject}\n{mail.text}")),
        answer_text=state.answer_text if outcome == "answer" else None,
        questions=state.questions if outcome == "ask_info" else None,
    )


def explain_routing(mail: Mail, classification: Classification, ruleset: RuleSet, *,
                    flags: frozenset[str] = frozenset()) -> tuple[RuleTrace, ...]:
    """Every rule in order with matched / not matched, the deciding condition and its actions."""
    return route(mail, classification, ruleset, flags=flags).trace


def describe(routing: Routing) -> list[str]:
    """Human-readable lines for `rules explain`."""
    lines = []
    for step in routing.trace:
        mark = "✔" if step.matched else ("·" if step.evaluated else "–")
        lines.append(f"{mark} {step.name}: {step.reason}")
        lines.extend(f"    → {action}" for action in step.actions)
    lines.append(f"outcome: {routing.outcome} (template {routing.template})"
                 + (f", refer to {routing.refer_to}" if routing.refer_to else ""))
    return lines


def _apply(rule: Rule, ctx: Context, state: _State) -> tuple[str, ...]:
    then, done = rule.then, []
    if then.assign is not None:
        if then.assign.team:
            state.team = then.assign.team
            done.append(f"team {then.assign.team}")
        if then.assign.investigator:
            state.investigator = then.assign.investigator
            done.append(f"investigator {then.assign.investigator}")
        if then.assign.strategy:
            state.strategy = then.assign.strategy
            done.append(f"strategy {then.assign.strategy}")
    for action in ("refer_ombudsman", "refer_agency"):
        wanted = getattr(then, action)
        if wanted:
            target = _referral(rule, ctx, action) if wanted == "detected" else wanted
            if target is None:
                done.append(f"{action}: no detected service to refer to (skipped)")
            else:
                state.outcome, state.refer_to, state.template = action, target, None  # type: ignore[assignment]
                done.append(f"{action} {target}")
    if then.answer:
        state.outcome, state.refer_to, state.template = "answer", None, then.answer
        state.answer_text = then.answer_text
        done.append(f"answer with {then.answer}" + (f": {_preview(then.answer_text.nl)}" if then.answer_text else ""))
    if then.ask_info:
        state.outcome, state.refer_to, state.template = "ask_info", None, None
        state.questions = then.questions
        done.append("ask for more information" + (f": {'; '.join(then.questions.nl)}" if then.questions else ""))
    if then.template:
        state.template = then.template
        done.append(f"template {then.template}")
    for label, values, into in (("tag", then.tags, state.tags), ("flag", then.flags, state.flags),
                                ("notify", then.notify, state.notify)):
        for value in values:
            if value not in into:
                into.append(value)
                done.append(f"{label} {value}")
    ctx.flags.update(then.flags)
    if then.priority and PRIORITY_ORDER.index(then.priority) > PRIORITY_ORDER.index(state.priority):
        state.priority = then.priority
        done.append(f"priority {then.priority}")
    if rule.stops:
        done.append("stop")
    return tuple(done)


def _referral(rule: Rule, ctx: Context, action: str) -> str | None:
    """The service a `detected` referral points at, among the services the rule's condition saw."""
    candidates: list[Detection] = (matching_detections(rule.when.service, ctx) if rule.when.service
                                   else list(ctx.detections))
    for detection in candidates:
        service = detection.service
        if action == "refer_ombudsman" and service.referral_target:
            return service.referral_target
        if action == "refer_agency" and service.kind in ("agency", "first_line"):
            return service.id
    return None


def _preview(text: str, width: int = 70) -> str:
    """The start of an answer, on one line, for traces."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"
