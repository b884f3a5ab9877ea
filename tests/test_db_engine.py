"""A failing statement's text, which reaches the log in a traceback, names no mail content.

(SQLite's `secure_delete`, set by the engine, is already on in Debian's build: no test here
could tell the pragma from the build's default.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from mailbot.db import Message
from mailbot.db_engine import describe_error, make_engine
from mailbot.migrate import upgrade

PERSONAL = "Quirijn Bogaert, Ieperstraat 5, tel 0475 11 22 33"


def test_a_failing_statement_names_no_parameter(db_url: str) -> None:
    """Before, SQLAlchemy's text carried `[parameters: (..., 'Quirijn Bogaert', ...)]`, and the
    poll loop logs the traceback of a message that failed: the whole mail went to the journal."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with pytest.raises(StatementError) as caught, engine.begin() as conn:
            conn.execute(sa.insert(Message.__table__).values(direction="in", kind="new_complaint", message_id="x",
                                                             sha256="s", size=1, from_name=PERSONAL,
                                                             case_id=987654321))  # no such case: refused
        text = str(caught.value)
        assert "Bogaert" not in text and "0475" not in text, text
        assert "Bogaert" not in describe_error(caught.value)
    finally:
        engine.dispose()



@pytest.mark.postgres
def test_postgresql_sessions_do_not_hold_locks_for_hours(pg_url: str) -> None:
    """A worker paused or cut off mid-batch held the reference counter's lock, and with it every
    mailbox's intake, until TCP noticed (about two hours). Now the server ends an idle
    transaction, probes the client, and a waiting worker gives up instead of waiting forever."""
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            shown = {name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                     for name in ("idle_in_transaction_session_timeout", "lock_timeout", "tcp_keepalives_idle")}
        assert shown == {"idle_in_transaction_session_timeout": "10min", "lock_timeout": "1min",
                         "tcp_keepalives_idle": "30"}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_lock_wait_that_times_out_leaves_the_batch_in_the_inbox(pg_url: str) -> None:
    """The lock timeout's error counts as 'the database cannot work now' (the batch is rolled
    back and read again at the next poll), not as the mail's fault (quarantine)."""
    from mailbot.db_engine import database_unavailable

    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        with engine.begin() as holder:
            holder.exec_driver_sql("LOCK TABLE case_sequence IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(sa.exc.OperationalError) as caught, engine.begin() as waiter:
                waiter.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
                waiter.exec_driver_sql("SELECT * FROM case_sequence")
        assert database_unavailable(caught.value)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_setting_in_the_url_is_kept(pg_url: str) -> None:
    """The administrator's own value (here in the URL's options) wins over ours."""
    engine = make_engine(pg_url + "%20-clock_timeout%3D300")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "300ms"
            assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "10min"
    finally:
        engine.dispose()
