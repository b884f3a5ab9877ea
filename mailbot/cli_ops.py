"""Operations commands: digest, status, report, retention, privacy erase (issue 7)."""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime, timedelta
from typing import Any

import click

from .cli_args import YEAR, Day, normal_ref, shown_time, unknown_team


def _app(ctx: click.Context) -> Any:
    from .cli import _app as build

    return build(ctx)  # refuses a missing SQLite file: these commands only read or edit records


@click.command()
@click.option("--date", "day", type=Day(), help="the day (default: yesterday)")
@click.option("--print", "to_stdout", is_flag=True, help="print the plain-text digest")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="write the HTML digest here")
@click.option("--send", is_flag=True, help="send it as `mailbot run` does every morning: to digest.recipients "
              "and to every team in digest.teams (with --team: that team's only), once per day")
@click.option("--force", is_flag=True, help="with --send: send it again, also to whoever already got it")
@click.option("--team", help="only this team's cases (a team of digest.teams or of the rules)")
@click.pass_context
def digest(ctx: click.Context, day: date | None, to_stdout: bool, html_file: str | None,
           send: bool, force: bool, team: str | None) -> None:
    """The daily triage digest for staff (Dutch, text and HTML)."""
    from . import digest as digest_mod

    if not (to_stdout or html_file or send):
        raise click.UsageError("choose --print, --html FILE and/or --send")
    if force and not send:
        raise click.UsageError("--force goes with --send")
    app = _app(ctx)
    try:
        if team is not None:  # a typo would print an empty digest, or send one to nobody
            refused = unknown_team(team, [*app.settings.digest.teams, *(t.id for t in app.routing.ruleset.teams)])
            if refused:
                raise click.BadParameter(refused, ctx=ctx, param_hint="'--team'")
        the_day: date = day or app.local_today() - timedelta(days=1)
        if to_stdout or html_file:
            rendered = digest_mod.build(app.sessions, app.settings, the_day, team=team,
                                        templates=app.renderer.templates)
            if to_stdout:
                click.echo(rendered.text, nl=False)
            if html_file:
                try:  # owner-only: the digest names citizens
                    with os.fdopen(os.open(html_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600),
                                   "w", encoding="utf-8") as out:
                        out.write(rendered.html)
                except OSError as err:
                    raise click.ClickException(f"cannot write {html_file}: {err.strerror}") from None
        if send:
            _send_digest(app, the_day, team, force)
    finally:
        app.close()


def _send_digest(app: Any, day: date, team: str | None, force: bool) -> None:
    """What the scheduled job does (`App.send_digest`): the same Message-IDs, so a digest
    already queued for the day, by `mailbot run` or an earlier `--send`, is not sent again;
    a copy that failed is sent again. Says how many copies were sent, wait or failed, and
    exits 1 when one failed (the recipient and the server's answer are printed)."""
    from . import digest as digest_mod

    settings = app.settings.digest
    if team is not None and team not in settings.teams:  # a team of the rules that gets no digest
        raise click.ClickException(f"team {team!r} has no digest recipients: add it to digest.teams in config.yaml")
    if not (settings.teams[team] if team is not None else settings.recipients or any(settings.teams.values())):
        raise click.ClickException("no recipients: set digest.recipients (or digest.teams) in config.yaml")
    with app.sessions() as session:
        before = _digest_copies(session, day)
    if team is None:
        queued = app.send_digest(day, once=not force)
    else:
        queued = digest_mod.queue(app.sessions, app.settings, day, app.clock(), team=team, once=not force,
                                  templates=app.renderer.templates)
        if queued:
            app.send_outbox()
    with app.sessions() as session:
        # This run's copies: new rows, and failed ones queued again (`digest.queue` dates them anew).
        mine = [copy for row_id, copy in _digest_copies(session, day).items()
                if row_id not in before or before[row_id][1] != copy[1]]
    shown = day.isoformat()
    if not queued:
        click.echo(f"digest {shown} was already sent (or queued) to every recipient; nothing sent "
                   "(--force sends it again)", err=True)
        return
    statuses = [status for status, _, _, _ in mine]
    waiting, failed = statuses.count("pending"), [copy for copy in mine if copy[0] == "failed"]
    click.echo(f"digest {shown} queued for {queued} recipient(s); sent {statuses.count('sent')}"
               + (f"; {waiting} waiting for the mail server (see `mailbot status`)" if waiting else "")
               + (f"; {len(failed)} failed" if failed else ""), err=True)
    for _, _, recipient, error in failed:
        click.echo(f"  not delivered to {recipient}: {error}", err=True)
    if failed:
        click.echo("a failed copy is sent again by the next `mailbot digest --send` for this day", err=True)
        sys.exit(1)


def _digest_copies(session: Any, day: date) -> dict[int, tuple[str, datetime, str, str]]:
    """Outbox id → (status, queued at, recipient, last error) of every digest of `day`."""
    from sqlalchemy import select

    from .db import Outbox

    rows = session.execute(select(Outbox.id, Outbox.status, Outbox.created_at, Outbox.recipient, Outbox.last_error)
                           .where(Outbox.template == "digest", Outbox.message_id.like(f"digest.{day.isoformat()}.%")))
    return {row.id: (row.status, row.created_at, row.recipient, row.last_error or "") for row in rows}


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--check", is_flag=True, help="exit 1 when a mailbox's last successful poll is too old or a "
              "reply has waited more than 10 minutes to be sent (health check)")
