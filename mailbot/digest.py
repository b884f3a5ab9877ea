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

import dataclasses
import hashlib
import html
import logging
import re
import traceback
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

from . import _resources, sanitize
from .config import Settings
from .db import Outbox
from .digest_data import DigestData, collect
from .digest_info import IDLE_OPEN
from .digest_items import ChartDay, CountedSection, Item, Said, Section, template_said
from .errors import RulesError
from .office_time import in_office
from .render import TemplateSet, oneline
from .store import add_event

log = logging.getLogger("mailbot.digest")

TEMPLATE_DIR = "_digest"
COLORS = {"new_complaint": "#1f77b4", "follow_up": "#2ca02c", "agency_forward": "#9467bd",
          "status_request": "#ff7f0e", "automatic": "#7f7f7f", "unreadable": "#d62728",
          "staff_message": "#8c564b"}


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
    env.filters["oneline"] = oneline
    return env


def check_templates(templates_dir: Path) -> list[str]:
    """Problems of the digest templates as `templates/_digest/<file>:LINE: message`
    (`rules check`: otherwise the first sign of a broken digest is the morning's run): their
    syntax, and each rendered with sample digests (`sample_digests`: every section listing an
    item, a team's, an empty day), so a misspelt name or a labels.j2 without a section's key
    is found too."""
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
    if problems:
        return problems  # rendering would only say the same again
    for data in sample_digests():
        context = {"d": data, "office": "Vlaamse Ombudsdienst", "colors": COLORS, "working_days": 3,
                   "idle_days": 90, "day": data.day.strftime("%d-%m-%Y")}
        for name in _REQUIRED:
            try:
                env.get_template(name).render(context)
            except Exception as err:  # noqa: BLE001 - undefined names, a missing key, a type error
                problems.append(_where(err, folder, shown, name))
    return list(dict.fromkeys(problems))


def _where(err: Exception, folder: Path, shown: str, rendered: str) -> str:
    """`templates/_digest/<file>:LINE: message` for an error while rendering `rendered`: the
    innermost line of a digest template in the traceback (Jinja rewrites it to those)."""
    where, line = rendered, 1
    root = folder.resolve()
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename and Path(frame.filename).resolve().parent == root:
            where, line = Path(frame.filename).name, frame.lineno or 1
            break
    message = getattr(err, "message", None) or str(err) or type(err).__name__
    missing = re.search(r"has no attribute '([^']*)'", message)
    if missing and missing[1] in DECISION_SECTIONS + INFO_SECTIONS:
        message += f" (labels.j2 has no title for the digest section {missing[1]!r})"
    return f"{shown}/{where}:{line}: {message}"


def sample_digests() -> list[DigestData]:
    """Digests to check the templates with: one listing an item in every section (with what the
    robot said in English, a group label and a capped section), the same for a team, and a
    day with nothing in it."""
    said = Said("evidence.fuzzy", (("ref", "VO-2026-000123"), ("sender", Said("sender.same address")),
                                   ("status", "open"), ("subject", "92"), ("body", "88")), "fuzzy: …")
    item = Item("VO-2026-000123", template_said("ack_investigation"), "Jan Janssens <jan@example.be>", said,
                (Said("not_tried"), "8123 bytes"), ("spoofed_sender", "needs_triage"))
    flagged = Item("VO-2026-000124", "Klacht over De Lijn", "Jan Janssens <jan@example.be>",
                   "multi_addressed, possible_duplicate")

    def full(key: str) -> Section:
        if key in _FLAG_SECTIONS:
            return Section(key, [("", [flagged])])
        if key == "needs_triage":
            return Section(key, [("", [Item("VO-2026-000125", "Stand van zaken?", "an@example.be", "new_complaint",
                                            (said,), ("status_unmatched", "no_reply"))])])
        return CountedSection(key, [("Team onderwijs", [item]), ("… en nog 3", [])], total=4)

    day = date(2026, 11, 23)
    chart = [ChartDay(day, tuple((kind, 2) for kind in COLORS), 2 * len(COLORS))]
    totals = {"received": 12, "new_cases": 5, "replies_sent": 7, "needs_decision": 4}
    listed = DigestData(day, None, [full(k) for k in DECISION_SECTIONS], [full(k) for k in INFO_SECTIONS],
                        totals, chart, chart[0].total)
    empty = DigestData(day, None, [Section(k) for k in DECISION_SECTIONS], [Section(k) for k in INFO_SECTIONS],
                       dict.fromkeys(totals, 0), [ChartDay(day, (), 0)], 0)
    return [listed, dataclasses.replace(listed, team="onderwijs"), empty]


