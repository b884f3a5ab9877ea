"""What an administrator installing mailbot meets (the operator audit): a configuration the
robot cannot work with is refused at load, in one line naming the key; `mailbot run` stops at
once, exit 2, on a database that can never work and waits for one that is only down; and a
database error says what to do about it. The real CLI, SQLite, PostgreSQL and Dovecot."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from conftest import REPO, base_config, complaint
from helpers import append_all, folder_count, imap_config
from mailbot.cli import cli
from mailbot.db_engine import make_engine
from mailbot.migrate import alembic_config, upgrade
from servers import PG_URL
from test_faults_db import _proxied_url, pg_proxy, pg_schema  # noqa: F401 - fixtures
from test_scheduler_procs import RunProcess, wait_until, write_config

PASSWORD = "Geheim-Wachtwoord-17"
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _mailbot(folder: Path, *args: str, **overrides):
    """`mailbot --config folder/config.yaml ARGS` with the test config and `overrides`."""
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**overrides)))
    path.chmod(0o644)
    return CliRunner().invoke(cli, ["--config", str(path), *args], obj={})


def _one_line(result) -> str:
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    return result.output.strip()


# -- 1. smtp.from_address ------------------------------------------------------------------------

@pytest.mark.dovecot
def test_a_from_address_with_a_display_name_is_refused_before_any_mail_is_touched(tmp_path, dovecot, sqlite_url):
    """`from_address: "Klachten <klachten@…>"` used to pass start-up and then quarantine every
    complaint as unreadable (the reply's Message-ID domain ended in `>`). Now `poll --once`
    and `rules check` refuse the config in one line that names the key and where the name
    goes, and the complaint stays in the inbox."""
    append_all(dovecot, [complaint()])
    config = {"imap": imap_config(dovecot), "db_url": sqlite_url,
              "smtp": {"from_address": "Klachten <klachten@vlaamseombudsdienst.be>"}}
    for command in (("db", "upgrade"), ("poll", "--once"), ("rules", "check")):
        result = _mailbot(tmp_path, *command, **config)
        assert result.exit_code == 2, result.output
        assert _one_line(result) == (
            "mailbot: invalid configuration: smtp.from_address: not a plain e-mail address: "
            "'Klachten <klachten@vlaamseombudsdienst.be>' (write the address alone: "
            "klachten@vlaamseombudsdienst.be, and the name in smtp.from_name: Klachten)")
    assert folder_count(dovecot, "INBOX") == 1 and folder_count(dovecot, "Quarantine") == 0


# -- 4. database.url dialect and driver ---------------------------------------------------------

@pytest.mark.parametrize("url", [f"mysql://mailbot:{PASSWORD}@db.internal/mailbot",
                                 f"postgresql+asyncpg://mailbot:{PASSWORD}@db.internal/mailbot",
                                 f"postgresql+psycopg2://mailbot:{PASSWORD}@db.internal/mailbot"])
@pytest.mark.parametrize("command", [("case", "list"), ("rules", "check"), ("run",)])
def test_an_unsupported_database_is_one_line_naming_the_key(tmp_path, url, command):
    """A database or driver mailbot does not install (MySQL, asyncpg, psycopg2) is refused at
    load in one line naming database.url, also by `rules check`; no traceback about a missing
    module, and never the password."""
    result = _mailbot(tmp_path, *command, db_url=url)
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith(f"mailbot: invalid configuration: database.url: unsupported database "
                           f"'{make_url(url).drivername}': mailbot runs on SQLite")
    assert PASSWORD not in line


# -- 2. `mailbot run` on a database that can never work -----------------------------------------

def test_run_stops_at_once_on_a_database_never_upgraded(tmp_path):
    """A schema `mailbot db upgrade` never created ends `run` before any job starts: one line
    with the hint and exit 2 (systemd's Restart=on-failure sees it), not three errors a
    minute forever."""
    sqlite3.connect(tmp_path / "new.sqlite3").close()  # a database file without tables
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    started = time.monotonic()
    result = _mailbot(tmp_path, "run", db_url=url)
    assert result.exit_code == 2
    assert _one_line(result) == "mailbot: database: its schema was never created (run 'mailbot db upgrade' first)"
    assert time.monotonic() - started < 10


def test_run_stops_on_a_schema_behind_or_ahead_of_this_version(tmp_path):
    """A schema an older mailbot left (not upgraded after installing this one) is named with
    both revisions and the hint; one written by a newer version is named as unknown."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = make_engine(url)
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(HEAD).down_revision
    upgrade(engine, str(previous))
    result = _mailbot(tmp_path, "run", db_url=url)
    assert result.exit_code == 2
    assert _one_line(result) == (f"mailbot: database: schema at revision {previous}, this mailbot needs "
                                 f"{HEAD} (run 'mailbot db upgrade' first)")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = _mailbot(tmp_path, "run", db_url=url)
    assert result.exit_code == 2
    assert "schema at revision 9999, which this mailbot does not know" in _one_line(result)


@pytest.mark.parametrize("command", [("run",), ("case", "list"), ("db", "upgrade")])
def test_a_sqlite_file_in_a_missing_folder_is_named(tmp_path, command):
    """"unable to open database file" names the file and the cause; `run` checks the file
    before it opens it, and stops."""
    path = tmp_path / "nowhere" / "mailbot.sqlite3"
    result = _mailbot(tmp_path, *command, db_url=f"sqlite:///{path}")
    assert result.exit_code == 2
    if command != ("db", "upgrade"):  # only `db upgrade` creates the file; the others say it is missing
        assert _one_line(result) == (f"mailbot: database file {path} does not exist; check database.url in the "
                                     "configuration (only for a new installation: 'mailbot db upgrade' creates it)")
        return
    assert _one_line(result) == (f"mailbot: database: OperationalError: unable to open database file ({path}: "
                                 f"the folder {path.parent} does not exist)")


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="mailbot-audit-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _as_service_user(target: Path, mode: int) -> Iterator[str]:
    """Run as a user that may not write `target` (a database file or its folder): as root,
    the effective user becomes nobody (the target stays root's with `mode`, as `db upgrade`
    run as root leaves it); otherwise the target loses its owner's write bit, and a 0o600
    file every bit. Yields the user's name."""
    if os.geteuid() != 0:
        import pwd

        target.chmod(0 if mode == 0o600 else mode & ~0o222)
        try:
            yield pwd.getpwuid(os.geteuid()).pw_name
        finally:
            target.chmod(0o700)
        return
    target.chmod(mode)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield "nobody"
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize(("command", "mode", "sqlite_says"), [
    (("case", "list"), 0o600, "unable to open database file"),
    (("case", "list"), 0o644, "attempt to write a readonly database"),
    (("run",), 0o600, None),  # `run` checks the file before it opens it
    (("run",), 0o644, None),  # it would open, and every write fail later
])
def test_a_sqlite_file_the_service_user_may_not_write_is_named_with_the_cause(shared_folder, command, mode,
                                                                              sqlite_says):
    """The administrator ran `db upgrade` as root; the service user cannot open or write the
    file: the line names the file, the user, its owner and mode, and what to do; `run` stops."""
    import concurrent.futures.thread  # noqa: F401 - imported while this user may still read them
    import mailbot.db_check  # noqa: F401
    import apscheduler.triggers.date  # noqa: F401 - APScheduler imports it when `run` adds a one-off job
    import mailbot.scheduler  # noqa: F401
    import tzlocal

    # This Python may lie where the service user cannot read (root's home): what `run` loads
    # lazily is loaded now, so the test does not depend on which tests ran before it.
    tzlocal.get_localzone()

    path = shared_folder / "mailbot.sqlite3"
    url = f"sqlite:///{path}"
    assert _mailbot(shared_folder, "db", "upgrade", db_url=url).exit_code == 0
    assert _mailbot(shared_folder, "case", "list", db_url=url).exit_code == 0
    with _as_service_user(path, mode) as user:
        result = CliRunner().invoke(cli, ["--config", str(shared_folder / "config.yaml"), *command], obj={})
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    cause = f"{path}: user {user} may not read and write it (owner "
    assert line.startswith(f"mailbot: database: OperationalError: {sqlite_says} ({cause}" if sqlite_says
                           else f"mailbot: database: {cause}")
    assert "mode 0" in line and "(chown)" in line


def test_a_sqlite_file_in_a_folder_the_service_user_may_not_write_is_named(shared_folder):
    """A new database file in a folder the service user may not write in: one line naming
    the file and the folder, not a PermissionError traceback from creating the file."""
    import concurrent.futures.thread  # noqa: F401 - imported while this user may still read them
    import mailbot.scheduler  # noqa: F401

    path = shared_folder / "data" / "mailbot.sqlite3"
    path.parent.mkdir(mode=0o755)
    _mailbot(shared_folder, "status", db_url=f"sqlite:///{path}")  # writes the config file only
    with _as_service_user(path.parent, 0o755) as user:
        result = CliRunner().invoke(cli, ["--config", str(shared_folder / "config.yaml"), "db", "upgrade"], obj={})
    assert result.exit_code == 2, result.output
    assert _one_line(result) == (f"mailbot: database: OperationalError: unable to open database file ({path}: "
                                 f"user {user} may not create files in {path.parent} (SQLite needs to, for its "
                                 "-wal and -shm files))")


# -- 3. the right hint, and none on `db upgrade` itself ----------------------------------------

def _pg(**parts: str) -> str:
    return make_url(PG_URL).set(**parts).render_as_string(hide_password=False)


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("db", "upgrade"), ("case", "list"), ("run",)])
def test_a_missing_role_or_database_says_what_to_create(tmp_path, command):
    """A PostgreSQL role or database that does not exist is told with what to create, never
    with "run 'mailbot db upgrade' first" (not even by `db upgrade` itself); `run` stops."""
    result = _mailbot(tmp_path, *command, db_url=_pg(username="no_such_role_h1"))
    assert result.exit_code == 2
    line = _one_line(result)
    assert 'role "no_such_role_h1" does not exist (create the PostgreSQL role: CREATE ROLE "no_such_role_h1"' in line
    assert "db upgrade" not in line
    result = _mailbot(tmp_path, *command, db_url=_pg(database="no_such_db_h1"))
    assert result.exit_code == 2
    line = _one_line(result)
    assert 'database "no_such_db_h1" does not exist (create the PostgreSQL database: CREATE DATABASE ' \
           '"no_such_db_h1"' in line
    assert "db upgrade" not in line


