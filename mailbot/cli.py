"""The `mailbot` command line: thin commands over `app`."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlalchemy.exc import SQLAlchemyError

from .cli_args import Day, normal_ref
from .config import Settings, default_config_path, load_settings
from .db_engine import describe_error
from .db_check import hint
from .errors import MailbotError


def _settings(ctx: click.Context) -> Settings:
    settings = load_settings(default_config_path(ctx.obj.get("config_path")))
    ctx.obj["database_url"] = settings.database.url  # for the error line (MailbotGroup)
    return settings


def _app(ctx: click.Context, *, routes_mail: bool = False):
    """The app; `routes_mail`: the command applies the rules (run, poll). Any other only
    reads or edits records, and a refusal of the rules on disk is a warning there: the robot
    itself reports it as an error, where it matters."""
    from .app import create_app
    from .db_engine import refuse_missing_sqlite

    settings = _settings(ctx)
    # A mistyped SQLite path must not leave an empty database behind: only `db upgrade`
    # (and `import`, `demo`) create one.
    refuse_missing_sqlite(settings.database.url)
    if routes_mail:
        return create_app(settings)
    with rules_refusal_as_warning():
        return create_app(settings, rules_required=False)


@contextmanager
def rules_refusal_as_warning() -> Iterator[None]:
    """While the app is built for a command that routes no mail (or explains one on the set
    in force), the rules' refusal is a warning: the robot itself reports it as an error."""
    rules_log = logging.getLogger("mailbot.rules")
    demote = _AtMostWarning()
    rules_log.addFilter(demote)
    try:
        yield
    finally:
        rules_log.removeFilter(demote)


class _AtMostWarning(logging.Filter):
    """Lowers ERROR records to WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class MailbotGroup(click.Group):
    """Turns a MailbotError or a database error into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MailbotError as err:
            click.echo(f"mailbot: {err}", err=True)
            sys.exit(2)
        except SQLAlchemyError as err:
            obj = ctx.obj or {}
            url = obj.get("database_url")
            click.echo(f"mailbot: database: {describe_error(err, url)}"
                       f"{hint(err, url, upgrading=bool(obj.get('upgrading')))}", err=True)
            sys.exit(2)


@click.group(cls=MailbotGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="config.yaml (default: $MAILBOT_CONFIG, else ./config.yaml)")
@click.option("-v", "--verbose", is_flag=True, help="log debug detail")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """E-mail intake robot for an ombudsman's complaints office."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    if not verbose:  # Alembic narrates every migration step, APScheduler every job run, at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or update the database schema."""
    from .db_engine import make_engine
    from .migrate import upgrade

    settings = _settings(ctx)
    ctx.obj["upgrading"] = True  # an error here is not answered with "run 'mailbot db upgrade'"
    engine = make_engine(settings.database.url)
    upgrade(engine)
    engine.dispose()
    click.echo("database schema is up to date")


@cli.command()
@click.option("--once", is_flag=True, required=True, help="one cycle, then exit (cron-friendly)")
@click.pass_context
def poll(ctx: click.Context, once: bool) -> None:
    """Fetch and process the inbox, then send the outbox."""
    app = _app(ctx, routes_mail=True)
    try:
        report = app.poll_once()
        sent = app.send_outbox()
    finally:
        app.close()
    for name in report.busy_mailboxes:
        click.echo(f"mailbot: {name} is being polled by another worker; skipped", err=True)
    click.echo(f"fetched {report.fetched}, processed {report.processed}, quarantined "
               f"{report.quarantined}, duplicates {report.duplicates}; replies sent {sent.sent}, "
               f"retrying {sent.retried}, failed {sent.failed}")


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Long-running: poll, send the outbox, digest and retention on a schedule."""
    from .scheduler import Runner

    app = _app(ctx, routes_mail=True)
    try:
        Runner(app).run()
    finally:
        app.close()


@cli.group()
def case() -> None:
    """Look up, close and reopen cases."""


CASE_STATUSES = ("open", "closed")
_DAY = Day()


@case.command("list")
@click.option("--status", type=click.Choice(CASE_STATUSES), help="only cases with this status")
@click.option("--citizen", help="a citizen's whole address, or part of an address or name (any case)")
@click.option("--flag", help="only cases with this flag (e.g. needs_triage, possible_duplicate)")
@click.option("--team", help="only cases of this team")
@click.option("--investigator", help="an investigator's address, or part of the name")
@click.option("--since", type=_DAY, help="created on or after this day (YYYY-MM-DD, local time)")
@click.option("--until", type=_DAY, help="created on or before this day (YYYY-MM-DD, local time)")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="skip this many (the next page)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def case_list(ctx: click.Context, status: str | None, citizen: str | None, flag: str | None, team: str | None,
              investigator: str | None, since: date | None, until: date | None, limit: int, offset: int,
              as_json: bool) -> None:
    """Cases, newest first; the filters given all apply."""
    from . import store, views

    if since and until and since > until:
        raise click.UsageError("--since is after --until")
    app = _app(ctx)
    try:
        zone = ZoneInfo(app.settings.schedule.timezone)
        with app.sessions() as session:
            cases, total = store.list_cases(
                session, status=status, citizen=citizen, flag=flag, team=team, investigator=investigator,
                created_from=_local_midnight(since, zone), created_before=_local_midnight(until, zone, after=True),
                limit=limit, offset=offset, with_messages=as_json)
            if as_json:
                sent = views.deliveries_of(session, (m.id for c in cases for m in c.messages if m.direction == "out"))
                click.echo(json.dumps([views.case_dict(c, deliveries=sent) for c in cases], indent=2,
                                      ensure_ascii=False))
            else:
                counts = views.message_counts(session, [c.id for c in cases])
                click.echo(views.case_table(cases, zone=zone, message_counts=counts) if cases else "no cases")
    finally:
        app.close()
    if offset or len(cases) < total:
        more = f"; next page: --offset {offset + len(cases)}" if offset + len(cases) < total else ""
        click.echo(f"{len(cases)} of {total} shown{more}", err=True)


def _local_midnight(day: date | None, zone: ZoneInfo, *, after: bool = False) -> datetime | None:
    """The start of `day` (or of the day after it) in the office's time zone, in UTC."""
    if day is None:
        return None
    start = datetime.combine(day + timedelta(days=1 if after else 0), datetime.min.time(), zone)
    return start.astimezone(timezone.utc)


