"""What `mailbot status` shows: last poll per mailbox, outbox queue sizes, sending health,
quarantine count and the last errors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .db import Event, MailboxState, Message, Outbox, as_utc

ERROR_EVENTS = ("poll_failed", "reply_failed", "rules_reload_failed", "digest_failed", "retention_failed")


def _sending(session: Session) -> dict:
    """Replies waiting for a retry, the oldest waiting reply and the newest SMTP error: a long
    SMTP outage shows here before any reply fails for good."""
    retrying, oldest = session.execute(
        select(func.count().filter(Outbox.last_error.is_not(None)), func.min(Outbox.created_at))
        .where(Outbox.status == "pending")).one()
    latest = session.execute(
        select(Outbox.last_error, Outbox.attempts)
        .where(Outbox.status == "pending", Outbox.last_error.is_not(None))
        .order_by(Outbox.next_attempt_at.desc()).limit(1)).first()
    return {"retrying": int(retrying or 0),
            "oldest_pending_at": as_utc(oldest).isoformat() if oldest else None,
            "last_error": latest.last_error[:300] if latest else None,
            "last_error_attempts": latest.attempts if latest else None}


def operational_status(session: Session, mailboxes: list[str], now: datetime) -> dict:
    """Last poll per mailbox, outbox queue sizes, quarantine count and the last errors."""
    states = {s.mailbox: s for s in session.execute(select(MailboxState)).scalars()}
    boxes = []
    for name in mailboxes:
        state = states.get(name)
        last = as_utc(state.last_poll_at) if state and state.last_poll_at else None
        until = as_utc(state.lease_until) if state and state.lease_until else None
        boxes.append({"mailbox": name, "last_poll_at": last.isoformat() if last else None,
                      "age_seconds": round((now - last).total_seconds()) if last else None,
                      "lease_owner": state.lease_owner if state and until and until > now else None})
    queue = dict(session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
    errors = session.execute(select(Event).where(Event.type.in_(ERROR_EVENTS))
                             .order_by(Event.id.desc()).limit(5)).scalars()
    return {
        "mailboxes": boxes,
        "outbox": {k: int(queue.get(k, 0)) for k in ("pending", "held", "failed")},
        "sending": _sending(session),
        "quarantined": session.execute(select(func.count()).select_from(Message)
                                       .where(Message.quarantine_reason.is_not(None))).scalar_one(),
        "last_errors": [{"at": as_utc(e.created_at).isoformat(), "type": e.type,
                         "error": str(e.detail.get("error") or e.detail.get("template") or "")[:300]}
                        for e in errors],
    }
