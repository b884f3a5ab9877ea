"""Database tables (SQLAlchemy 2.0 typed ORM), engine construction, and how database
errors are told apart (the database is gone, or one statement failed)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Table, Text,
    UniqueConstraint, create_engine, event, insert, inspect,
)
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import (
    DeclarativeBase, Mapped, Mapper, Session, make_transient_to_detached, mapped_column, relationship,
    sessionmaker,
)
from sqlalchemy.sql.base import Executable

from .db_check import sqlite_file, sqlite_open_cause, sqlite_unusable
from .errors import ConfigError
from .recipients import mailbox_key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database, with its zone: SQLite hands back naive
    datetimes, and everything mailbot stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its offset, for JSON: also from a PostgreSQL session in another
    time zone."""
    return as_utc(value).astimezone(timezone.utc).isoformat() if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class CaseSequence(Base):
    """The last reference number handed out per prefix and year (gap-free)."""

    __tablename__ = "case_sequence"
    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "case"
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    citizen_email: Mapped[str] = mapped_column(String(320), index=True)
    citizen_name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(5), default="nl")
    subject: Mapped[str] = mapped_column(String(500), default="")
    team: Mapped[str | None] = mapped_column(String(64))
    investigator_email: Mapped[str | None] = mapped_column(String(320))
    investigator_name: Mapped[str | None] = mapped_column(String(200))
    investigator_phone: Mapped[str | None] = mapped_column(String(50))
    outcome: Mapped[str] = mapped_column(String(32), default="investigation")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    flags: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[list[str]] = mapped_column(default=list)
    also_sent_to: Mapped[list[str]] = mapped_column(default=list)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_reaction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How the citizen asked to be contacted (migration 0005): shown to staff.
    contact_phone: Mapped[str | None] = mapped_column(String(50))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    # Matching (migration 0002): the citizen's display name as sorted folded words, for
    # identity matching across addresses; indexed with created_at (ix_case_name_key_created).
    citizen_name_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Matching (0002): normalised "subject\nbody" of the opening complaint, compared by rapidfuzz.
    match_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Matching (0002): ids of the agencies (services directory) the case is about.
    match_agencies: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    # Matching (0002): other people the citizen wrote with (To/Cc); they may quote the reference.
    co_recipients: Mapped[list[str]] = mapped_column(default=list, server_default="[]")

    messages: Mapped[list[Message]] = relationship(
        back_populates="case", order_by="Message.id", foreign_keys="Message.case_id")
    duplicate_of: Mapped[Case | None] = relationship(remote_side=[id])

    __table_args__ = (
        Index("ix_case_investigator_created", "investigator_email", "created_at"),
        Index("ix_case_status_investigator", "status", "investigator_email"),
        Index("ix_case_citizen_created", "citizen_email", "created_at"),
    )


class Message(Base):
    """Every mail in or out. Raw bytes live in `raw_mail`, keyed by sha256."""

    __tablename__ = "message"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[list[str]] = mapped_column(default=list)
    from_email: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    body_text: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str | None] = mapped_column(String(5))
    original_sender: Mapped[str | None] = mapped_column(String(400))
    original_subject: Mapped[str | None] = mapped_column(Text)
    original_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[Case | None] = relationship(back_populates="messages", foreign_keys=[case_id])

    __table_args__ = (
        UniqueConstraint("direction", "message_id", "sha256", name="uq_message_identity"),
    )


class RawMail(Base):
    """The RFC 822 bytes, content-addressed; purged by retention."""

    __tablename__ = "raw_mail"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Receipt(Base):
    """One IMAP copy of a message we have handled: the idempotency key."""

    __tablename__ = "receipt"
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(400))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    disposition: Mapped[str] = mapped_column(String(16))  # processed | quarantined | duplicate
    moved: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_receipt_uid"),)


class Event(Base):
    """The audit trail: what was decided about a case or message, and why."""

    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), index=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    type: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


def _recipient_key(context: Any) -> str:
    """Column default of `Outbox.recipient_key`, for ORM and Core inserts alike."""
    return mailbox_key(context.get_current_parameters()["recipient"])


