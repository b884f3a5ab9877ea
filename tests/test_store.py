"""The store: schema migrations and gap-free case references under concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect

from mailbot import store
from mailbot.db_engine import make_engine, make_sessionmaker
from mailbot.migrate import upgrade


def test_upgrade_creates_every_table_and_is_repeatable(db_url):
    """`db upgrade` creates the schema and a second run changes nothing."""
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"case", "message", "raw_mail", "receipt", "event", "outbox", "case_sequence",
            "mailbox_state", "alembic_version"} <= tables


def test_references_are_formatted_per_year(db_url):
    """References carry prefix and year and restart at 1 each year."""
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        refs = [store.allocate_ref(session, "VO", 2026), store.allocate_ref(session, "VO", 2026),
                store.allocate_ref(session, "VO", 2027)]
    engine.dispose()
    assert refs == ["VO-2026-000001", "VO-2026-000002", "VO-2027-000001"]


def test_references_are_unique_and_gap_free_under_concurrency(db_url):
    """Eight workers allocating at once, some rolling back, leave no gap and no duplicate."""
    engine = make_engine(db_url, pool_size=10) if db_url.startswith("postgresql") else make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    committed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                session = sessions()
                try:
                    with session.begin():
                        ref = store.allocate_ref(session, "VO", 2026)
                        if (n + i) % 4 == 0:
                            raise RuntimeError("roll back")
                    with lock:
                        committed.append(ref)
                except RuntimeError:
                    pass
                finally:
                    session.close()
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert not errors
    numbers = sorted(int(ref.rsplit("-", 1)[1]) for ref in committed)
    assert numbers == list(range(1, len(committed) + 1))
    assert len(committed) == 60


def test_insert_object_writes_one_row_and_keeps_the_object_usable(db_url):
    """`insert_object`: one INSERT with every column (defaults included); reading the object
    afterwards costs no query, a later change is an UPDATE, and the row reads back the same."""
    from sqlalchemy import event, select

    from mailbot.db import Case, Message
    from mailbot.db_statements import insert_object

    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement.split()[0].upper()))

    def statements_of_rows() -> list[str]:  # SQLite's BEGIN IMMEDIATE passes the same event
        return [s for s in statements if s != "BEGIN"]

    with sessions.begin() as session:
        case = Case(ref="VO-2026-000001", citizen_email="an@example.be", match_agencies=["de-lijn"])
        insert_object(session, case)
        message = Message(direction="in", kind="new_complaint", message_id="m1@example.be",
                          sha256="0" * 64, case_id=case.id)
        insert_object(session, message)
        assert statements_of_rows() == ["INSERT", "INSERT"]
        assert (case.status, case.flags, case.language, message.details) == ("open", [], "nl", {})
        assert case.created_at is not None and statements_of_rows() == ["INSERT", "INSERT"]  # nothing loaded
        case.flags = ["possible_duplicate"]
    assert statements_of_rows()[-1] == "UPDATE"
    with sessions() as session:
        row = session.execute(select(Case)).scalar_one()
        assert (row.id, row.flags, row.match_agencies, row.status) == (
            case.id, ["possible_duplicate"], ["de-lijn"], "open")
        assert session.execute(select(Message.case_id)).scalar_one() == case.id
    engine.dispose()


@pytest.fixture
def raw_store(db_url):
    """A migrated database, its sessions, the raw_mail statements sent, and what is stored."""
    from sqlalchemy import event, select

    from mailbot.db import RawMail

    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    inserts: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *args:
                 inserts.append(statement) if "raw_mail" in statement else None)

    def stored() -> dict[str, bytes]:
        with sessions() as session:
            return {sha: data for sha, data in session.execute(select(RawMail.sha256, RawMail.data))}
    yield sessions, inserts, stored
    engine.dispose()


def test_raw_mail_is_written_once_at_commit_and_dropped_on_rollback(raw_store):
    """Raw bytes wait for the commit and go in one statement; the same content stored twice
    in a transaction, or already stored by an earlier one, is kept once; a rollback
    (a failed batch) leaves nothing behind."""
    sessions, inserts, stored = raw_store
    with sessions.begin() as session:
        store.store_raw(session, "a" * 64, b"first")
        store.store_raw(session, "b" * 64, b"second")
        store.store_raw(session, "a" * 64, b"first")
        assert inserts == []  # nothing written before the commit
    assert len(inserts) == 1
    with sessions.begin() as session:
        store.store_raw(session, "a" * 64, b"first")  # an earlier transaction's content
        store.store_raw(session, "c" * 64, b"third")
    try:
        with sessions.begin() as session:
            store.store_raw(session, "d" * 64, b"lost")
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    assert stored() == {"a" * 64: b"first", "b" * 64: b"second", "c" * 64: b"third"}


def test_raw_mail_past_the_held_budget_is_inserted_at_once(raw_store, monkeypatch):
    """Raw mail waits for the commit only up to `RAW_HELD_BYTES` per transaction: a batch of
    large mails is written as it goes instead of staying in memory, and every byte arrives."""
    sessions, inserts, stored = raw_store
    monkeypatch.setattr(store, "RAW_HELD_BYTES", 10)
    with sessions.begin() as session:
        store.store_raw(session, "a" * 64, b"small")  # 5 bytes: held
        assert inserts == []
        store.store_raw(session, "b" * 64, b"too large for the budget")  # written now
        assert len(inserts) == 1
        store.store_raw(session, "c" * 64, b"tiny")  # 9 bytes held in all: still within
        assert len(inserts) == 1
    assert len(inserts) == 2  # the held two in one statement at commit
    assert stored() == {"a" * 64: b"small", "b" * 64: b"too large for the budget", "c" * 64: b"tiny"}
