"""One poller per mailbox: the lease row, and two `mailbot run` processes sharing a mailbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from conftest import complaint
from helpers import append_all, folder_count, imap_config
from mailbot.db import Case, MailboxState, Message, Receipt
from mailbot.db_engine import make_engine, make_sessionmaker
from mailbot.lease import Leases, acquire, release
from mailbot.migrate import upgrade
from test_scheduler_procs import RunProcess, wait_until, write_config

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_lease_is_exclusive_until_it_expires(sessions):
    """A second owner is refused while the lease runs, and gets it once it has expired."""
    assert acquire(sessions, "box", "a", 60, now=T0)
    assert not acquire(sessions, "box", "b", 60, now=T0 + timedelta(seconds=30))
    assert acquire(sessions, "box", "a", 60, now=T0 + timedelta(seconds=30))  # renewal
    assert not acquire(sessions, "box", "b", 60, now=T0 + timedelta(seconds=89))
    assert acquire(sessions, "box", "b", 60, now=T0 + timedelta(seconds=91))
    assert not acquire(sessions, "box", "a", 60, now=T0 + timedelta(seconds=92))


def test_release_hands_over_at_once(sessions):
    """A released lease (graceful shutdown) is free for the next owner immediately."""
    assert acquire(sessions, "box", "a", 60, now=T0)
    release(sessions, "box", "a")
    assert acquire(sessions, "box", "b", 60, now=T0 + timedelta(seconds=1))


def test_lost_lease_is_signalled(sessions):
    """When a renewal finds another owner, the holder's `lost` event is set (its poll stops)."""
    clock = [T0]
    mine = Leases(sessions, seconds=10, owner="a", clock=lambda: clock[0])
    assert mine.claim("box") and mine.held() == ["box"]
    clock[0] = T0 + timedelta(seconds=11)
    assert acquire(sessions, "box", "b", 10, now=clock[0])
    mine.renew()
    assert mine.lost("box").is_set() and mine.held() == []


@pytest.mark.dovecot
@pytest.mark.postgres
def test_two_run_processes_share_a_mailbox_and_take_over(tmp_path, dovecot, smtp_sink, pg_url):
    """Two `mailbot run` on one PostgreSQL and one mailbox: only the lease holder processes, nothing
    is processed twice, and after kill -9 of the holder the other one takes over."""
    config = write_config(tmp_path, imap=imap_config(dovecot) | {"batch_size": 10},
                          smtp={"port": smtp_sink.port}, db_url=pg_url)
    engine = make_engine(pg_url)

    def scalar(query):
        with engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    runs = [RunProcess(config, tmp_path / "a.log"), RunProcess(config, tmp_path / "b.log")]
    try:
        wait_until(lambda: scalar(select(MailboxState.lease_owner)) is not None, 30, "a lease holder")
        append_all(dovecot, [complaint(sender=f"burger{i}@example.be", message_id=f"<p{i}@mail.example.be>")
                             for i in range(30)])
        wait_until(lambda: folder_count(dovecot, "INBOX") == 0 and len(smtp_sink.messages) == 30, 60,
                   "the first 30 mails")
        owner = scalar(select(MailboxState.lease_owner))
        holder, other = (runs[0], runs[1]) if f":{runs[0].pid}:" in owner else (runs[1], runs[0])
        assert f":{holder.pid}:" in owner
        assert len(holder.processed_lines()) == 30 and other.processed_lines() == []

        holder.kill()
        append_all(dovecot, [complaint(sender=f"later{i}@example.be", message_id=f"<q{i}@mail.example.be>")
                             for i in range(10)])
        wait_until(lambda: folder_count(dovecot, "INBOX") == 0 and len(smtp_sink.messages) == 40, 30,
                   "the survivor to take over")
        assert f":{other.pid}:" in scalar(select(MailboxState.lease_owner))
        assert len(other.processed_lines()) == 10
        assert other.terminate() == 0
    finally:
        for run in runs:
            run.stop_quietly()
    assert scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 40
    assert scalar(select(func.count(func.distinct(Message.message_id))).where(Message.direction == "in")) == 40
    assert scalar(select(func.count()).select_from(Case)) == 40
    assert scalar(select(func.count()).select_from(Receipt)) == 40
    assert sorted(e.rcpt_tos[0] for e in smtp_sink.messages) == sorted(
        [f"burger{i}@example.be" for i in range(30)] + [f"later{i}@example.be" for i in range(10)])
    assert scalar(select(MailboxState.lease_owner)) is None  # released on SIGTERM
    engine.dispose()