@click.pass_context
def status(ctx: click.Context, as_json: bool, check: bool) -> None:
    """Last successful poll per mailbox, outbox queue and sending, quarantine, last errors,
    open cases without activity for `digest.idle_after_days`."""
    from .operational_status import idle_open_cases, max_reply_wait, problems

    app = _app(ctx)
    try:
        data = app.status()
        idle_days = app.settings.digest.idle_after_days
        with app.sessions() as session:
            data["idle_open_cases"] = idle_open_cases(session, idle_days, app.settings.schedule.timezone,
                                                      app.clock())
        data["idle_after_days"] = idle_days
    finally:
        app.close()
    data["max_reply_wait_seconds"] = max_reply_wait(app.settings.schedule.outbox_interval_seconds)
    data["problems"] = problems(data)
    data["healthy"] = not data["problems"]
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in _status_lines(data, app.settings.schedule.timezone):
            click.echo(line)
    if check and not data["healthy"]:
        sys.exit(1)


def _status_lines(data: dict[str, Any], zone: str) -> list[str]:
    """The text of `status`; times local with their offset (the JSON keeps them in UTC)."""
    lines = []
    for box in data["mailboxes"]:
        age = "never" if box["age_seconds"] is None else f"{box['age_seconds']}s ago"
        lines.append(f"mailbox {box['mailbox']}: last poll {age}"
                     + (f", polled by {box['lease_owner']}" if box["lease_owner"] else ""))
    queue = data["outbox"]
    lines.append(f"outbox: {queue['pending']} pending, {queue['held']} held, {queue['failed']} failed")
    sending = data["sending"]
    if sending["oldest_pending_at"]:
        lines.append(f"smtp: {sending['retrying']} to retry, the oldest waiting since "
                     f"{shown_time(sending['oldest_pending_at'], zone)}, its next try at "
                     f"{shown_time(sending['next_attempt_at'], zone)}")
    if sending["last_error"]:
        tried = sending["last_error_attempts"]  # 0: the server was never reached
        lines.append(f"smtp: the waiting replies' last error{f' (attempt {tried})' if tried else ''}: "
                     f"{sending['last_error']}")
    if sending["last_sent_at"]:
        lines.append(f"smtp: last reply accepted by the server at {shown_time(sending['last_sent_at'], zone)}")
    lines.append(f"quarantined: {data['quarantine_unresolved']} not read since ({data['quarantined']} in all; "
                 "mailbot quarantine list)")
    if data["idle_open_cases"] is not None:
        lines.append(f"idle open cases (no activity for {data['idle_after_days']} days or more): "
                     f"{data['idle_open_cases']}" + (" (close finished ones: mailbot case close REF)"
                                                     if data["idle_open_cases"] else ""))
    for error in data["last_errors"]:
        recovered = f" (recovered at {shown_time(error['recovered_at'], zone)})" if error["recovered_at"] else ""
        lines.append(f"error {shown_time(error['at'], zone)} {error['type']}: {error['error']}{recovered}")
    lines += ["healthy"] if data["healthy"] else [f"UNHEALTHY: {problem}" for problem in data["problems"]]
    return lines


@click.command()
@click.option("--year", type=YEAR, required=True)
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.pass_context
def report(ctx: click.Context, year: int, fmt: str) -> None:
    """Anonymous statistics for the annual report (no personal data)."""
    from . import report as report_mod
    from .services import service_for_address

    app = _app(ctx)
    try:
        def service_of(email: str) -> str | None:
            found = service_for_address(app.routing.ruleset, email)
            return found.name if found else None

        with app.sessions() as session:
            data = report_mod.build_report(session, year, tz=app.settings.schedule.timezone,
                                           service_of=service_of)
    finally:
        app.close()
    click.echo(report_mod.to_csv(data) if fmt == "csv" else report_mod.to_json(data), nl=fmt != "csv")


@click.command()
@click.option("--dry-run", is_flag=True, help="show what would be purged; change nothing")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def retention(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Purge or pseudonymise personal data past its retention period."""
    app = _app(ctx)
    try:
        report = app.run_retention(dry_run=dry_run)
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if report.folders.errors:  # the database part is done; cron or the operator must hear of the rest
        ctx.exit(1)


@click.group()
def privacy() -> None:
    """Data-subject requests and retention."""


@privacy.command("erase")
@click.option("--email", help="the data subject's address")
@click.option("--case", "case_ref", metavar="REF",
              help="one case, for a citizen with no address on file (a web form without one)")
@click.option("--dry-run", is_flag=True)
@click.pass_context
def privacy_erase(ctx: click.Context, email: str | None, case_ref: str | None, dry_run: bool) -> None:
    """Pseudonymise everything about one address (or one case); the audit event holds only counts."""
    from .privacy import erasable, erase, erase_case

    if (email is None) == (case_ref is None):
        raise click.UsageError("give --email ADDRESS or --case REF")
    if email is not None and not erasable(email):
        # An empty address matched every case without one (web-form cases): erased, though open.
        raise click.UsageError(f"--email must be an e-mail address, not {email.strip()!r}")
    app = _app(ctx)
    try:
        ref = normal_ref(case_ref or "", app.settings.office.reference_prefix)
        counts = (erase(app.sessions, email, dry_run=dry_run) if email is not None
                  else erase_case(app.sessions, ref, dry_run=dry_run))
    finally:
        app.close()
    if counts is None:
        raise click.ClickException(f"no case {ref}")  # as `case show`: "Error: no case REF", exit 1
    click.echo(counts.summary(dry_run=dry_run))
    if dry_run and counts.refs:
        click.echo(f"case(s) that would be pseudonymised ({len(counts.refs)}):")
        for line in counts.case_lines():
            click.echo(line)


privacy.add_command(retention, "retention")

COMMANDS: list[click.Command] = [digest, status, report, retention, privacy]