# Every section a digest has (`digest_data.collect`), in order; the check lists an item in each.
DECISION_SECTIONS = ("needs_triage", "multi_addressed", "agency_in_cc", "contact_wishes", "quarantined",
                     "undeliverable", "not_sent", "held", "staff_notices", "rules_failed", "overdue")
INFO_SECTIONS = ("new_cases", "quick_service", "referrals", "agency_forwards", "solutions", "status_requests",
                 "imported_open", IDLE_OPEN)
_FLAG_SECTIONS = ("multi_addressed", "agency_in_cc", "contact_wishes")


_REQUIRED = ("nl.txt.j2", "nl.html.j2", "nl.subject.j2")


def render(settings: Settings, data: DigestData, *, language: str = "nl",
           templates: TemplateSet | None = None) -> RenderedDigest:
    """Text, HTML and subject of one digest. When the office's digest templates fail (an
    older labels.j2 without the title of a newer section, found only on the day the section
    lists something), it is rendered with mailbot's own ones instead, with a note for staff
    and an error in the log: a digest with the wrong wording beats no digest at all."""
    context: dict[str, Any] = {"d": data, "office": settings.office.name, "colors": COLORS,
                               "working_days": settings.digest.first_reaction_working_days,
                               "idle_days": settings.digest.idle_after_days,
                               "day": data.day.strftime("%d-%m-%Y")}
    try:
        return _render_with(environment(settings.templates_dir, templates), language, context)
    except RulesError as err:
        try:
            shipped = _render_with(environment(_resources.templates_dir()), language, context)
        except RulesError:
            raise err from None  # the office's error is the one to fix
        log.error("digest %s: %s; sent with mailbot's own digest templates instead: run 'mailbot rules check' "
                  "and update %s", data.day.isoformat(), err, f"{Path(settings.templates_dir).name}/{TEMPLATE_DIR}")
        return _with_note(shipped, FALLBACK_NOTE.format(error=sanitize.clean_text(str(err))))


# Said at the top of a digest rendered with the shipped templates (`render`): staff see why
# it looks different, the administrator what to fix.
FALLBACK_NOTE = ("Let op: de eigen sjablonen van dit dagoverzicht (templates/_digest) gaven een fout, "
                 "daarom is het opgemaakt met de standaardsjablonen van mailbot. Fout: {error}. "
                 "Voor de beheerder: voer 'mailbot rules check' uit en werk templates/_digest bij "
                 "(een labels.j2 van een oudere versie mist de titels van nieuwe rubrieken).")


def _render_with(env: ImmutableSandboxedEnvironment, language: str, context: dict[str, Any]) -> RenderedDigest:
    try:
        text = env.get_template(f"{language}.txt.j2").render(context)
        html_part = env.get_template(f"{language}.html.j2").render(context)
        subject = env.get_template(f"{language}.subject.j2").render(context)
    except TemplateSyntaxError as err:
        raise RulesError(f"digest template {TEMPLATE_DIR}/{err.name}:{err.lineno}: {err.message}") from err
    except Exception as err:  # noqa: BLE001 - undefined names and the like, at render time
        raise RulesError(f"digest template: {err}") from err
    return RenderedDigest(sanitize.header_text(subject), text.strip() + "\n", html_part.strip() + "\n")


def _with_note(digest: RenderedDigest, note: str) -> RenderedDigest:
    """`digest` with `note` above its text and as the first paragraph of its HTML body."""
    paragraph = f'<p style="border:1px solid #c00;padding:6px;color:#900">{html.escape(note)}</p>'
    body = re.search(r"<body[^>]*>", digest.html)
    at = body.end() if body else 0
    return RenderedDigest(digest.subject, f"{note}\n\n{digest.text}",
                          f"{digest.html[:at]}\n{paragraph}{digest.html[at:]}")


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
    msg["Date"] = format_datetime(in_office(now, settings.schedule.timezone))  # the office's offset
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
