"""Rows nothing reads back before commit (audit events, IMAP receipts, raw mail), written in bulk.

An ORM object per event cost more than matching the message it describes. These rows
are kept on the session and inserted with one multi-row INSERT per table just before
the outermost transaction commits; they are dropped when it rolls back. A message
processed inside `savepoint` drops its own rows when its savepoint is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Executable, Table, event, insert
from sqlalchemy.orm import Session, SessionTransaction

from .db_statements import inserted_objects, run

_KEY = "mailbot.deferred_rows"


class HasId(Protocol):
    """An ORM object or a row with a primary key `id` (None until flushed)."""

    @property
    def id(self) -> Any: ...


@dataclass(frozen=True)
class Ref:
    """A row known by its primary key only (no need to load it to point at it)."""

    id: int | None


Pending = tuple[Executable, dict[str, Any], dict[str, Any]]


def _pending(session: Session) -> list[Pending]:
    return session.info.setdefault(_KEY, [])


def add(session: Session, table: Table, row: dict[str, Any], *,
        ids: dict[str, Any] | None = None, statement: Executable | None = None) -> None:
    """Insert `row` into `table` when the transaction commits.

    `ids` maps a column to an ORM object (or None) whose primary key goes there: the
    object may still be unflushed now; it has its id by the time the row is written.
    `statement` replaces the plain INSERT (e.g. one that skips rows already present);
    pass the same object each time, rows are grouped by it.
    """
    _pending(session).append((statement if statement is not None else _insert(table), row, ids or {}))


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """`session.begin_nested()` that also forgets the rows added inside it on failure,
    and the objects inserted inside it: their ids were rolled back (SQLite hands them out
    again), and the next message's rows must not meet them in the identity map."""
    start = len(_pending(session))
    inserted = inserted_objects(session)
    first = len(inserted)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        del _pending(session)[start:]
        for obj in inserted[first:]:
            if obj in session:
                session.expunge(obj)
        del inserted[first:]
        raise


def write(session: Session) -> None:
    """Insert everything pending now: one statement per table (or per `statement`),
    in the order added."""
    pending = session.info.pop(_KEY, None)
    if not pending:
        return
    session.flush()  # the objects named in `ids` get their primary keys
    by_statement: dict[Executable, list[dict[str, Any]]] = {}
    for statement, row, ids in pending:
        row.update({column: obj.id if obj is not None else None for column, obj in ids.items()})
        by_statement.setdefault(statement, []).append(row)
    for statement, rows in by_statement.items():
        run(session, statement, rows)


@lru_cache(maxsize=None)
def _insert(table: Table) -> Executable:
    return insert(table)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release keeps them for the batch
        write(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_after_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (already written) or rolled back
        session.info.pop(_KEY, None)
