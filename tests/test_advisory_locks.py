"""PostgreSQL advisory locks belong to the whole database: mailbot salts its keys with the
schema, so installations (or test runs) sharing one database in separate schemas never wait
for each other, while the workers of one schema still do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from conftest import complaint
from mailbot import locks, replies
from mailbot.db_engine import make_engine
from servers import drop_pg_schema, pg_schema_url

pytestmark = pytest.mark.postgres

RECIPIENT = "burger@example.org"


@pytest.fixture
def other_schema() -> Iterator[str]:
    url, schema = pg_schema_url()
    yield url
    drop_pg_schema(schema)


@pytest.fixture
def holder(other_schema) -> Iterator[Session]:
    """An open transaction in another schema of the same database."""
    engine = make_engine(other_schema)
    with Session(engine) as session, session.begin():
        yield session
    engine.dispose()


def _session(url: str) -> Session:
    return Session(make_engine(url))


def test_a_recipient_locked_in_another_schema_does_not_hold_this_schema_s_reply(pg_url, holder, monkeypatch):
    monkeypatch.setattr(replies, "LOCK_WAIT_SECONDS", 0.3)
    assert replies._lock_recipient(holder, RECIPIENT)
    with _session(pg_url) as mine, mine.begin():
        assert replies._lock_recipient(mine, RECIPIENT)


def test_a_recipient_locked_by_another_worker_of_the_same_schema_holds_the_reply(pg_url, monkeypatch):
    monkeypatch.setattr(replies, "LOCK_WAIT_SECONDS", 0.3)
    with _session(pg_url) as first, first.begin(), _session(pg_url) as second, second.begin():
        assert replies._lock_recipient(first, RECIPIENT)
        assert not replies._lock_recipient(second, RECIPIENT)


def _identity_lock_waits(url: str) -> bool:
    """Whether taking the identity locks of a complaint in `url`'s schema has to wait."""
    with _session(url) as session, session.begin():
        session.connection().exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
        try:
            locks.lock_identities(session, [complaint()])
        except Exception as err:  # noqa: BLE001 - the lock timeout, as PostgreSQL reports it
            assert "lock timeout" in str(err)
            return True
        return False


def test_identity_locks_of_another_schema_do_not_block_this_one(pg_url, holder):
    locks.lock_identities(holder, [complaint()])
    assert not _identity_lock_waits(pg_url)


def test_identity_locks_of_the_same_schema_make_the_second_worker_wait(pg_url):
    with _session(pg_url) as first, first.begin():
        locks.lock_identities(first, [complaint()])
        assert _identity_lock_waits(pg_url)
