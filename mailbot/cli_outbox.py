"""`mailbot outbox`: staff look at replies held or failed and decide what happens to them."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

STATUSES = ("held", "failed", "pending", "sent", "cancelled")


def _app(ctx: click.Context) -> Any:
    from .cli import _app as build

    return build(ctx)


@click.group("outbox")
def outbox_group() -> None:
    """Replies held over a limit or failed: list them, release, retry or cancel them."""


@outbox_group.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="only replies with this status (repeatable; default: held and failed)")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def outbox_list(ctx: click.Context, statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Replies that need a staff decision, oldest first."""
    from .cli_args import shown_time
    from .outbox_admin import NEEDS_STAFF, listing
    from .views import shown

    app = _app(ctx)
    try:
        with app.sessions() as session:
            rows = listing(session, statuses or NEEDS_STAFF, limit)
    finally:
        app.close()
    if as_json:  # times in UTC, as every --json
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    zone = app.settings.schedule.timezone  # text: local times with their offset, as `case show`
    if not rows:
        click.echo("no replies")
    for row in rows:  # recipients and SMTP errors come from outside: cleaned for the terminal
        next_try = f", next try {shown_time(row['next_attempt_at'], zone)}" if row["next_attempt_at"] else ""
        click.echo(f"{row['id']:>7}  {row['status']:<9} {shown(row['case_ref']) or '-':<16} "
                   f"{shown(row['template']):<20} {shown(row['recipient'])}  ({row['attempts']} attempts{next_try}) "
                   f"{clip(shown(row['last_error']), 100)}")


def clip(text: str, width: int) -> str:
    """`text` on one line, cut at a word boundary with an ellipsis when longer than `width`."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[:width]
    if flat[width] != " " and " " in cut:  # the cut falls inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:(") + "…"


def _decide(ctx: click.Context, action_name: str, ids: tuple[int, ...], every: bool, by: str | None,
            address_works: bool = False) -> None:
    from .outbox_admin import ACTIONS, apply, ids_in_status

    action = ACTIONS[action_name]
    if bool(ids) == every:
        raise click.UsageError("give the ids of the replies (see `mailbot outbox list`)"
                               + (" or --all, not both" if action_name != "cancel" else ""))
    app = _app(ctx)
    try:
        with app.sessions.begin() as session:
            chosen = ids_in_status(session, sorted(action.from_statuses)) if every else list(ids)
            outcomes = apply(session, action, chosen, now=app.clock(), by=by or _login(),
                             address_works=address_works)
        sent = app.send_outbox() if action.to_status == "pending" and any(o.done for o in outcomes) else None
    finally:
        app.close()
    for outcome in outcomes:  # a refusal as every command's error: "Error: no reply 7", on stderr
        click.echo(f"{outcome.outbox_id}: {outcome.message}" if outcome.done else f"Error: {outcome.message}",
                   err=not outcome.done)
    if sent is not None:
        click.echo(f"replies sent {sent.sent}, failed {sent.failed}")
    if not outcomes:
        click.echo("no replies to " + action.name)
    if any(not o.done for o in outcomes):
        ctx.exit(1)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "staff"


_BY = click.option("--by", help="who decides, for the audit trail (default: the login name)")


@outbox_group.command("release")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="every held reply")
@_BY
@click.pass_context
def outbox_release(ctx: click.Context, ids: tuple[int, ...], every: bool, by: str | None) -> None:
    """Send held replies after all (staff override the flood limit)."""
    _decide(ctx, "release", ids, every, by)


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="every failed reply")
@click.option("--address-works", is_flag=True,
              help="the recipient's address was marked undeliverable but works again: clear it")
@_BY
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], every: bool, address_works: bool,
                 by: str | None) -> None:
    """Try failed replies again, attempts counted from zero."""
    _decide(ctx, "retry", ids, every, by, address_works=address_works)


@outbox_group.command("cancel")
@click.argument("ids", nargs=-1, type=int)
@_BY
@click.pass_context
def outbox_cancel(ctx: click.Context, ids: tuple[int, ...], by: str | None) -> None:
    """Never send these held or failed replies."""
    _decide(ctx, "cancel", ids, False, by)


COMMANDS = (outbox_group,)
