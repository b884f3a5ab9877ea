"""The cases an import opens: the office dealt with them outside mailbot, before it.

An archive import opens a case per complaint in it, years of them, with no first reaction
recorded: the office answered them then, by hand. So a case opened by an import is marked
(an `case_imported` event) and the digest never lists it as waiting for a first reaction;
and at the end of an import, the imported cases whose last message is older than the
cut-off (by default `OPEN_DAYS` before the import) are closed, by "import". Later mail on
such a case is then flagged for staff (mail on a closed case), live mail no longer counts
it among the citizen's open cases, and retention counts from its last message: the case was
over then, and the office's retention period had been running since.

That decision is taken once per case, by the import of the source that opened it: the mark
names its source (`source_key`), and a case the end of an import keeps open gets a
`case_import_kept_open` event. So a later import (of the same mail again, or of another
archive) leaves alone a case staff reopened, closed, or an earlier import kept open
(`--open-after`); and the complete run of an interrupted import decides the cases the
interrupted runs of that source opened as well. Cases imported before marks named their
source are never decided again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Text, cast, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from . import store
from .db import Case, Event, Message
from .deferred import Ref

IMPORTED = "case_imported"  # event: the case was opened by `mailbot import`
KEPT_OPEN = "case_import_kept_open"  # event: the end of its import left the case open
# Events after which the end of an import no longer decides about a case.
DECIDED = ("case_closed", "case_reopened", KEPT_OPEN)
OPEN_DAYS = 90  # imported cases with mail in the last 90 days before the import stay open
CLOSE_PAGE = 500  # cases closed per transaction


def default_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=OPEN_DAYS)


def source_key(mailbox: str, uidvalidity: int) -> str:
    """A short name of an import source (its receipts' mailbox and UIDVALIDITY): the mark
    carries no path of the operator's machine."""
    return hashlib.sha256(f"{mailbox}\0{uidvalidity}".encode()).hexdigest()[:16]


def mark_imported(session: Session, refs: Iterable[str], source: str) -> None:
    """Mark the cases with these references as opened by the import of `source` (`source_key`)."""
    refs = list(refs)
    if refs:
        for case_id in session.execute(select(Case.id).where(Case.ref.in_(refs))).scalars():
            store.add_event(session, IMPORTED, case=Ref(case_id), source=source)


def opened_by_import() -> Any:
    """SQL: the case (`Case`) was opened by an import."""
    return exists().where(Event.case_id == Case.id, Event.type == IMPORTED)


def undecided(source: str) -> Any:
    """SQL: the open case (`Case`) was opened by the import of `source`, and neither staff nor
    the end of an import has decided about it since."""
    marked = exists().where(Event.case_id == Case.id, Event.type == IMPORTED,
                            cast(Event.detail, Text).contains(f'"{source}"'))
    decided = exists().where(Event.case_id == Case.id, Event.type.in_(DECIDED))
    return Case.status == "open", marked, ~decided


@dataclass
class Closing:
    closed: int = 0  # closed, as their last message came before the cut-off
    kept_open: int = 0  # left open: mail on or after it


def close_old_imported(sessions: sessionmaker, source: str, *, before: datetime, now: datetime) -> Closing:
    """Decide about the cases the import of `source` opened and nothing decided about yet
    (`undecided`): close those whose last message came before `before`, keep the others open."""
    last_message = select(func.max(Message.received_at)).where(Message.case_id == Case.id).scalar_subquery()
    day = f"{before:%Y-%m-%d}"
    before = before.astimezone(timezone.utc)  # as stored (SQLite compares the text)
    pending = select(Case.id).where(*undecided(source)).order_by(Case.id).limit(CLOSE_PAGE)
    done = Closing()
    while True:  # a page decided leaves the query: the next page is the next one
        with sessions.begin() as session:
            ids = list(session.execute(pending.where(last_message < before)).scalars())
            if not ids:
                break
            done.closed += store.close_open_cases(session, ids, now=now, by="import", closed_at=last_message,
                                                  note=f"imported; last message before {day}")
    while True:
        with sessions.begin() as session:
            ids = list(session.execute(pending).scalars())
            if not ids:
                return done
            for case_id in ids:
                store.add_event(session, KEPT_OPEN, case=Ref(case_id), by="import",
                                note=f"imported; a message on or after {day}")
            done.kept_open += len(ids)