@pytest.mark.postgres
def test_a_missing_relation_on_postgres_says_to_upgrade(tmp_path, pg_url):
    """PostgreSQL without the schema (SQLSTATE 42P01) gets the same hint as SQLite's `no such table`."""
    result = _mailbot(tmp_path, "case", "list", db_url=pg_url)
    assert result.exit_code == 2
    assert _one_line(result) == ('mailbot: database: UndefinedTable: relation "case" does not exist '
                                 "(run 'mailbot db upgrade' first)")


# -- 2. a database that is only down at start is waited for ------------------------------------

@pytest.mark.postgres
def test_run_waits_for_a_database_down_at_start_and_starts_when_it_is_back(tmp_path, pg_schema, pg_proxy):  # noqa: F811
    """PostgreSQL refusing connections when `run` starts (restarting, or started after the
    robot): one warning per try, no exit; once it is back the jobs start (the start line
    says IMAP IDLE when idle is on), and SIGTERM ends the process with 0."""
    url = _proxied_url(pg_proxy, pg_schema[1])
    config = write_config(tmp_path, db_url=url, imap={"idle": True})
    pg_proxy.refuse(600)
    run = RunProcess(config, tmp_path / "run.log")
    try:
        wait_until(lambda: "database not reachable at start" in run.text(), 20, "the first warning")
        assert run.proc.poll() is None
        pg_proxy.heal()
        wait_until(lambda: "mailbot running" in run.text(), 20, "the jobs to start")
        assert run.terminate() == 0, run.text()[-3000:]
    finally:
        run.stop_quietly()
    log = run.text()
    [started] = [line for line in log.splitlines() if "mailbot running" in line]
    assert "IMAP IDLE, with a poll every 1s as a safety net" in started
    assert "WARNING mailbot.run database not reachable at start, tried again in 5s: database: OperationalError" in log
    assert "Traceback" not in log


