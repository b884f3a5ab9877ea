"""`mailbot rules explain MAIL.eml`: what the robot would do with a mail, without doing it.

Runs the same stages as the pipeline against the current database inside a
transaction that is always rolled back; nothing is sent, stored or moved.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .db import Case, CaseSequence
from .decide import STATUS_OVERVIEW
from .errors import ParseError, RulesError, StoreError
from .model import Classification, Decision, Mail, Reply
from .office_time import office_year
from .prepare import prepare
from .compose import build_subject
from .replies import overview_cases, reply_setup
from .route import describe
from .staff_notice import notice_context, notice_subject, plan_notices, render_text
from .locks import DRY_RUN
from .store import format_ref


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _mail_summary(mail: Mail) -> dict[str, Any]:
    return {
        "message_id": mail.message_id, "subject": mail.subject,
        "from": str(mail.from_) if mail.from_ else None,
        "to": [str(a) for a in mail.to], "cc": [str(a) for a in mail.cc],
        "reply_to": [str(a) for a in mail.reply_to],
        "date": mail.date.isoformat() if mail.date else None,
        "in_reply_to": list(mail.in_reply_to), "references": list(mail.references),
        "new_text": mail.new_text[:2000], "text_length": len(mail.text),
        "attachments": _plain(mail.attachments), "forwarded": _plain(mail.forwarded),
        "defects": list(mail.defects), "size": mail.size,
    }


def explain(app: Any, raw: bytes, *, now: datetime | None = None, show_reply: bool = False) -> dict[str, Any]:
    """Everything the pipeline would decide for `raw`, as plain data; `show_reply`: with the
    plain text of each reply as it would be sent."""
    now = now or datetime.now(timezone.utc)
    intake = app.intake
    try:
        mail, classification = prepare(raw, intake.prepare_options)
    except ParseError as err:
        with _reading(app) as session:
            found = intake.unreadable_notice(session, raw)
            told = []
            if found is not None:
                case = session.get(Case, found.case.case_id) if found.case is not None else None
                told.append(_reply(found.reply, _rendered(session, intake, found.reply, case, found.mail), show_reply))
        return {"parse": {"error": str(err)}, "classification": {"kind": "unreadable"},
                "actions": ["quarantine"], "replies": told}
    result: dict[str, Any] = {"parse": _mail_summary(mail), "classification": _plain(classification)}
    with _reading(app) as session:
        planned = intake.plan(session, mail, classification, now)
        joins = planned.case.ref if planned.case else None  # read before the rollback expires it
        decision = planned.decision
        case = (_new_case(session, intake.settings, mail, decision, classification, now)
                if decision.open_case else planned.case)
        rendered = [_rendered(session, intake, r, case, mail) for r in decision.replies]
        fired = planned.routed.routing.fired if planned.routed is not None else ()
        notices = _notices(intake, case, mail, decision.notify, fired, show_reply)
    result["match"] = _plain(planned.match)
    result["match_considered"] = _plain(planned.matched.considered)
    if planned.routed is not None:
        result["rules"] = [_plain(t) for t in planned.routed.routing.trace]
        result["routing"] = describe(planned.routed.routing)
        result["investigator"] = _plain(planned.routed.pick) if planned.routed.pick else None
    result["decision"] = {
        "kind": str(decision.kind), "open_case": decision.open_case,
        "joins_case": joins, "flags": list(decision.flags),
        "outcome": decision.outcome, "reasons": list(decision.reasons),
    }
    result["replies"] = [_reply(r, shown, show_reply) for r, shown in zip(decision.replies, rendered)]
    result["staff_notices"] = notices
    return result


def _notices(intake: Any, case: Case | None, mail: Mail, notify: tuple[str, ...], fired: tuple[str, ...],
             show_text: bool) -> list[dict[str, Any]]:
    """The staff notices the rules' `notify:` would queue (`staff_notice.queue_notices`): per
    address the rules that asked and the notice's subject (its text with `show_text`), or why
    it would not be sent (one of our own addresses)."""
    if case is None or not notify:
        return []
    notices: list[dict[str, Any]] = []
    for planned in plan_notices(intake.settings, notify, fired, intake.routing.ruleset.routing):
        notice: dict[str, Any] = {"to": planned.address, "rules": list(planned.rules)}
        if planned.ours:
            notice["skipped"] = "one of our own addresses: the notice would come back in as mail"
        else:
            notice["subject"] = notice_subject(case.ref, planned.rules, case.subject)
            if show_text:
                notice["text"] = render_text(intake.renderer.templates,
                                             notice_context(case, mail, rules=planned.rules, fired=fired))
        notices.append(notice)
    return notices


def _new_case(session: Session, settings: Any, mail: Mail, decision: Decision,
              classification: Classification, now: datetime) -> Case:
    """The case the mail would open, as far as its replies read it (`record.open_case`), not
    added to the session: its reference is the next one, read, not taken (a dry run takes no
    lock a poller would wait for)."""
    prefix = settings.office.reference_prefix
    year = office_year(now, settings.schedule.timezone)  # 00:30 on 1 January in Brussels: the new year
    last = session.execute(select(CaseSequence.last_number).where(
        CaseSequence.prefix == prefix, CaseSequence.year == year)).scalar_one_or_none()
    citizen, investigator = decision.citizen or mail.from_, decision.investigator
    return Case(ref=format_ref(prefix, year, (last or 0) + 1), status="open",
                citizen_email=citizen.email if citizen else "", citizen_name=citizen.name if citizen else "",
                language=classification.language, outcome=decision.outcome, flags=list(decision.flags),
                subject=mail.subject[:500], priority=decision.priority, tags=list(decision.tags),
                team=decision.team or (investigator.team if investigator else None),
                also_sent_to=list(decision.match.also_sent_to),
                investigator_email=investigator.email if investigator else None,
                investigator_name=investigator.name if investigator else None,
                investigator_phone=investigator.phone if investigator else None)


def _rendered(session: Session, intake: Any, reply: Reply, case: Case | None, mail: Mail) -> dict[str, str]:
    """The Subject and plain text the reply would be sent with (`replies.reply_subject`, as
    `queue_reply` builds them), or {"error": ...} when its template fails (the reply would not
    be sent)."""
    extra = {"cases": overview_cases(session, reply)} if reply.template == STATUS_OVERVIEW else None
    reply, context, case_ref = reply_setup(intake.settings, case, reply, mail, extra)
    try:
        rendered = intake.renderer.render(reply.template, reply.language, context)
    except RulesError as err:
        return {"error": str(err)}
    return {"subject": build_subject(rendered.subject_prefix, case_ref, reply.subject, language=rendered.language),
            "text": rendered.text}


def _reply(reply: Reply, rendered: dict[str, str], show_reply: bool = False) -> dict[str, Any]:
    """One reply as data, with the rule's answer or questions as the citizen would read them."""
    shown = {key: _plain(reply.context[key]) for key in ("reason", "answer_text", "questions") if key in reply.context}
    failed = {"template_error": rendered["error"]} if "error" in rendered else {}
    text = {"text": rendered["text"]} if show_reply and not failed else {}
    return {"template": reply.template, "to": str(reply.to), "language": reply.language,
            "subject": rendered.get("subject"), **failed, **shown, **text}


