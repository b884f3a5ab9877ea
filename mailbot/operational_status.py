"""What `mailbot status` shows: last poll per mailbox, outbox queue sizes, sending health,
quarantine count and the last errors, each with the success that ended it, if any."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from .db import Case, Event, MailboxState, Message, Outbox, as_utc, utc_iso
from .digest_items import day_window

ERROR_EVENTS = ("poll_failed", "reply_failed", "rules_reload_failed", "digest_failed", "retention_failed")
# The success that ends each kind of failure: a later event of this type (for a poll, of the
# same mailbox; for a digest, of the same day).
RECOVERY_EVENTS = {"poll_failed": "poll_recovered", "digest_failed": "digest_queued",
                   "retention_failed": "retention_run", "rules_reload_failed": "rules_reloaded"}
# A reply still waiting after this long is late, whatever the reason (the mail server down or
# refusing our login or TLS, deferring it with 4xx, no sender running): `status --check`
# fails. Replies normally leave within a minute (the outbox runs every 30 s, a first retry
# comes 15-30 s after a failure), so only an outage of several minutes gets near this.
MIN_REPLY_WAIT_SECONDS = 600


def _sending(session: Session, now: datetime) -> dict:
    """Replies waiting for a retry, the oldest waiting reply and its next try, the waiting
    replies' newest SMTP error, and the last reply the server accepted: a long SMTP outage
    shows here before any reply fails for good. (The outbox keeps no time of an error, so the
    last accepted reply is shown beside it, not compared with it.)"""
    retrying = session.execute(select(func.count()).where(Outbox.status == "pending",
                                                          Outbox.last_error.is_not(None))).scalar_one()
    oldest = session.execute(select(Outbox.created_at, Outbox.next_attempt_at)
                             .where(Outbox.status == "pending")
                             .order_by(Outbox.created_at, Outbox.id).limit(1)).first()
    latest = session.execute(
        select(Outbox.last_error, Outbox.attempts)
        .where(Outbox.status == "pending", Outbox.last_error.is_not(None))
        .order_by(Outbox.next_attempt_at.desc()).limit(1)).first()
    last_sent = session.execute(select(func.max(Outbox.sent_at)).where(Outbox.status == "sent")).scalar_one()
    waited = max(now - as_utc(oldest.created_at), timedelta(0)) if oldest else None
    return {"retrying": int(retrying or 0),
            "oldest_pending_at": utc_iso(oldest.created_at) if oldest else None,
            "oldest_pending_seconds": round(waited.total_seconds()) if waited is not None else None,
            "next_attempt_at": utc_iso(oldest.next_attempt_at) if oldest else None,
            "last_error": latest.last_error[:300] if latest else None,
            "last_error_attempts": latest.attempts if latest else None,
            "last_sent_at": utc_iso(last_sent)}


def _recovered_at(session: Session, error: Event, last_polls: dict[str, datetime]) -> datetime | None:
    """When a later success ended this failure, or None while it is the latest news. A poll
    also counts as recovered by any successful poll of its mailbox since (`poll --once`
    records no recovery event)."""
    recovery = RECOVERY_EVENTS.get(error.type)
    if recovery is None:
        return None
    query = select(func.min(Event.created_at)).where(Event.type == recovery,
                                                     Event.created_at > error.created_at)
    if error.type == "poll_failed":
        query = query.where(Event.detail["mailbox"].as_string() == str(error.detail.get("mailbox")))
    if error.type == "digest_failed":
        query = query.where(Event.detail["day"].as_string() == str(error.detail.get("day")))
    found = session.execute(query).scalar_one()
    if found is None and error.type == "poll_failed":
        polled = last_polls.get(str(error.detail.get("mailbox")))
        found = polled if polled is not None and polled > as_utc(error.created_at) else None
    return as_utc(found) if found is not None else None


def max_reply_wait(outbox_interval_seconds: float) -> int:
    """Seconds a reply may wait before `status --check` fails: 10 minutes, or three outbox
    runs and a minute when the outbox runs less often (as `schedule.max_poll_age_seconds`)."""
    return max(MIN_REPLY_WAIT_SECONDS, round(3 * outbox_interval_seconds + 60))


def problems(data: dict) -> list[str]:
    """Why the robot is unhealthy (empty: healthy), from `operational_status` and the limits
    the caller added (`max_poll_age_seconds`, `max_reply_wait_seconds`). Pure."""
    found = []
    poll_limit = data["max_poll_age_seconds"]
    for box in data["mailboxes"]:
        if box["age_seconds"] is None:
            found.append(f"mailbox {box['mailbox']} was never polled successfully")
        elif box["age_seconds"] > poll_limit:
            found.append(f"mailbox {box['mailbox']}: no successful poll in {box['age_seconds']}s "
                         f"(more than {poll_limit}s)")
    waited, wait_limit = data["sending"]["oldest_pending_seconds"], data["max_reply_wait_seconds"]
    if waited is not None and waited > wait_limit:
        found.append(f"a reply has waited {waited // 60} min to be sent (more than {wait_limit // 60} min)")
    return found


def operational_status(session: Session, mailboxes: list[str], now: datetime) -> dict:
    """Last poll per mailbox, outbox queue sizes, quarantine count and the last errors."""
    states = {s.mailbox: s for s in session.execute(select(MailboxState)).scalars()}
    last_polls = {name: as_utc(s.last_poll_at) for name, s in states.items() if s.last_poll_at}
    boxes = []
    for name in mailboxes:
        state = states.get(name)
        last = last_polls.get(name)
        until = as_utc(state.lease_until) if state and state.lease_until else None
        boxes.append({"mailbox": name, "last_poll_at": utc_iso(last),
                      "age_seconds": round((now - last).total_seconds()) if last else None,
                      "lease_owner": state.lease_owner if state and until and until > now else None})
    queue = dict(session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
    errors = session.execute(select(Event).where(Event.type.in_(ERROR_EVENTS))
                             .order_by(Event.id.desc()).limit(5)).scalars()
    return {
        "mailboxes": boxes,
        "outbox": {k: int(queue.get(k, 0)) for k in ("pending", "held", "failed")},
        "sending": _sending(session, now),
        "quarantined": session.execute(select(func.count()).select_from(Message)
                                       .where(Message.quarantine_reason.is_not(None))).scalar_one(),
        "quarantine_unresolved": _unresolved_quarantine(session),
        "last_errors": [{"at": utc_iso(e.created_at), "type": e.type,
                         "error": str(e.detail.get("error") or e.detail.get("template") or "")[:300],
                         "recovered_at": utc_iso(_recovered_at(session, e, last_polls))}
                        for e in errors],
    }


def _unresolved_quarantine(session: Session) -> int:
    """Quarantined mail not read since (`mailbot quarantine retry`, or moved back by hand):
    no readable incoming message has its bytes. `quarantined` counts every one ever."""
    read = aliased(Message)
    return session.execute(select(func.count()).select_from(Message).where(
        Message.quarantine_reason.is_not(None),
        ~exists().where(read.sha256 == Message.sha256, read.direction == "in",
                        read.quarantine_reason.is_(None), read.kind != "unreadable"))).scalar_one()


def idle_open_cases(session: Session, idle_after_days: int, tz: str, now: datetime) -> int | None:
    """Open cases idle for `idle_after_days` days or more (last activity, `Case.updated_at`, on
    or before the local day that many days ago, as the digest counts): all of them, also those
    whose day in the digest passed unseen. None when the count is off (0)."""
    if not idle_after_days:
        return None
    today = now.astimezone(ZoneInfo(tz)).date()
    _, cutoff = day_window(today - timedelta(days=idle_after_days), tz)
    return session.execute(select(func.count()).select_from(Case).where(
        Case.status == "open", Case.updated_at < cutoff)).scalar_one()
