"""`mailbot demo`: the whole flow on embedded servers, with a realistic mailbag.

An in-process IMAP server (pymap), an SMTP sink (aiosmtpd) and a SQLite file in the output
folder; nothing to install. Two poll rounds (the second quotes the references the first one
handed out), the outbox sent after each, then a report for people: what happened to every
mail, the cases with their flags, the replies as `.eml` files, the digest as HTML.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imapclient
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from . import _resources, demo_scenario, views
from .config import settings_from_mapping
from .db import Case, Message, Outbox
from .db_engine import make_engine
from .embedded import EmbeddedImap, EmbeddedSmtp

if TYPE_CHECKING:  # imported late in run_scenario: alembic logs on import, before run_demo quiets it
    from .app import App
    from .pipeline import Outcome

OFFICE = demo_scenario.OFFICE
# Per-message INFO lines from the robot, the migrations and the SMTP sink: noise in a demo.
_CHATTY_LOGGERS = ("mailbot", "alembic", "mail.log", "aiosmtpd")


@dataclass
class DemoResult:
    output: Path
    cases: list[dict[str, Any]]
    rows: list[tuple[demo_scenario.ScenarioMail, Outcome]]
    replies: list[Path]
    quarantined: list[dict[str, Any]]
    digest: Path | None
    digest_note: str
    case_table: str
    seconds: float = 0.0


class _Progress:
    """One line per step on stderr, with its duration; silent steps stay fast."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"  … {text}", end="", file=sys.stderr, flush=True)
        yield
        print(f" ({time.monotonic() - began:.1f} s)", file=sys.stderr, flush=True)


def demo_config(output: Path, imap: EmbeddedImap, smtp: EmbeddedSmtp) -> dict[str, Any]:
    """The configuration the demo runs with (also written to OUTPUT/config.yaml)."""
    return {
        "imap": {"host": imap.host, "port": imap.port, "security": "none", "username": imap.username,
                 "password": imap.password, "folder": "INBOX", "processed_folder": "Verwerkt",
                 "quarantine_folder": "Quarantaine", "batch_size": 50, "timeout_seconds": 10},
        "smtp": {"host": smtp.host, "port": smtp.port, "security": "none", "from_address": OFFICE,
                 "from_name": "Vlaamse Ombudsdienst", "timeout_seconds": 10},
        "database": {"url": f"sqlite:///{output / 'mailbot.sqlite3'}"},
        "office": {"name": "Vlaamse Ombudsdienst", "reference_prefix": "VO", "phone": "1700",
                   "address": "Leuvenseweg 86, 1000 Brussel", "website": "https://www.vlaamseombudsdienst.be"},
        "digest": {"recipients": ["onthaal@vlaamseombudsdienst.be"]},
        "rules_dir": str(_resources.rules_dir()),
        "templates_dir": str(_resources.templates_dir()),
        "limits": {"max_message_bytes": demo_scenario.DEMO_MAX_MESSAGE_BYTES},
    }


def _deliver(imap: EmbeddedImap, mails: list[demo_scenario.ScenarioMail], inbox_copy: Path) -> None:
    """APPEND the mails to INBOX over one connection; keep a copy of each as .eml."""
    inbox_copy.mkdir(parents=True, exist_ok=True)
    client = imapclient.IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    try:
        client.login(imap.username, imap.password)
        for mail in mails:
            client.append("INBOX", mail.raw)
            (inbox_copy / f"{mail.round}-{mail.key}.eml").write_bytes(mail.raw)
    finally:
        client.logout()


def _poll(app: App, mails: list[demo_scenario.ScenarioMail]) -> list[tuple[demo_scenario.ScenarioMail, Outcome]]:
    report = app.poll_once()
    app.send_outbox()
    # UIDs follow APPEND order, so outcomes line up with the mails delivered this round.
    return list(zip(mails, report.outcomes))


def _refs(app: App) -> dict[str, str]:
    with app.sessions() as session:
        found = {}
        for key, email in demo_scenario.REF_KEYS.items():
            ref = session.execute(select(Case.ref).where(Case.citizen_email == email)
                                  .order_by(Case.id).limit(1)).scalar_one()
            found[key] = ref
        return found


