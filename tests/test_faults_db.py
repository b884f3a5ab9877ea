"""The database failing under the poll cycle: PostgreSQL unreachable (through a proxy the
test controls), a lock held too long, SQLite's disk full. A database fault is never the
message's fault: the poll fails, no good mail is quarantined, and the next poll recovers."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from conftest import base_config
from helpers import append_all, folder_count, imap_config
from servers import PG_URL, drop_pg_schema, pg_schema_url, pg_target, unavailable
from sqlalchemy import event
from tcp_proxy import TcpProxy
from test_faults import assert_settled, mails, recover

from mailbot.app import create_app
from mailbot.config import settings_from_mapping
from mailbot.db_engine import make_engine
from mailbot.migrate import upgrade

pytestmark = pytest.mark.dovecot


@pytest.fixture
def pg_schema():
    try:
        url, schema = pg_schema_url()
    except Exception as err:
        unavailable(f"PostgreSQL {pg_target()} is not reachable: {err}")
    yield url, schema
    drop_pg_schema(schema)


@pytest.fixture
def pg_proxy():
    port = sa.engine.make_url(PG_URL).port or 5432
    with TcpProxy(port) as proxy:
        yield proxy


def _proxied_url(proxy: TcpProxy, schema: str, extra: str = "") -> str:
    url = sa.engine.make_url(PG_URL).set(host="127.0.0.1", port=proxy.port)
    return (f"{url.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}{extra}")


@pytest.mark.postgres
def test_postgres_unreachable_before_the_poll(make_app, dovecot, smtp_sink, pg_schema, pg_proxy):
    """PostgreSQL unreachable when the poll starts: it fails quickly, nothing leaves the
    inbox, and once the database is back the next poll does everything once."""
    n = 6
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port},
                   db_url=_proxied_url(pg_proxy, pg_schema[1]))
    append_all(dovecot, mails(n, tag="pgdown"))
    pg_proxy.refuse(600)
    pg_proxy.cut_all()
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError):
        app.poll_once()
    assert time.monotonic() - started < 10 and folder_count(dovecot, "INBOX") == n
    pg_proxy.heal()
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


@pytest.mark.postgres
def test_postgres_lost_mid_batch(make_app, dovecot, smtp_sink, pg_schema, pg_proxy, monkeypatch):
    """Every database connection cut in the middle of the second batch and refused for a
    while: the poll fails, the first batch stays committed and moved, nothing is quarantined."""
    n = 12
    app = make_app(imap=imap_config(dovecot) | {"batch_size": 5}, smtp={"port": smtp_sink.port},
                   db_url=_proxied_url(pg_proxy, pg_schema[1]))
    append_all(dovecot, mails(n, tag="pgcut"))
    real = app.intake.process
    calls = []

    def cut_on_seventh(session, raw, source=None, **kw):
        calls.append(source)
        if len(calls) == 7:
            pg_proxy.refuse(600)  # until heal(): the rest of this poll cannot reconnect
            pg_proxy.cut_all()
        return real(session, raw, source, **kw)

    monkeypatch.setattr(app.intake, "process", cut_on_seventh)
    with pytest.raises(sa.exc.DBAPIError):
        app.poll_once()
    assert folder_count(dovecot, "Processed") == 5 and folder_count(dovecot, "Quarantine") == 0
    monkeypatch.setattr(app.intake, "process", real)
    pg_proxy.heal()
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


@pytest.mark.postgres
def test_database_lock_timeout_does_not_quarantine_good_mail(make_app, dovecot, smtp_sink, pg_schema):
    """The reference counter locked by someone else past the lock timeout: the poll gives up
    and the mail is retried later; a database error never quarantines a readable mail."""
    n = 3
    url, schema = pg_schema
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port},
                   db_url=url + "%20-clock_timeout%3D300")
    append_all(dovecot, mails(n, tag="lock"))
    locker = sa.create_engine(url)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with locker.begin() as conn:
            # The reference counter, as another worker in the middle of its batch holds it.
            conn.execute(sa.text("LOCK TABLE case_sequence IN EXCLUSIVE MODE"))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10), "the other worker never took the lock"
        # The poll fails on the lock (not on anything else, and does not wait it out) ...
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            app.poll_once()
        # ... and does not blame the mail for it.
        quarantined = folder_count(dovecot, "Quarantine")
        inbox = folder_count(dovecot, "INBOX")
    finally:
        release.set()
        holder.join()
        locker.dispose()
    assert quarantined == 0 and inbox == n
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


def test_sqlite_disk_full(dovecot, smtp_sink, tmp_path):
    """SQLite's database full (max_page_count, as a full disk): the poll fails without
    quarantining anything; once there is room again the next poll finishes the work."""
    n = 6
    room = {"pages": None}
    url = f"sqlite:///{tmp_path / 'full.sqlite3'}"
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn, _record):
        if room["pages"] is not None:
            dbapi_conn.execute(f"PRAGMA max_page_count={room['pages']}")

    upgrade(engine)
    settings = settings_from_mapping(base_config(imap_port=dovecot.port, smtp_port=smtp_sink.port,
                                                 db_url=url, imap=imap_config(dovecot)))
    app = create_app(settings, engine=engine)
    try:
        append_all(dovecot, mails(2, tag="roomy"))
        app.poll_once()
        with engine.connect() as conn:
            used = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        room["pages"] = used + 3  # a few small writes fit, a 40 kB message does not
        engine.dispose()
        append_all(dovecot, mails(n, body_kb=40, tag="full"))
        with pytest.raises(sa.exc.OperationalError):  # full, or the savepoint it rolled back
            app.poll_once()
        assert folder_count(dovecot, "Quarantine") == 0 and folder_count(dovecot, "INBOX") == n
        room["pages"] = None
        engine.dispose()
        recover(app)
        assert_settled(app, dovecot, smtp_sink, n + 2)
    finally:
        app.close()
