"""Tell staff about a new case: a routing rule's `notify:` addresses each get a short Dutch mail.

The notice is queued in the outbox in the intake's transaction, after the citizen's replies,
so it has the outbox's retries, crash safety and exactly-once (as far as SMTP allows); its
Message-ID is derived from the case and the address (`notice_message_id`), so one case never
tells one address twice. It is mail to staff, not a reply (`outbox.STAFF_MAIL`): it counts
towards no reply limit, is no first reaction, never blocks an address nor flags the case
when it fails, and is not filed in the Sent folder. It carries the case (`case_id`):
retention and erasure scrub it with the case's other outgoing mail.

The text comes from `templates/_staff_notice/nl.txt.j2` of the templates in force; a
templates folder without it (an installation older than the notice), or a copy that fails
to render, falls back to the shipped one, so a notice is never lost to a template.
"""

from __future__ import annotations

import hashlib
import logging
import textwrap
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import _resources, sanitize
from .compose import compose_plain
from .config import Settings
from .db import Case, Outbox
from .model import Address, Mail
from .office_time import in_office
from .outbox import STAFF_NOTICE
from .render import TemplateSet, oneline
from .rules import Rule
from .store import add_event

log = logging.getLogger("mailbot.staff_notice")

TEMPLATE_DIR = "_staff_notice"
TEXT_FILE = "nl.txt.j2"
# The start of the citizen's mail in the notice: enough to judge the urgency, not the file.
EXCERPT_LINES = 15
EXCERPT_WIDTH = 76


def asking_rules(rules: Sequence[Rule], fired: Sequence[str], address: str) -> tuple[str, ...]:
    """The fired rules whose `notify:` names `address`, in rule order."""
    wanted = address.lower()
    asked = {rule.name: rule.then.notify for rule in rules}
    return tuple(name for name in fired if wanted in asked.get(name, ()))


def excerpt(text: str) -> str:
    """The first lines of a mail's text, cleaned of control characters, wrapped at
    `EXCERPT_WIDTH`, blank runs collapsed, at most `EXCERPT_LINES`; "…" says there is more."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = sanitize.clean_text(raw)
        if not line and (not lines or not lines[-1]):
            continue  # leading and repeated blank lines
        for part in textwrap.wrap(line, EXCERPT_WIDTH) or [""]:
            if len(lines) == EXCERPT_LINES:
                while lines and not lines[-1]:
                    lines.pop()
                return "\n".join([*lines, "…"])
            lines.append(part)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def notice_subject(case_ref: str, rules: Sequence[str], subject: str) -> str:
    """`[REF] Melding: <rule(s)> – <the complaint's subject>`, one clean header line."""
    reason = ", ".join(rules) or "nieuw dossier"
    return sanitize.header_text(f"[{case_ref}] Melding: {reason} – {subject.strip() or '(geen onderwerp)'}")


def notice_context(case: Case, mail: Mail, *, rules: Sequence[str], fired: Sequence[str]) -> dict[str, Any]:
    """What the notice's template shows of the case (see templates/README.md)."""
    return {
        "case_ref": case.ref,
        "citizen": {"name": sanitize.clean_text(case.citizen_name or ""), "email": case.citizen_email or ""},
        "subject": sanitize.clean_text(case.subject or mail.subject),
        "rules": list(rules), "rules_fired": list(fired),
        "priority": case.priority, "tags": list(case.tags or ()), "flags": sorted(case.flags or ()),
        "team": case.team or "",
        "investigator": {"name": case.investigator_name or "", "email": case.investigator_email or ""},
        "excerpt": excerpt(mail.text),
        "command": f"mailbot case show {case.ref}",
    }