class Outbox(Base):
    """A reply waiting to be sent; the complete MIME message is built at queue time."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), index=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    # The recipient's mailbox: lower-cased, +tag dropped (migration 0007). The per-address
    # reply limit counts by it, through its index: a LIKE on `recipient` scanned the table.
    recipient_key: Mapped[str] = mapped_column(String(320), index=True, default=_recipient_key, server_default="")
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mime: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed|held
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class MailboxState(Base):
    """Per mailbox: the UIDVALIDITY we last saw, and the poller's lease."""

    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LastGoodRules(Base):
    """The rules and templates last in force (migration 0006): the robot starts on them when
    the files on disk are invalid at start (`routing_stage`). `rules`: file name → text (None
    for a missing file); `templates`: `{"files": {path: text}, "folders": [...]}`."""

    __tablename__ = "last_good_rules"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column()
    templates: Mapped[dict[str, Any]] = mapped_column()
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent workers.

    A URL SQLAlchemy cannot use is a ConfigError naming the key (its text never holds the URL,
    which may carry the password)."""
    try:
        return _make_engine(url, **kwargs)
    except (ArgumentError, ValueError) as err:
        raise ConfigError(f"database.url is not a usable database URL: {err}") from None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        _create_private(sqlite_file(url))
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINT (a RELEASE outside its
            # implicit BEGIN commits): SQLAlchemy emits BEGIN itself, below.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: concurrent writers wait (busy
            # timeout) instead of failing on a lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    for scheme in ("postgresql://", "postgres://"):  # the driver we ship, also for the short form
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url[len(scheme):]
    return create_engine(url, pool_pre_ping=True, **kwargs)


# SQLSTATE classes that blame the statement, not the server: PostgreSQL raises "program limit
# exceeded" (an index row over 2,704 bytes, say) as an OperationalError, like a lost connection.
_STATEMENT_CLASSES = frozenset({"54"})


def _create_private(path: Path | None) -> None:
    """A new SQLite file is created readable by its owner only: it holds personal data,
    whatever the umask (SQLite gives its -wal and -shm files the same mode)."""
    if path is None or path.exists():
        return
    if path.absolute().parent.is_dir():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError:
            pass  # a folder we may not write in: the first connect fails, and describe_error says why


def database_unavailable(err: BaseException) -> bool:
    """Whether `err` means the database cannot work now (gone, locked, full, shutting down),
    so the batch must stay in the inbox; False when one message's data made the statement fail,
    so only that message is quarantined."""
    if isinstance(err, InterfaceError):
        return True
    if not isinstance(err, OperationalError):
        return False
    sqlstate = getattr(err.orig, "sqlstate", None)
    return err.connection_invalidated or not sqlstate or sqlstate[:2] not in _STATEMENT_CLASSES


def describe_error(err: BaseException, url: str | None = None) -> str:
    """`Type: message` for quarantine reasons and the event log. A database error is told
    by its driver's first line: SQLAlchemy's own text carries the statement's parameters,
    which hold the mail's content. With the database `url`, a SQLite file that cannot be
    opened is named, with the likely cause (SQLite's own text names neither)."""
    if isinstance(err, StatementError) and err.orig is not None:
        lines = str(err.orig).strip().splitlines()
        told = f"{type(err.orig).__name__}: {lines[0] if lines else ''}"
        path = sqlite_file(url)
        if path is not None and sqlite_unusable(err):
            told += f" ({sqlite_open_cause(path)})"
        return told[:500]
    return f"{type(err).__name__}: {err}"[:500]


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


# -- issue 6: replies -------------------------------------------------------------------------


class AddressStatus(Base):
    """An address we must not write to again: a permanent bounce or a 5xx for it (see addresses.py)."""

    __tablename__ = "address_status"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    status: Mapped[str] = mapped_column(String(16), default="undeliverable")
    source: Mapped[str] = mapped_column(String(16))  # bounce | smtp | staff
    reason: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------- matching (migration 0002)
Index("ix_case_name_key_created", Case.citizen_name_key, Case.created_at)


class CaseKey(Base):
    """A blocking key that leads to a case without scanning the case table.

    kind "agency_ref": value "service-id:REFERENCE", an agency's own file number seen in the
    case's mail; kind "lsh": value "band:hash", a MinHash band of the opening complaint's
    words (`mailbot.normalize.lsh_keys`). Looked up by (kind, value) within a time window.
    """

    __tablename__ = "case_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_case_key_lookup", "kind", "value", "created_at"),)


# ---------------------------------------------------------------- operations (migration 0003)
# Day windows of the digest, the annual report and retention read by these columns.
Index("ix_message_received_at", Message.received_at)
Index("ix_case_created_at", Case.created_at)
Index("ix_case_closed_at", Case.closed_at)


def table_of(model: type[Base]) -> Table:
    """A mapped class's Table, typed as such (for Core inserts)."""
    return cast(Table, model.__table__)


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
