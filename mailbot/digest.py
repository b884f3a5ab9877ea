"""The daily triage digest for staff: rendered from `digest_data`, sent through the outbox.

Templates live in `templates/_digest/` (Dutch; `nl.txt.j2`, `nl.html.j2`, `nl.subject.j2`,
shared labels in `labels.j2`). They are rendered in the same sandbox as the replies,
with StrictUndefined, and the HTML is autoescaped: every value from a mail (subjects,
names, reasons) is escaped.

Sending: one outbox row per recipient (template `digest`, no case), so the digest gets
the outbox's retries and backoff when SMTP is down. The scheduled digest has a Message-ID
derived from the day, team and recipient (`scheduled_message_id`): queueing it again (the
retry, the catch-up after a restart, `digest --send`) adds only the recipients still without
it, and two `mailbot run` processes queueing the same digest collide on the outbox's unique
Message-ID, so only one copy is sent. A copy that failed for good (the server refused it) is
not "already sent": queueing again sends it again, under the same Message-ID; a refusal never
blocks a staff address (`outbox`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, cast

from jinja2 import DictLoader, FileSystemLoader, StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import sanitize
from .config import Settings
from .db import Outbox
from .digest_data import DigestData, collect
from .errors import RulesError
from .render import TemplateSet
from .store import add_event

log = logging.getLogger("mailbot.digest")

TEMPLATE_DIR = "_digest"
COLORS = {"new_complaint": "#1f77b4", "follow_up": "#2ca02c", "agency_forward": "#9467bd",
          "status_request": "#ff7f0e", "automatic": "#7f7f7f", "unreadable": "#d62728"}


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


def environment(templates_dir: Path, templates: TemplateSet | None = None) -> ImmutableSandboxedEnvironment:
    """The digest's sandbox: from `templates`, the set in force (a broken `_digest` file on disk
    is refused at reload like any template, and the last good one renders), else from disk."""
    prefix = f"{TEMPLATE_DIR}/"
    loader = (DictLoader({name[len(prefix):]: text.decode("utf-8") for name, text in templates.files.items()
                          if name.startswith(prefix)})
              if templates is not None and not templates.missing
              else FileSystemLoader(str(Path(templates_dir) / TEMPLATE_DIR), encoding="utf-8"))
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined, autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        auto_reload=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["oneline"] = lambda value: sanitize.clean_text(str(value))
    return env


def check_templates(templates_dir: Path) -> list[str]:
    """Syntax problems of the digest templates as `templates/_digest/<file>:LINE: message`
    (`rules check`: otherwise the first sign of a broken digest is the morning's run)."""
    folder = Path(templates_dir) / TEMPLATE_DIR
    shown = f"{Path(templates_dir).name}/{TEMPLATE_DIR}"
    if not folder.is_dir():
        return [f"{shown}:1: digest templates missing"]
    env = environment(templates_dir)
    problems = [f"{shown}/{name}:1: file missing" for name in _REQUIRED if not (folder / name).is_file()]
    for path in sorted(folder.glob("*.j2")):
        try:
            env.get_template(path.name)
        except TemplateSyntaxError as err:
            problems.append(f"{shown}/{path.name}:{err.lineno}: {err.message}")
    return problems


_REQUIRED = ("nl.txt.j2", "nl.html.j2", "nl.subject.j2")


def render(settings: Settings, data: DigestData, *, language: str = "nl",
           templates: TemplateSet | None = None) -> RenderedDigest:
    """Text, HTML and subject of one digest."""
    env = environment(settings.templates_dir, templates)
    context: dict[str, Any] = {"d": data, "office": settings.office.name, "colors": COLORS,
                               "working_days": settings.digest.first_reaction_working_days,
                               "idle_days": settings.digest.idle_after_days,
                               "day": data.day.strftime("%d-%m-%Y")}
    try:
        text = env.get_template(f"{language}.txt.j2").render(context)
        html = env.get_template(f"{language}.html.j2").render(context)
        subject = env.get_template(f"{language}.subject.j2").render(context)
    except TemplateSyntaxError as err:
        raise RulesError(f"digest template {TEMPLATE_DIR}/{err.name}:{err.lineno}: {err.message}") from err
    except Exception as err:  # noqa: BLE001 - undefined names and the like, at render time
        raise RulesError(f"digest template: {err}") from err
    return RenderedDigest(sanitize.header_text(subject), text.strip() + "\n", html.strip() + "\n")


def build(sessions: sessionmaker, settings: Settings, day: date, *, team: str | None = None,
          templates: TemplateSet | None = None) -> RenderedDigest:
    with sessions() as session:
        return render(settings, collect(session, settings, day, team=team), templates=templates)


def compose(settings: Settings, digest: RenderedDigest, recipient: str, message_id: str,
            now: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr((sanitize.display_name(settings.smtp.from_name or settings.office.name),
                              settings.smtp.from_address))
    msg["To"] = sanitize.check_address(recipient)
    msg["Subject"] = digest.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["Precedence"] = "bulk"
    msg.set_content(digest.text)
    msg.add_alternative(digest.html, subtype="html")
    return bytes(msg)


def queue(sessions: sessionmaker, settings: Settings, day: date, now: datetime, *,
          team: str | None = None, recipients: list[str] | None = None, once: bool = True,
          templates: TemplateSet | None = None) -> int:
    """Queue the digest for each recipient; returns how many rows were queued.

    `once`: a deterministic Message-ID per (day, team, recipient): queueing again (another
    worker, a restart after a crash half-way) adds only the recipients still without it, or
    whose copy failed (that row is queued again), and nothing is built when none is left.
    Without it (`digest --send --force`) it is sent again.
    """
    targets = recipients if recipients is not None else _recipients(settings, team)
    failed: set[str] = set()
    if once:
        with sessions() as session:
            targets, failed = _not_queued(session, settings, day, team, targets)
    if not targets:
        return 0
    digest = build(sessions, settings, day, team=team, templates=templates)
    queued = 0
    for recipient in targets:
        bare = (scheduled_message_id(settings, day, team, recipient) if once
                else f"digest.{day.isoformat()}.{uuid.uuid4().hex}@{_domain(settings)}")
        try:
            mime = compose(settings, digest, recipient, f"<{bare}>", now)
        except sanitize.HeaderError as err:
            # Config validation refuses such an address; should one get through anyway,
            # only this recipient goes without: the others still get the digest.
            log.error("digest %s%s not queued for %r: %s", day.isoformat(), f" (team {team})" if team else "",
                      recipient, err)
            with sessions.begin() as session:
                add_event(session, "digest_failed", day=day.isoformat(), team=team, recipient=recipient[:320],
                          error=str(err)[:500])
            continue
        if bare in failed:
            with sessions.begin() as session:
                queued += _queue_again(session, bare, mime, now)
            continue
        try:
            with sessions.begin() as session:
                session.add(Outbox(case_id=None, message_pk=None, template="digest", recipient=recipient,
                                   message_id=bare, mime=mime,
                                   status="pending", created_at=now, next_attempt_at=now))
                session.flush()
                queued += 1
        except IntegrityError:
            continue  # already queued by another worker
    if queued:  # another worker that queued it notes it; no empty note per racing worker
        with sessions.begin() as session:
            _note(session, day, team, queued)
    return queued


def scheduled_message_id(settings: Settings, day: date, team: str | None, recipient: str) -> str:
    """The bare Message-ID of the scheduled digest of `day` for one recipient of the staff
    digest (`team` None) or of a team's: the same in every process and at every try."""
    key = f"{day.isoformat()}|{team or ''}|{recipient.lower()}"
    return f"digest.{day.isoformat()}.{hashlib.sha256(key.encode()).hexdigest()[:24]}@{_domain(settings)}"


def _not_queued(session: Session, settings: Settings, day: date, team: str | None,
                recipients: list[str]) -> tuple[list[str], set[str]]:
    """`recipients` without those whose scheduled digest of `day` is in the outbox already,
    sent or waiting (a failed copy is to be queued again), and the bare Message-IDs of the
    failed copies."""
    ids = {recipient: scheduled_message_id(settings, day, team, recipient) for recipient in recipients}
    if not ids:
        return [], set()
    present = {bare: status for bare, status in session.execute(select(Outbox.message_id, Outbox.status).where(
        Outbox.template == "digest", Outbox.message_id.in_(set(ids.values()))))}
    failed = {bare for bare, status in present.items() if status == "failed"}
    return [recipient for recipient in recipients if ids[recipient] not in present or ids[recipient] in failed], failed


def _queue_again(session: Session, bare: str, mime: bytes, now: datetime) -> int:
    """A failed copy due again now, as if new (its tries counted afresh, the digest as built
    now): 1, or 0 when another worker queued it again first."""
    again = session.execute(
        update(Outbox).where(Outbox.template == "digest", Outbox.message_id == bare, Outbox.status == "failed")
        .values(status="pending", mime=mime, attempts=0, last_error=None, created_at=now, next_attempt_at=now,
                sent_at=None)
        .execution_options(synchronize_session=False))
    return int(cast(CursorResult, again).rowcount or 0)


def _domain(settings: Settings) -> str:
    return settings.smtp.from_address.rpartition("@")[2] or "localhost"


def _recipients(settings: Settings, team: str | None) -> list[str]:
    return list(settings.digest.teams.get(team, [])) if team else list(settings.digest.recipients)


def _note(session: Session, day: date, team: str | None, queued: int) -> None:
    add_event(session, "digest_queued", day=day.isoformat(), team=team, recipients=queued)
