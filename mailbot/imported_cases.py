"""The cases an import opens: the office dealt with them outside mailbot, before it.

An archive import opens a case per complaint in it, years of them, with no first reaction
recorded: the office answered them then, by hand. So a case opened by an import is marked
(an `case_imported` event) and the digest never lists it as waiting for a first reaction;
and at the end of an import, the imported cases whose last message is older than the
cut-off (by default `OPEN_DAYS` before the import) are closed, by "import". Later mail on
such a case is then flagged for staff (mail on a closed case), live mail no longer counts
it among the citizen's open cases, and retention counts from its last message: the case was
over then, and the office's retention period had been running since.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from . import store
from .db import Case, Event, Message
from .deferred import Ref

IMPORTED = "case_imported"  # event: the case was opened by `mailbot import`
OPEN_DAYS = 90  # imported cases with mail in the last 90 days before the import stay open
CLOSE_PAGE = 500  # cases closed per transaction


def default_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=OPEN_DAYS)


def mark_imported(session: Session, refs: Iterable[str]) -> None:
    """Mark the cases with these references as opened by an import."""
    refs = list(refs)
    if refs:
        for case_id in session.execute(select(Case.id).where(Case.ref.in_(refs))).scalars():
            store.add_event(session, IMPORTED, case=Ref(case_id))


def opened_by_import() -> Any:
    """SQL: the case (`Case`) was opened by an import."""
    return exists().where(Event.case_id == Case.id, Event.type == IMPORTED)


def close_old_imported(sessions: sessionmaker, *, before: datetime, now: datetime) -> int:
    """Close the open imported cases whose last message came before `before`; how many."""
    last_message = select(func.max(Message.received_at)).where(Message.case_id == Case.id).scalar_subquery()
    note = f"imported; last message before {before:%Y-%m-%d}"
    before = before.astimezone(timezone.utc)  # as stored (SQLite compares the text)
    page = (select(Case.id).where(Case.status == "open", opened_by_import(), last_message < before)
            .order_by(Case.id).limit(CLOSE_PAGE))
    closed = 0
    while True:
        with sessions.begin() as session:
            ids = list(session.execute(page).scalars())
            if not ids:
                return closed
            closed += store.close_open_cases(session, ids, now=now, by="import", note=note, closed_at=last_message)