@case.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def case_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One case: its messages with what became of each reply, and its history."""
    from . import store, views

    app = _app(ctx)
    try:
        wanted = normal_ref(ref, app.settings.office.reference_prefix)
        with app.sessions() as session:
            found = store.case_by_ref(session, wanted)
            if found is None:
                raise click.ClickException(f"no case {wanted}")
            detail = views.load_detail(session, found)
            click.echo(json.dumps(views.case_dict(found, detail=detail), indent=2, ensure_ascii=False) if as_json
                       else views.case_text(found, detail, zone=ZoneInfo(app.settings.schedule.timezone)))
    finally:
        app.close()


_BY = click.option("--by", help="who decides, for the audit trail (default: the login name)")
_NOTE = click.option("--note", default="", help="why, for the audit trail (no personal data)")
_CHANGED_JSON = click.option("--json", "as_json", is_flag=True,
                             help="the case as `case show --json`, plus `changed`")


@case.command("close")
@click.argument("ref")
@_NOTE
@_BY
@_CHANGED_JSON
@click.pass_context
def case_close(ctx: click.Context, ref: str, note: str, by: str | None, as_json: bool) -> None:
    """Close a case: its personal data is pseudonymised `retention.closed_case_days` later.

    Mail that still comes in on it is threaded into it, not reopening it, and listed for
    staff. Closing a closed case changes nothing."""
    _set_status(ctx, ref, close=True, note=note, by=by, as_json=as_json)


@case.command("reopen")
@click.argument("ref")
@_NOTE
@_BY
@_CHANGED_JSON
@click.pass_context
def case_reopen(ctx: click.Context, ref: str, note: str, by: str | None, as_json: bool) -> None:
    """Open a closed case again (retention no longer applies). Reopening an open case
    changes nothing."""
    _set_status(ctx, ref, close=False, note=note, by=by, as_json=as_json)


def _set_status(ctx: click.Context, ref: str, *, close: bool, note: str, by: str | None,
                as_json: bool) -> None:
    from . import store, views
    from .cli_outbox import _login
    from .privacy import is_pseudonymised

    app = _app(ctx)
    wanted = normal_ref(ref, app.settings.office.reference_prefix)
    try:
        with app.sessions.begin() as session:
            found = store.case_by_ref(session, wanted)
            if found is None:
                raise click.ClickException(f"no case {wanted}")
            if not close and is_pseudonymised(found):
                raise click.ClickException(f"{found.ref}: its personal data was pseudonymised (retention "
                                           "or an erasure request); it cannot be reopened")
            change = store.close_case if close else store.reopen_case
            changed = change(session, found, now=app.clock(), by=((by or "").strip() or _login())[:200],
                             note=note.strip()[:2000])
        with app.sessions() as session:  # after the commit: the history has the event just written
            found = store.case_by_ref(session, wanted)
            assert found is not None  # cases are never deleted
            data = {**views.case_dict(found, detail=views.load_detail(session, found)), "changed": changed}
            closed_at = views.local_time(found.closed_at, ZoneInfo(app.settings.schedule.timezone))
        days = app.settings.retention.closed_case_days
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif close and changed:
        click.echo(f"{data['ref']} closed; its personal data is pseudonymised by `mailbot retention` "
                   f"{days} days after closing")
    elif close:
        click.echo(f"{data['ref']} was already closed (since {closed_at}); nothing changed")
    elif changed:
        click.echo(f"{data['ref']} reopened")
    else:
        click.echo(f"{data['ref']} is not closed (status {data['status']}); nothing changed")


@cli.command()
@click.option("--output", type=click.Path(file_okay=False), help="folder for the results")
@click.option("--json", "as_json", is_flag=True, help="print the cases as JSON")
def demo(output: str | None, as_json: bool) -> None:
    """The whole flow on an embedded IMAP server, SMTP sink and SQLite: nothing to install."""
    from .demo import run_demo

    run_demo(Path(output) if output else None, as_json=as_json)


def _register_optional() -> None:
    """Commands that live in their own modules, one module per area."""
    from . import cli_import, cli_ops, cli_outbox, cli_quarantine
    from .cli_rules import rules_group

    cli.add_command(rules_group)
    for command in (*cli_ops.COMMANDS, *cli_import.COMMANDS, *cli_outbox.COMMANDS,
                    *cli_quarantine.COMMANDS):
        cli.add_command(command)


_register_optional()


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