def _environment(files: Mapping[str, str]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(loader=DictLoader(dict(files)), undefined=StrictUndefined,
                                        autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["oneline"] = oneline
    return env


def _template_line(err: Exception) -> int:
    """The template's line a runtime error happened on: Jinja rewrites the traceback to a
    `<template>` frame (the notice is loaded from a string)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == "<template>"]
    return (frames[-1].lineno or 1) if frames else 1


def _render(source: str, context: Mapping[str, Any]) -> str:
    return _environment({TEXT_FILE: source}).get_template(TEXT_FILE).render(context).strip() + "\n"


def _shipped_source() -> str:
    return (_resources.templates_dir() / TEMPLATE_DIR / TEXT_FILE).read_text(encoding="utf-8")


def render_text(templates: TemplateSet | None, context: Mapping[str, Any]) -> str:
    """The notice's text from the templates in force, else from the shipped template."""
    data = templates.files.get(f"{TEMPLATE_DIR}/{TEXT_FILE}") if templates is not None else None
    if data is not None:
        try:
            return _render(data.decode("utf-8"), context)
        except (TemplateError, UnicodeDecodeError, TypeError, ValueError) as err:
            log.error("templates/%s/%s failed (%s): the shipped text is used", TEMPLATE_DIR, TEXT_FILE, err)
    return _render(_shipped_source(), context)


def check_templates(templates_dir: Path) -> list[str]:
    """Problems of the notice's template, `templates/_staff_notice/nl.txt.j2:LINE: message`,
    rendered with a sample case. None when the folder has no copy: the shipped one is used."""
    path = Path(templates_dir) / TEMPLATE_DIR / TEXT_FILE
    if not path.is_file():
        return []
    shown = f"{Path(templates_dir).name}/{TEMPLATE_DIR}/{TEXT_FILE}"
    try:
        _render(path.read_text(encoding="utf-8"), SAMPLE)
    except TemplateError as err:
        return [f"{shown}:{getattr(err, 'lineno', None) or _template_line(err)}: {err.message or err}"]
    except (UnicodeDecodeError, TypeError, ValueError) as err:
        return [f"{shown}:1: {err}"]
    return []


SAMPLE: dict[str, Any] = {
    "case_ref": "VO-2026-000123", "citizen": {"name": "Jan Peeters", "email": "jan.peeters@example.be"},
    "subject": "Dringend: uithuiszetting", "rules": ["urgent-situation"],
    "rules_fired": ["urgent-situation", "anonymity-requested"], "priority": "urgent", "tags": ["dringend"],
    "flags": ["anonymity_requested"], "team": "onthaal",
    "investigator": {"name": "Els Maes", "email": "els.maes@example.org"},
    "excerpt": "Geachte,\n\nMorgen worden wij uit onze woning gezet.\n…", "command": "mailbot case show VO-2026-000123",
}


def notice_message_id(settings: Settings, case_ref: str, recipient: str) -> str:
    """The bare Message-ID of the notice of one case to one address: the same at every try."""
    key = f"{case_ref}|{recipient.lower()}"
    domain = settings.smtp.from_address.rpartition("@")[2] or "localhost"
    return f"staff-notice.{hashlib.sha256(key.encode()).hexdigest()[:24]}@{domain}"


def compose_notice(settings: Settings, *, recipient: str, subject: str, text: str, message_id: str,
                   now: datetime) -> bytes:
    """The notice as a plain-text mail From the office (`compose.compose_plain`). Raises
    `sanitize.HeaderError` for an address no header can carry."""
    return compose_plain(from_address=settings.smtp.from_address,
                         from_name=settings.smtp.from_name or settings.office.name, to=Address("", recipient),
                         subject=subject, text=text, message_id=f"<{message_id}>",
                         date=in_office(now, settings.schedule.timezone))  # the office's offset


@dataclass(frozen=True)
class PlannedNotice:
    """One `notify` address of a new case: the fired rules that named it; `ours` when it is
    one of our own addresses (a notice would come back in as mail: none is sent)."""

    address: str
    rules: tuple[str, ...]
    ours: bool


def plan_notices(settings: Settings, notify: Sequence[str], fired: Sequence[str],
                 rules: Sequence[Rule]) -> list[PlannedNotice]:
    """The notices `notify` asks for, each address once (what `queue_notices` queues and
    `rules explain` shows). Pure."""
    own = {settings.smtp.from_address.lower(), *(m.username.lower() for m in settings.all_mailboxes)}
    return [PlannedNotice(address, asking_rules(rules, fired, address), address in own)
            for address in dict.fromkeys(a.lower() for a in notify)]


def queue_notices(session: Session, settings: Settings, templates: TemplateSet | None, *,
                  case: Case | None, mail: Mail, notify: Sequence[str], fired: Sequence[str],
                  rules: Sequence[Rule], now: datetime) -> list[str]:
    """Queue one notice per `notify` address about the new `case`; returns the addresses
    queued. Never one of our own addresses (it would come back in as mail), never twice
    for a case and address. Records a `staff_notified` event with who was told."""
    if case is None or case.id is None or not notify:
        return []
    told: list[str] = []
    for planned in plan_notices(settings, notify, fired, rules):
        address, asked = planned.address, planned.rules
        if planned.ours:
            add_event(session, "reply_skipped", case=case, template=STAFF_NOTICE,
                      reason="the recipient is one of our own addresses")
            continue
        bare = notice_message_id(settings, case.ref, address)
        if session.execute(select(Outbox.id).where(Outbox.message_id == bare)).first() is not None:
            continue  # this case told this address already
        try:
            text = render_text(templates, notice_context(case, mail, rules=asked, fired=fired))
            mime = compose_notice(settings, recipient=address, subject=notice_subject(case.ref, asked, case.subject),
                                  text=text, message_id=bare, now=now)
        except (sanitize.HeaderError, TemplateError, OSError) as err:
            _not_made(session, case, address, str(err))
            continue
        session.add(Outbox(case_id=case.id, message_pk=None, template=STAFF_NOTICE, recipient=address,
                           message_id=bare, mime=mime, status="pending", attempts=0,
                           created_at=now, next_attempt_at=now))
        told.append(address)
    if told:
        add_event(session, "staff_notified", case=case, to=told)
    return told


def _not_made(session: Session, case: Case, address: str, why: str) -> None:
    """A notice that could not be made: the digest lists the case for triage with the reason,
    so staff still hear of it."""
    log.error("staff notice on case %s to %s not made: %s", case.ref, address, why)
    if "needs_triage" not in case.flags:
        case.flags = sorted({*case.flags, "needs_triage"})
    add_event(session, "reply_skipped", case=case, template=STAFF_NOTICE,
              reason=f"staff notice to {address} not made: {why}"[:1000], flags=["needs_triage"])
