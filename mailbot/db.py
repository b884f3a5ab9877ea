"""Database tables (SQLAlchemy 2.0 typed ORM) and the time helpers their columns use.
Connecting is in `db_engine`, the pipeline's short ways to run statements in `db_statements`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import (
    JSON, BigInteger, DateTime, Dialect, ForeignKey, Index, Integer, LargeBinary, String, Table, Text,
    TypeDecorator, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, stored as UTC. SQLite keeps a datetime's wall time and drops its offset: a
    mail's Date at 10:00 +0200, or a local midnight compared with a column, would be two hours
    off. Every aware value is turned to UTC first; a naive one is UTC already."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(timezone.utc) if value is not None and value.tzinfo is not None else value


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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_reaction_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
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
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    body_text: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str | None] = mapped_column(String(5))
    original_sender: Mapped[str | None] = mapped_column(String(400))
    original_subject: Mapped[str | None] = mapped_column(Text)
    original_date: Mapped[datetime | None] = mapped_column(UtcDateTime())
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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_receipt_uid"),)


class Event(Base):
    """The audit trail: what was decided about a case or message, and why."""

    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), index=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    type: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


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
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class MailboxState(Base):
    """Per mailbox: the UIDVALIDITY we last saw, and the poller's lease."""

    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LastGoodRules(Base):
    """The rules and templates last in force (migration 0006): the robot starts on them when
    the files on disk are invalid at start (`routing_stage`). `rules`: file name → text (None
    for a missing file); `templates`: `{"files": {path: text}, "folders": [...]}`."""

    __tablename__ = "last_good_rules"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column()
    templates: Mapped[dict[str, Any]] = mapped_column()
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# -- issue 6: replies -------------------------------------------------------------------------


class AddressStatus(Base):
    """An address we must not write to again: a permanent bounce or a 5xx for it (see addresses.py)."""

    __tablename__ = "address_status"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    status: Mapped[str] = mapped_column(String(16), default="undeliverable")
    source: Mapped[str] = mapped_column(String(16))  # bounce | smtp | staff
    reason: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_case_key_lookup", "kind", "value", "created_at"),)


# ---------------------------------------------------------------- operations (migration 0003)
# Day windows of the digest, the annual report and retention read by these columns.
Index("ix_message_received_at", Message.received_at)
Index("ix_case_created_at", Case.created_at)
Index("ix_case_closed_at", Case.closed_at)
# Open cases idle for `digest.idle_after_days` (migration 0008): the digest and `status`.
Index("ix_case_status_updated", Case.status, Case.updated_at)
# `case show` lists a case's duplicates by this column (migration 0009).
Index("ix_case_duplicate_of", Case.duplicate_of_id)


def table_of(model: type[Base]) -> Table:
    """A mapped class's Table, typed as such (for Core inserts)."""
    return cast(Table, model.__table__)