@pytest.mark.postgres
def test_sigterm_while_waiting_for_the_database_ends_run_at_once(tmp_path, pg_schema, pg_proxy):  # noqa: F811
    """Stopping the robot while it waits for the database at start exits 0 at once."""
    config = write_config(tmp_path, db_url=_proxied_url(pg_proxy, pg_schema[1]))
    pg_proxy.refuse(600)
    run = RunProcess(config, tmp_path / "run.log")
    try:
        wait_until(lambda: "database not reachable at start" in run.text(), 20, "the first warning")
        started = time.monotonic()
        assert run.terminate() == 0, run.text()[-3000:]
        assert time.monotonic() - started < 3
    finally:
        run.stop_quietly()
    assert "mailbot stopped" in run.text() and "mailbot running" not in run.text()


# -- 6. cosmetics --------------------------------------------------------------------------------

def test_rules_check_without_the_templates_folder_tells_only_that(tmp_path):
    """With templates/ missing, the missing folder is the one problem told: not one
    `unknown template` per rule before it."""
    result = CliRunner().invoke(cli, ["rules", "check", "--rules-dir", str(REPO / "rules"),
                                      "--templates-dir", str(tmp_path / "templates")], obj={})
    assert result.exit_code == 1
    assert "unknown template" not in result.output
    told = [line for line in result.output.splitlines() if "problem(s)" not in line]
    assert told == [f"{tmp_path / 'templates'}: templates directory missing"]  # the path, to find it


