"""Staff decisions on replies the robot did not send by itself: held ones and failed ones.

A reply over a flood limit is *held* for staff: `release` sends it after all, `cancel` drops
it. A reply that *failed* for good (a 5xx, or retries used up) can be tried again with
`retry` once the cause is gone, or dropped with `cancel`. Replies still pending belong to
the sender, which may have them on the wire: staff cannot change those. Every decision is an
event on the case, with who made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .addresses import mark_deliverable, undeliverable
from .db import Case, Outbox, utc_iso
from .deferred import Ref
from .outbox import STAFF_MAIL
from .store import add_event


@dataclass(frozen=True)
class Action:
    name: str
    from_statuses: frozenset[str]
    to_status: str
    event: str


ACTIONS = {
    "release": Action("release", frozenset({"held"}), "pending", "reply_released"),
    "retry": Action("retry", frozenset({"failed"}), "pending", "reply_retried"),
    "cancel": Action("cancel", frozenset({"held", "failed"}), "cancelled", "reply_cancelled"),
}
NEEDS_STAFF = ("held", "failed")


@dataclass(frozen=True)
class Outcome:
    outbox_id: int
    done: bool
    message: str  # done: what became of it; refused: why, naming the reply ("no reply 7")


def refusal(action: Action, status: str) -> str | None:
    """Why `action` cannot apply to a reply in `status`, or None. Pure."""
    if status in action.from_statuses:
        return None
    allowed = " or ".join(sorted(action.from_statuses))
    return f"the reply is {status}; {action.name} applies to {allowed} replies only"


def ids_in_status(session: Session, statuses: Sequence[str]) -> list[int]:
    """Every reply in one of `statuses` (for `--all`)."""
    return list(session.execute(select(Outbox.id).where(Outbox.status.in_(list(statuses)))
                                .order_by(Outbox.id)).scalars())


def apply(session: Session, action: Action, ids: Sequence[int], *, now: datetime, by: str,
          address_works: bool = False) -> list[Outcome]:
    """Apply `action` to the replies `ids`, each on its own merits; returns one outcome each.

    `retry` refuses a reply whose address is marked undeliverable (it would fail again at
    once) unless staff say the address works again (`address_works`), which clears it.
    """
    query = select(Outbox).where(Outbox.id.in_(list(ids)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # a sender recording a result waits, then sees the change
    rows = {row.id: row for row in session.execute(query).scalars()}
    outcomes = []
    for outbox_id in dict.fromkeys(ids):
        row = rows.get(outbox_id)
        if row is None:
            outcomes.append(Outcome(outbox_id, False, f"no reply {outbox_id}"))
            continue
        refused = refusal(action, row.status)
        if refused is None and action.name == "retry" and undeliverable(session, row.recipient):
            if not address_works:
                refused = (f"{row.recipient} is marked undeliverable; if it works again, "
                           "retry with --address-works")
            else:
                mark_deliverable(session, row.recipient, reason=f"cleared by {by} for a retry", now=now)
        if refused is not None:
            outcomes.append(Outcome(outbox_id, False, f"reply {outbox_id}: {refused}"))
            continue
        _change(session, row, action, now)
        add_event(session, action.event, case=Ref(row.case_id) if row.case_id else None,
                  template=row.template, outbox_id=row.id, recipient=row.recipient, by=by)
        outcomes.append(Outcome(outbox_id, True, f"{action.to_status}: {row.template} to {row.recipient}"))
    return outcomes


def _change(session: Session, row: Outbox, action: Action, now: datetime) -> None:
    row.status = action.to_status
    if action.to_status != "pending":
        return
    row.next_attempt_at, row.last_error = now, None
    if action.name == "retry":
        row.attempts = 0
    case = session.get(Case, row.case_id) if row.case_id is not None else None
    if case is not None and case.first_reaction_at is None and row.template not in STAFF_MAIL:
        case.first_reaction_at = now  # the citizen hears from us now, as for any queued reply


def listing(session: Session, statuses: Sequence[str], limit: int) -> list[dict[str, Any]]:
    """Replies in `statuses`, oldest first, as plain dicts (for the CLI and its `--json`)."""
    rows = session.execute(select(Outbox, Case.ref).outerjoin(Case, Outbox.case_id == Case.id)
                           .where(Outbox.status.in_(list(statuses)))
                           .order_by(Outbox.id).limit(limit)).all()
    return [{"id": row.id, "status": row.status, "case_ref": ref, "template": row.template,
             "recipient": row.recipient, "attempts": row.attempts,
             "created_at": utc_iso(row.created_at),
             "next_attempt_at": utc_iso(row.next_attempt_at) if row.status == "pending" else None,
             "last_error": row.last_error} for row, ref in rows]