def _write_replies(app: App, smtp: EmbeddedSmtp, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with app.sessions() as session:
        templates = {row.message_id.strip("<>"): row.template for row in session.execute(select(Outbox)).scalars()}
    written = []
    for number, sent in enumerate(smtp.messages, 1):
        parsed = message_from_bytes(sent.content, policy=policy.default)
        message_id = str(parsed.get("Message-ID", "")).strip().strip("<>")
        template = templates.get(message_id, "reply")
        recipient = sent.rcpt_tos[0].split("@")[0] if sent.rcpt_tos else "unknown"
        path = folder / f"{number:02d}-{template}-{recipient}.eml"
        path.write_bytes(sent.content)
        written.append(path)
    return written


def _cases(app: App) -> list[dict[str, Any]]:
    with app.sessions() as session:
        rows = session.execute(select(Case).options(selectinload(Case.messages), selectinload(Case.duplicate_of))
                               .order_by(Case.id)).scalars()
        # priority and tags are not (yet) in the `case list --json` contract; the demo shows them.
        return [{"priority": case.priority, "tags": list(case.tags), **views.case_dict(case)} for case in rows]


def _case_table(app: App) -> str:
    with app.sessions() as session:
        rows = list(session.execute(select(Case).options(selectinload(Case.messages)).order_by(Case.id)).scalars())
        return views.case_table(rows)


def _quarantined(app: App) -> list[dict[str, Any]]:
    with app.sessions() as session:
        rows = session.execute(select(Message).where(Message.quarantine_reason.is_not(None))).scalars()
        return [{"size": m.size, "reason": m.quarantine_reason} for m in rows]


def _digest(app: App, output: Path) -> tuple[Path | None, str]:
    """The triage digest as HTML and plain text."""
    try:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from . import digest

        today = datetime.now(ZoneInfo(app.settings.schedule.timezone)).date()
        rendered = digest.build(app.sessions, app.settings, today)
        target = output / "digest.html"
        target.write_text(rendered.html, encoding="utf-8")
        (output / "digest.txt").write_text(rendered.text, encoding="utf-8")
        return target, f"Digest for staff: {target} (open it in a browser; plain text: digest.txt)"
    except Exception as err:  # noqa: BLE001 - the demo shows everything else regardless
        return None, f"digest: not available ({type(err).__name__}: {err})"


def run_scenario(output: Path, progress: _Progress | None = None) -> DemoResult:
    """Run the demo into `output`; returns what happened (no printing but progress)."""
    from .app import create_app
    from .migrate import upgrade

    progress = progress or _Progress()
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    for stale in ("mailbot.sqlite3", "mailbot.sqlite3-wal", "mailbot.sqlite3-shm", "digest.html", "digest.txt"):
        (output / stale).unlink(missing_ok=True)  # a previous run into the same folder
    for old in [*output.glob("replies/*.eml"), *output.glob("inbox/*.eml")]:
        old.unlink()
    with progress.step("starting the embedded IMAP server, SMTP sink and SQLite database"):
        imap = EmbeddedImap(OFFICE, secrets.token_urlsafe(12)).start()
        smtp = EmbeddedSmtp().start()
    try:
        config = demo_config(output, imap, smtp)
        settings = settings_from_mapping(config)
        imap.create_folders(settings.imap.processed_folder, settings.imap.quarantine_folder)
        engine = make_engine(settings.database.url)
        upgrade(engine)
        app = create_app(settings, engine=engine)
        try:
            first = demo_scenario.round_one()
            with progress.step(f"round 1: {len(first)} mails in the inbox; polling and sending replies"):
                _deliver(imap, first, output / "inbox")
                rows = _poll(app, first)
            second = demo_scenario.round_two(_refs(app), first)
            with progress.step(f"round 2: {len(second)} mails quoting the new references; polling again"):
                _deliver(imap, second, output / "inbox")
                rows += _poll(app, second)
            with progress.step("writing replies, cases and digest"):
                replies = _write_replies(app, smtp, output / "replies")
                cases = _cases(app)
                (output / "cases.json").write_text(json.dumps(cases, indent=2, ensure_ascii=False), encoding="utf-8")
                digest_path, digest_note = _digest(app, output)
                result = DemoResult(output, cases, rows, replies, _quarantined(app), digest_path,
                                    digest_note, _case_table(app))
        finally:
            app.close()
    finally:
        smtp.stop()
        imap.stop()
    config["imap"]["password"] = "the-demo-servers-are-stopped"  # keep no secret in the file
    (output / "config.yaml").write_text(
        "# The demo's configuration. Look at the results with:\n"
        f"#   mailbot --config {output / 'config.yaml'} case list\n" + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8")
    result.seconds = time.monotonic() - started
    return result


_ACTION_WORDS = {"open_case": "new case", "thread": "added to its case", "pending": "reply ",
                 "held": "reply held for staff: ", "skipped": "no reply: ", "quarantine": "quarantined"}


def _describe(action: str) -> str:
    """`pending:ack_investigation` → `reply ack_investigation` (it was sent after the poll)."""
    status, _, template = action.partition(":")
    if not template:
        return _ACTION_WORDS.get(status, status)
    return _ACTION_WORDS.get(status, f"{status} ") + template


def _what_happened(rows: list[tuple[demo_scenario.ScenarioMail, Outcome]], urgent: set[str]) -> str:
    header = ("#", "MAIL", "KIND", "CASE", "ROBOT DID", "SHOWS")
    lines = [header]
    for number, (mail, outcome) in enumerate(rows, 1):
        did = ", ".join(_describe(action) for action in outcome.actions) or outcome.disposition
        if outcome.kind == "automatic":
            did = "ignored (automatic mail), no reply"
        elif outcome.disposition == "duplicate":
            did = "second copy: recorded once, no reply"
        case = (outcome.case_ref or "-") + (" (urgent)" if outcome.case_ref in urgent else "")
        lines.append((str(number), f"{mail.round}-{mail.key}", outcome.kind or "-", case, did,
                      mail.shows))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1] for row in lines)