@contextmanager
def _reading(app: Any) -> Iterator[Session]:
    """A session that keeps nothing, whatever a stage may touch, and takes no lock a poller
    would wait for (`DRY_RUN`)."""
    session = app.sessions()
    session.info[DRY_RUN] = True
    try:
        session.begin()
        yield session
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database ({type(err).__name__}); "
                         "run `mailbot db upgrade` first") from err
    finally:
        session.rollback()
        session.close()


def explain_text(result: dict[str, Any]) -> str:
    """The explanation for a person."""
    lines: list[str] = []
    parse = result["parse"]
    if "error" in parse:
        told = [line for r in result["replies"] for line in (
            f"→ the sender is told: {r['template']} ({r['reason']}, {r['language']}) to {r['to']}",
            *_reply_lines(r, " " * 2))]
        return "\n".join([f"unreadable: {parse['error']}",
                          "→ quarantined" + ("" if result["replies"] else ", no reply"), *told])
    cls = result["classification"]
    lines.append(f"mail:      {parse['from']} — {parse['subject']!r}")
    lines.append(f"kind:      {cls['kind']} (language {cls['language']})")
    for reason in cls.get("reasons", []):
        lines.append(f"           · {reason}")
    match = result.get("match", {})
    if match.get("ref"):
        lines.append(f"thread:    joins {match['ref']}")
    elif match.get("needs_triage"):
        lines.append("thread:    uncertain — a new case flagged needs_triage")
    else:
        lines.append("thread:    no existing case")
    for evidence in match.get("evidence", []):
        lines.append(f"           · {evidence['method']}: {evidence['detail']} (score {evidence['score']:.0f})")
    for evidence in result.get("match_considered", []):
        if evidence not in match.get("evidence", []):
            lines.append(f"           considered {evidence['method']}: {evidence['detail']} "
                         f"(score {evidence['score']:.0f})")
    if "routing" in result:
        lines.append("rules:")
        lines.extend(f"  {line}" for line in result["routing"])
    if result.get("investigator"):
        pick = result["investigator"]
        chosen = pick["investigator"]
        lines.append(f"investigator: {chosen['name']} <{chosen['email']}>" if chosen else "investigator: nobody eligible")
        lines.extend(f"           · {why}" for why in pick["reasons"])
    decision = result["decision"]
    lines.append(f"decision:  {'open a new case' if decision['open_case'] else 'no new case'}; "
                 f"flags: {', '.join(decision['flags']) or '-'}")
    if not result["replies"]:
        lines.append("replies:   none")
    for reply in result["replies"]:
        lines.append(f"reply:     {reply['template']} ({reply['language']}) to {reply['to']}")
        indent = " " * 13
        lines.extend(_reply_lines(reply, " " * 11))
        if reply.get("answer_text"):
            lines.append("           answer:")
            for line in reply["answer_text"].split("\n"):
                lines.extend(textwrap.wrap(line, 100, initial_indent=indent, subsequent_indent=indent,
                                           break_long_words=False, break_on_hyphens=False) or [""])
        if reply.get("questions"):
            lines.append("           asks for:")
            for question in reply["questions"]:
                lines.extend(textwrap.wrap(question, 100, initial_indent=f"{indent}- ", subsequent_indent=f"{indent}  ",
                                           break_long_words=False, break_on_hyphens=False))
    lines.extend(_notice_lines(result.get("staff_notices") or []))
    return "\n".join(lines)


