"""Connecting to the database (SQLite's pragmas, PostgreSQL's driver) and telling its errors
apart: the database is gone, or one statement failed."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import sessionmaker

from .db_check import missing_sqlite_file, sqlite_file, sqlite_open_cause, sqlite_unusable
from .errors import ConfigError


def make_engine(url: str, *, longest_wait_seconds: float = 0.0, **kwargs: Any) -> Engine:
    """An engine; SQLite gets WAL, foreign keys, a busy timeout for concurrent workers and a
    Unicode `lower()`. `longest_wait_seconds`: the longest a transaction of this engine may
    wait idle on purpose (for the parse worker: `prepare.longest_wait`); PostgreSQL does not
    end it sooner.

    A URL SQLAlchemy cannot use is a ConfigError naming the key (its text never holds the URL,
    which may carry the password)."""
    try:
        return _make_engine(url, longest_wait_seconds, **kwargs)
    except (ArgumentError, ValueError) as err:
        raise ConfigError(f"database.url is not a usable database URL: {err}") from None


def refuse_missing_sqlite(url: str) -> None:
    """A ConfigError (one line, exit 2) when `url` names a SQLite file that does not exist:
    for every command but those that set a database up (`db upgrade`, `import`, `demo`),
    whose `make_engine` creates the file."""
    problem = missing_sqlite_file(url)
    if problem is not None:
        raise ConfigError(problem)


def _make_engine(url: str, longest_wait_seconds: float, **kwargs: Any) -> Engine:
    # A failing statement's text must not carry its parameters: they hold the mail's content,
    # and the text reaches the log (tracebacks), which outlives retention.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _create_private(sqlite_file(url))
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINT (a RELEASE outside its
            # implicit BEGIN commits): SQLAlchemy emits BEGIN itself, below.
            dbapi_conn.isolation_level = None
            # SQLite's own lower() folds A-Z only: searches for "élise" or "MÜLLER" (staff's
            # `case list --citizen`, an erasure's addresses) would miss what PostgreSQL finds.
            dbapi_conn.create_function("lower", 1, unicode_lower, deterministic=True)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted rows are overwritten, not left in free pages: retention must really remove them.
            cursor.execute("PRAGMA secure_delete=ON")
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
    kwargs.setdefault("connect_args", {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                                       "keepalives_count": 3})
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    wanted = postgresql_session(longest_wait_seconds)

    @event.listens_for(engine, "connect")
    def _postgresql_session(dbapi_conn: Any, _record: Any) -> None:
        _set_where_default(dbapi_conn, wanted)

    return engine


def unicode_lower(value: Any) -> Any:
    """SQL lower() for SQLite as Python's str.lower (PostgreSQL's under a UTF-8 locale);
    NULL stays NULL, a number or blob is lowered as its text, as SQLite's own does."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).lower()


# A worker that is paused (SIGSTOP, a frozen VM) or cut off mid-transaction holds the reference
# counter's row lock, which every worker needs for its next new case: the server ends such a
# session, notices a vanished client within about a minute, and a worker waiting on a lock
# gives up after a minute (the batch stays in the inbox for the next poll) instead of waiting
# for hours (the idle limit: `idle_limit`).
POSTGRESQL_SESSION = {"lock_timeout": "60s", "tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10",
                      "tcp_keepalives_count": "3"}

IDLE_FLOOR = 600  # seconds: the idle limit when nothing waits longer on purpose
_LONGEST_TIMEOUT = 2_147_483  # seconds: PostgreSQL's timeouts are int milliseconds


def idle_limit(longest_wait_seconds: float) -> int:
    """Seconds PostgreSQL lets a transaction sit idle: ten minutes, or more when a batch may
    wait longer on purpose (the parse worker over one mail: `prepare.longest_wait`)."""
    return math.ceil(min(max(IDLE_FLOOR, longest_wait_seconds), _LONGEST_TIMEOUT))


def postgresql_session(longest_wait_seconds: float) -> dict[str, str]:
    """The session settings we want on PostgreSQL."""
    return {"idle_in_transaction_session_timeout": f"{idle_limit(longest_wait_seconds)}s",
            **POSTGRESQL_SESSION}


def _set_where_default(dbapi_conn: Any, wanted: dict[str, str]) -> None:
    """Our values where the server runs on its defaults: one the administrator chose (in
    postgresql.conf, for the role, or in the URL's `options`) is kept."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True  # a SET outside a transaction holds for the session
    try:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_settings WHERE source = 'default' AND name = ANY(%s)",
                           (list(wanted),))
            for (name,) in cursor.fetchall():
                cursor.execute(f"SET {name} = '{wanted[name]}'")
    finally:
        dbapi_conn.autocommit = autocommit


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


# Waits that another transaction caused, not an outage: a deadlock, a serialisation failure,
# `lock_timeout` (PostgreSQL); SQLite's busy timeout ran out.
_CONFLICT_STATES = frozenset({"40P01", "40001", "55P03"})


def lock_conflict(err: BaseException) -> bool:
    """Whether `err` is a conflict with another writer (a running robot's batch) that the same
    transaction, tried again a moment later, gets past."""
    if not isinstance(err, OperationalError) or err.connection_invalidated:
        return False
    sqlstate = getattr(err.orig, "sqlstate", None)
    return sqlstate in _CONFLICT_STATES or (sqlstate is None and "database is locked" in str(err.orig))


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