def report_text(result: DemoResult) -> str:
    """The result the way a person wants to read it."""
    urgent = {c["ref"] for c in result.cases if c.get("priority") == "urgent"}
    out = [f"\nmailbot demo: {len(result.rows)} mails, {len(result.cases)} cases, {len(result.replies)} replies "
           f"sent, {len(result.quarantined)} quarantined, in {result.seconds:.1f} s\n",
           "What the robot did with each mail:", _what_happened(result.rows, urgent), "",
           "Cases (mailbot case list):", result.case_table, "", f"Replies sent ({result.output / 'replies'}):"]
    out += [f"  {path.name}" for path in result.replies]
    out += ["", "Quarantined:"] + [f"  {q['size']} bytes: {q['reason']}" for q in result.quarantined]
    out += ["", result.digest_note, "",
            "Files:",
            f"  {result.output / 'inbox'}/      the scenario mails; see how one was handled:",
            f"      mailbot --config {result.output / 'config.yaml'} rules explain {result.output / 'inbox'}/FILE.eml",
            f"  {result.output / 'replies'}/    every reply the SMTP sink received, as .eml",
            f"  {result.output / 'cases.json'}  the cases as JSON (what `case list --json` gives)",
            f"  {result.output / 'mailbot.sqlite3'}  the database",
            f"  {result.output / 'config.yaml'}  the demo's configuration:",
            f"      mailbot --config {result.output / 'config.yaml'} case show {result.cases[0]['ref']}"]
    return "\n".join(out)


def run_demo(output: Path | None, as_json: bool = False) -> DemoResult:
    """`mailbot demo`: run the scenario, then print the report (or the cases as JSON)."""
    folder = (output or Path(tempfile.mkdtemp(prefix="mailbot-demo-"))).resolve()
    if logging.getLogger().level > logging.DEBUG:  # `mailbot -v demo` keeps every log line
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    print(f"mailbot demo: results go to {folder}", file=sys.stderr)
    result = run_scenario(folder)
    if as_json:
        print(json.dumps(result.cases, indent=2, ensure_ascii=False))
    else:
        print(report_text(result))
    return result
