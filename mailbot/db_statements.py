"""The pipeline's short ways to the database: Core statements on the session's connection,
single-row INSERTs without the unit of work, and state kept per transaction."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.sql.base import Executable

from .db import Base


def run(session: Session, statement: Executable, params: Any = None, *,
        flush: bool = True) -> CursorResult[Any]:
    """Execute a Core statement on the session's connection, in its transaction.

    The ORM's execute path costs more than SQLite answering a one-row look-up; the hot
    queries of the pipeline select columns, not objects, and take this shorter way.
    Pending objects are flushed first, as autoflush would (a no-op when clean), unless
    the caller knows the statement reads nothing they could change (`flush=False`).
    """
    if flush:
        session.flush()
    return session.connection().execute(statement, params)


def per_transaction(session: Session, key: str) -> dict[Any, Any]:
    """A dict kept on the session for its current transaction only: the next one starts empty."""
    session.connection()  # begins the transaction now, so the dict is tied to it
    transaction = session.get_transaction()
    held = session.info.get(key)
    if held is None or held[0] is not transaction:
        held = session.info[key] = (transaction, {})
    return held[1]


def insert_object(session: Session, obj: Base) -> None:
    """INSERT a new object with one Core statement and keep it in the session as persistent.

    The unit of work costs three times the INSERT for one row. Every column is set first
    (unset ones from their defaults), so reading the object later loads nothing; its
    relationships are not followed: foreign keys must be set as ids.
    """
    mapper: Mapper[Any] = inspect(obj).mapper
    values: dict[str, Any] = {}
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        if column.primary_key:
            continue
        if attribute.key not in obj.__dict__:
            default = column.default
            value = None if default is None else default.arg(None) if default.is_callable else default.arg
            setattr(obj, attribute.key, value)
        values[column.key] = obj.__dict__[attribute.key]
    primary_key = run(session, _insert_returning_id(mapper.local_table), values, flush=False).scalar_one()
    obj.id = primary_key  # type: ignore[attr-defined]
    make_transient_to_detached(obj)
    session.add(obj)
    inserted_objects(session).append(obj)


def inserted_objects(session: Session) -> list[Any]:
    """Objects `insert_object` put in the session in this transaction. The session takes them
    for rows it loaded, so a rolled-back savepoint does not forget them as it forgets its
    new objects: `deferred.savepoint` expunges them itself."""
    return per_transaction(session, "mailbot.inserted").setdefault("objects", [])


@lru_cache(maxsize=None)
def _insert_returning_id(table: Any) -> Any:
    return insert(table).returning(table.c.id)
