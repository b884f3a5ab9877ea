"""One poller per mailbox: a lease on the mailbox's `mailbox_state` row.

The lease is taken and renewed by one conditional UPDATE (owner is us, or nobody, or the
holder's lease ran out), so it works the same on SQLite and PostgreSQL. A live holder
renews it every third of its duration; a dead one (kill -9) stops renewing and the next
process takes over once `lease_until` has passed. Shutdown releases it at once.

The lease keeps two pollers from working on one mailbox at the same time; the unique
receipt (mailbox, UIDVALIDITY, UID) and message identity remain the last line of defence:
even a holder that stalled past its lease cannot commit a message twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import sessionmaker

from .db import MailboxState

log = logging.getLogger("mailbot.lease")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_owner() -> str:
    """Who we are, for the lease row and `mailbot status`: host, pid and a random tag."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(sessions: sessionmaker, mailbox: str, owner: str, seconds: float,
            *, now: datetime | None = None) -> bool:
    """Take or renew the lease on `mailbox`; False while another live owner holds it."""
    now = now or utcnow()
    with sessions.begin() as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(MailboxState).values(mailbox=mailbox).on_conflict_do_nothing())
        result = session.execute(
            update(MailboxState)
            .where(MailboxState.mailbox == mailbox,
                   or_(MailboxState.lease_owner.is_(None), MailboxState.lease_owner == owner,
                       MailboxState.lease_until.is_(None), MailboxState.lease_until < now))
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def release(sessions: sessionmaker, mailbox: str, owner: str) -> None:
    """Give the lease up (graceful shutdown): the next poller need not wait for it to expire."""
    with sessions.begin() as session:
        session.execute(
            update(MailboxState)
            .where(MailboxState.mailbox == mailbox, MailboxState.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


class Leases:
    """The leases this process holds, one per mailbox, and their renewal."""

    def __init__(self, sessions: sessionmaker, *, seconds: float, owner: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.seconds = seconds
        self.owner = owner or new_owner()
        self.clock = clock
        self._held: set[str] = set()
        self._lost: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def claim(self, mailbox: str) -> bool:
        """Take (or keep) the mailbox; a fresh claim clears an earlier loss."""
        ok = acquire(self.sessions, mailbox, self.owner, self.seconds, now=self.clock())
        with self._lock:
            if ok:
                self._held.add(mailbox)
                self.lost(mailbox).clear()
            else:
                self._drop(mailbox)
        return ok

    def lost(self, mailbox: str) -> threading.Event:
        """Set when a renewal finds that someone else has the mailbox now."""
        return self._lost.setdefault(mailbox, threading.Event())

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def renew(self) -> None:
        """Renew every held lease (the heartbeat job); a lease that is gone is marked lost."""
        for mailbox in self.held():
            self.claim(mailbox)

    @contextmanager
    def kept_alive(self, mailbox: str) -> Iterator[None]:
        """Renew the lease every third of its duration while the block runs."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(max(0.5, self.seconds / 3)):
                try:
                    self.claim(mailbox)
                except Exception as err:  # noqa: BLE001 - a busy database: try again next beat
                    log.warning("lease on %s not renewed: %s", mailbox, err)

        thread = threading.Thread(target=renew, name=f"lease-{mailbox}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def release(self, mailbox: str) -> None:
        release(self.sessions, mailbox, self.owner)
        with self._lock:
            self._held.discard(mailbox)

    def release_all(self) -> None:
        for mailbox in self.held():
            self.release(mailbox)

    def _drop(self, mailbox: str) -> None:
        if mailbox in self._held:
            self._held.discard(mailbox)
            self.lost(mailbox).set()


class StopWhen:
    """`is_set()` of several events: the pipeline's `stop` for one poll."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class StoppableMailbox:
    """A mailbox whose `fetch` stops handing out messages once `stop` is set, so a poll
    ends after the message in flight: that one is committed and moved, the rest stay in
    the inbox untouched (not even \\Seen)."""

    def __init__(self, inner: Any, stop: Any) -> None:
        self.inner, self.stop = inner, stop
        self.name, self.uidvalidity = inner.name, inner.uidvalidity

    def uids(self) -> list[int]:
        return self.inner.uids()

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        return self.inner.sizes(uids)

    def fetch(self, uids: Sequence[int]) -> Iterator[Any]:
        for fetched in self.inner.fetch(uids):
            if self.stop.is_set():
                return
            yield fetched

    def move(self, uids: Sequence[int], folder: str) -> None:
        self.inner.move(uids, folder)

    def close(self) -> None:
        self.inner.close()


def merge_reports(total: Any, report: Any | None) -> None:
    """Add one mailbox's PollReport to the total of a poll over several mailboxes."""
    if report is None:
        return
    for key in ("fetched", "processed", "quarantined", "duplicates", "moved"):
        setattr(total, key, getattr(total, key) + getattr(report, key))
    total.outcomes.extend(report.outcomes)