def test_a_read_only_command_tells_refused_rules_once_as_a_warning(tmp_path, make_app, sqlite_url, caplog):
    """Rules broken on disk while a good set is saved: `case list` says so once at WARNING
    (the robot itself logs it as an ERROR, where it matters), and lists the cases."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    app = make_app(db_url=sqlite_url, rules_dir=str(rules))
    app.routing.reload_if_changed()  # saves the set in force
    (rules / "routing.yaml").write_text("rules: [", encoding="utf-8")
    with caplog.at_level(logging.INFO):
        result = _mailbot(tmp_path, "case", "list", db_url=sqlite_url, rules_dir=str(rules))
    assert result.exit_code == 0 and result.output == "no cases\n"
    told = [r for r in caplog.records if r.name == "mailbot.rules"]
    assert [r.levelname for r in told] == ["WARNING"]
    assert "started on the last good set" in told[0].getMessage()


@pytest.mark.dovecot
def test_a_processed_folder_mailbot_had_to_create_is_told_once(make_app, dovecot, caplog):
    """A misspelt `imap.processed_folder` is created, so no mail is lost, but said in the log
    (once: the next poll finds it)."""
    app = make_app(imap={**imap_config(dovecot), "processed_folder": "Behandeld"})
    append_all(dovecot, [complaint()])
    with caplog.at_level(logging.WARNING, logger="mailbot.fetch"):
        app.poll_once()
        app.poll_once()
    told = [r.getMessage() for r in caplog.records if "'Behandeld' did not exist" in r.getMessage()]
    assert len(told) == 1 and "typo" in told[0]
    assert folder_count(dovecot, "Behandeld") == 1