def _notice_lines(notices: list[dict[str, Any]]) -> list[str]:
    """Who on the staff would be told of the new case (a rule's `notify:`), and by which rules."""
    lines = []
    for notice in notices:
        asked = ", ".join(notice["rules"]) or "-"
        lines.append(f"staff notice: to {notice['to']} (asked by {asked})")
        indent = " " * 11
        if notice.get("skipped"):
            lines.append(f"{indent}NOT SENT: {notice['skipped']}")
            continue
        lines.append(f"{indent}subject: {notice['subject']}")
        if "text" in notice:
            lines.append(f"{indent}text:")
            lines.extend(f"{indent}  | {line}".rstrip() for line in notice["text"].rstrip("\n").split("\n"))
    return lines


def _reply_lines(reply: dict[str, Any], indent: str) -> list[str]:
    """The reply's subject, or why its template fails (it would not be sent), and its text
    when asked for (`--show-reply`)."""
    if reply.get("template_error"):
        return [f"{indent}NOT SENT: its template fails: {reply['template_error']}"]
    lines = [f"{indent}subject: {reply['subject']}"]
    if "text" in reply:
        lines.append(f"{indent}text:")
        lines.extend(f"{indent}  | {line}".rstrip() for line in reply["text"].rstrip("\n").split("\n"))
    return lines
