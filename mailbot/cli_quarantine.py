"""`mailbot quarantine`: staff see quarantined mail and move it back to the inbox once the cause
is fixed (`quarantine_admin`)."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import click

from .cli_args import Day


def _app(ctx: click.Context) -> Any:
    from .cli import _app as build

    return build(ctx)


@click.group("quarantine")
def quarantine_group() -> None:
    """Mail the robot could not read: list it, move it back to the inbox after a fix."""


@quarantine_group.command("list")
@click.option("--since", type=Day(), help="quarantined on or after this day (local)")
@click.option("--reason", help="only mail whose reason contains this text (any case)")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def quarantine_list(ctx: click.Context, since: date | None, reason: str | None, limit: int, as_json: bool) -> None:
    """Quarantined mail, newest first, with its reason and where it stands: quarantined,
    retried (back in the inbox), resolved (read since) or emptied (by retention)."""
    from .quarantine_admin import find

    app = _app(ctx)
    zone = ZoneInfo(app.settings.schedule.timezone)
    try:
        with app.sessions() as session:
            items = find(session, since=datetime.combine(since, time(), zone) if since else None,
                         reason=reason, limit=limit)
    finally:
        app.close()
    if as_json:  # times in UTC, as every --json
        click.echo(json.dumps([item.as_dict() for item in items], indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("no quarantined mail")
    for item in items:
        click.echo("\n".join(_lines(item, zone)))


def _lines(item: Any, zone: ZoneInfo) -> list[str]:
    """One quarantined mail for the terminal: what came from outside is cleaned (`views.shown`)."""
    from .cli_outbox import clip
    from .views import local_time, shown

    state = item.state
    if item.resolved_message_id is not None:
        state += f" (message {item.resolved_message_id}" + (
            f", case {shown(item.resolved_case_ref)})" if item.resolved_case_ref else ")")
    elif item.retried_at is not None and item.state == "retried":
        state += f" ({local_time(item.retried_at, zone)} by {shown(item.retried_by) or '-'})"
    sender = shown(item.from_email) or "-"
    if item.from_name:
        sender = f"{shown(item.from_name)} <{sender}>"
    return [f"{item.id:>7}  {local_time(item.received_at, zone)}  {state}",
            f"         {item.size} bytes, mailbox {shown(item.mailboxes[0]) if item.mailboxes else '-'}"
            + (f", on case {shown(item.case_ref)}" if item.case_ref else ""),
            f"         from {clip(sender, 80)}: {clip(shown(item.subject), 100) or '-'}",
            f"         reason: {clip(shown(item.reason), 160)}"]


@quarantine_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="every mail still in quarantine")
@click.option("--dry-run", is_flag=True, help="look for the copies, move and record nothing")
@click.option("--by", help="who decides, for the audit trail (default: the login name)")
@click.pass_context
def quarantine_retry(ctx: click.Context, ids: tuple[int, ...], every: bool, dry_run: bool, by: str | None) -> None:
    """Move quarantined mail back to its mailbox's inbox, once the cause is fixed (e.g.
    limits.max_message_bytes raised): the next poll reads it again. A mail that reads now
    becomes a case; one that still cannot be read goes back to quarantine, its sender is
    not told twice."""
    from .cli_outbox import _login
    from .fetch import ImapFolders
    from .quarantine_admin import retry

    if bool(ids) == every:
        raise click.UsageError("give the ids of the quarantined mail (see `mailbot quarantine list`) or --all, "
                               "not both")
    app = _app(ctx)
    try:
        outcomes = retry(app.sessions, app.settings.all_mailboxes, None if every else list(ids),
                         dry_run=dry_run, by=((by or "").strip() or _login())[:200],
                         open_folders=lambda imap, readonly: ImapFolders(imap, readonly=readonly))
    finally:
        app.close()
    for outcome in outcomes:  # a refusal as every command's error: "Error: …", on stderr
        click.echo(outcome.text if outcome.done else f"Error: {outcome.text}", err=not outcome.done)
    if not outcomes:
        click.echo("no quarantined mail to retry")
    if any(not o.done for o in outcomes):
        ctx.exit(1)


COMMANDS = (quarantine_group,)
