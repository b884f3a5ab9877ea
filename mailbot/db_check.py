"""What a database error means for the operator, and whether the schema fits this version.

`hint` turns an error into what to do about it (run `db upgrade`, create the role or the
database, fix the password); `sqlite_open_cause` says why a SQLite file cannot be opened
(folder missing, no permission for this user); `waiting_cannot_help` tells a database that
is down (wait for it) from one that is misconfigured (stop and say so); `startup_problem`,
checked when `mailbot run` starts, finds a SQLite file this user may only read and a schema
not at this version's latest migration. Nothing here imports `db`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

UPGRADE = "run 'mailbot db upgrade' first"

# psycopg gives no SQLSTATE for a refused login: the server's FATAL text is all there is.
_NO_ROLE = re.compile(r'role "([^"]+)" does not exist')
_NO_DATABASE = re.compile(r'database "([^"]+)" does not exist')
_BAD_LOGIN = re.compile(r"password authentication failed|no pg_hba\.conf entry")
# SQLite's words for a file it cannot open or write (permission, folder, read-only mount).
_SQLITE_UNUSABLE = ("unable to open database file", "attempt to write a readonly database",
                    "readonly database", "file is not a database")


def _driver_text(err: BaseException) -> str:
    return str(getattr(err, "orig", None) or err)


def missing_table(err: BaseException) -> bool:
    """A table or relation the schema should have is not there: SQLite `no such table`,
    PostgreSQL SQLSTATE 42P01 (`relation … does not exist`)."""
    orig = getattr(err, "orig", None)
    if getattr(orig, "sqlstate", None) == "42P01":
        return True
    text = _driver_text(err)
    return "no such table" in text or bool(re.search(r'relation "[^"]+" does not exist', text))


def hint(err: BaseException, url: str | None = None, *, upgrading: bool = False) -> str:
    """` (what to do)` after an error's one line, or "". `upgrading`: the error came from
    `mailbot db upgrade` itself, which must not be told to run itself."""
    text = _driver_text(err)
    user = _user(url)
    if (role := _NO_ROLE.search(text)) is not None:
        return (f" (create the PostgreSQL role: CREATE ROLE \"{role.group(1)}\" LOGIN PASSWORD '…'; "
                "or correct the user in database.url)")
    if (database := _NO_DATABASE.search(text)) is not None:
        owner = f' OWNER "{user}"' if user else ""
        return (f" (create the PostgreSQL database: CREATE DATABASE \"{database.group(1)}\"{owner}; "
                "or correct database.url)")
    if _BAD_LOGIN.search(text):
        return " (check the user and password in database.url and the server's pg_hba.conf)"
    if not upgrading and missing_table(err):
        return f" ({UPGRADE})"
    return ""


def waiting_cannot_help(err: BaseException) -> bool:
    """True when the database answers but refuses us for a reason of configuration (a missing
    role or database, a wrong password, a SQLite file we may not open): starting again
    later changes nothing. False for a server that is down, restarting or busy."""
    text = _driver_text(err)
    if _NO_ROLE.search(text) or _NO_DATABASE.search(text) or _BAD_LOGIN.search(text):
        return True
    if isinstance(getattr(err, "orig", None), sqlite3.Error):
        return "database is locked" not in text  # another writer: the busy timeout waits
    return False


def sqlite_file(url: str | URL | None) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url:
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def missing_sqlite_file(url: str | URL | None) -> str | None:
    """One line when `url` names a SQLite file that does not exist, else None. Commands that
    only read or edit records refuse it: connecting would create an empty database where a
    mistyped path points, and `db upgrade`, which the error would then suggest, a second one."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return None
    return (f"database file {path} does not exist; check database.url in the configuration "
            "(only for a new installation: 'mailbot db upgrade' creates it)")


def sqlite_unusable(err: BaseException) -> bool:
    """SQLite could not open or write its file (as opposed to one statement failing)."""
    return isinstance(getattr(err, "orig", None), sqlite3.Error) and any(
        words in _driver_text(err) for words in _SQLITE_UNUSABLE)


@dataclass(frozen=True)
class Process:
    """Who is asking: the effective user and its groups (a parameter, so tests can ask for another)."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def current(cls) -> Process:
        return cls(os.geteuid(), frozenset({os.getegid(), *os.getgroups()}))


def sqlite_open_cause(path: Path, who: Process | None = None) -> str:
    """Why SQLite cannot use `path`, for the error line after SQLite's own words; the file
    alone when no cause is found."""
    return sqlite_access_problem(path, who) or str(path)


def sqlite_access_problem(path: Path, who: Process | None = None) -> str | None:
    """What keeps this user from using the SQLite file at `path`, or None: the folder is
    missing, or the user may not read and write the file (or its -wal/-shm companions), or
    create files in the folder (SQLite must, for its -wal and -shm files). A file it may
    only read opens, and every write fails later: `mailbot run` checks this at start."""
    who = who or Process.current()
    folder = path.parent
    if not folder.is_dir():
        return f"{path}: the folder {folder} does not exist"
    if not _may(folder.stat(), who, search=True):
        return f"{path}: user {_name(who.uid)} may not enter the folder {folder}"
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            continue
        except OSError as err:
            return f"{candidate}: {err.strerror}"
        if stat.S_ISDIR(info.st_mode):
            return f"{candidate} is a folder, not a database file"
        if not _may(info, who, read=True, write=True):
            return (f"{candidate}: user {_name(who.uid)} may not read and write it (owner {_name(info.st_uid)}, "
                    f"mode {stat.S_IMODE(info.st_mode):04o}); give it to the user mailbot runs as "
                    "(chown), or run 'mailbot db upgrade' as that user")
    if not _may(folder.stat(), who, write=True, search=True):
        return (f"{path}: user {_name(who.uid)} may not create files in {folder} "
                "(SQLite needs to, for its -wal and -shm files)")
    return None


def _may(info: os.stat_result, who: Process, *, read: bool = False, write: bool = False,
         search: bool = False) -> bool:
    """The classic owner/group/other permission check (root may do anything)."""
    if who.uid == 0:
        return True
    mode = info.st_mode
    shift = 6 if info.st_uid == who.uid else 3 if info.st_gid in who.gids else 0
    wanted = (4 if read else 0) | (2 if write else 0) | (1 if search else 0)
    return (mode >> shift) & wanted == wanted


def _name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _user(url: str | None) -> str | None:
    try:
        return make_url(url).username if url else None
    except (ArgumentError, ValueError):
        return None


def startup_problem(engine: Engine) -> str | None:
    """None when the database can work with this version; else one line saying what is wrong
    and what to do (a SQLite file this user may not write, a schema not at this version).
    Raises SQLAlchemyError when the database cannot be reached or opened."""
    path = sqlite_file(engine.url)
    problem = sqlite_access_problem(path) if path is not None else None
    return problem or schema_problem(engine)


def schema_problem(engine: Engine) -> str | None:
    """None when the database's schema is at this version's latest migration; else one line
    saying what is wrong and what to do. Raises SQLAlchemyError when the database cannot be
    reached or opened."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = set(scripts.get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return None
    if not current:
        return f"its schema was never created ({UPGRADE})"
    known = {script.revision for script in scripts.walk_revisions()}
    at, needed = ", ".join(sorted(current)), ", ".join(sorted(heads))
    if current - known:
        return (f"schema at revision {at}, which this mailbot does not know (upgraded by a newer "
                f"version?); this one needs {needed}")
    return f"schema at revision {at}, this mailbot needs {needed} ({UPGRADE})"
