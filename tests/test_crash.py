"""Nothing lost, nothing twice: the poll cycle is interrupted at each step and re-run.

`Crash` derives from BaseException, like a process being killed: no `except Exception`
in the pipeline can swallow it, and every open transaction is rolled back.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import append_all, counts, folder_count, imap_config
from mailbot.db import Case, Message, Outbox
from mailbot.errors import FetchError
from mailbot.fetch import ImapMailbox

pytestmark = pytest.mark.dovecot


class Crash(BaseException):
    """The process dies here."""


def _mails(n: int) -> list[bytes]:
    return [complaint(sender=f"burger{i}@example.be", name=f"Burger {i}",
                      subject=f"Klacht nummer {i}", message_id=f"<m{i}@mail.example.be>") for i in range(n)]


def _assert_exactly_once(app, dovecot, smtp_sink, n: int) -> None:
    c = counts(app)
    assert c["incoming"] == n and c["cases"] == n and c["outbox"] == n and c["sent"] == n
    with app.sessions() as session:
        refs = session.execute(select(Case.ref)).scalars().all()
        ids = session.execute(select(Message.message_id).where(Message.direction == "in")).scalars().all()
    assert len(set(refs)) == n and len(set(ids)) == n
    # One acknowledgment (one Message-ID) per complaint, each recipient once.
    distinct = {(m["To"], m["Message-ID"]) for m in smtp_sink.parsed()}
    assert len(distinct) == n
    assert sorted(e.rcpt_tos[0] for e in smtp_sink.messages) == sorted(f"burger{i}@example.be" for i in range(n))
    assert folder_count(dovecot, "INBOX") == 0
    assert folder_count(dovecot, "Processed") == n


@pytest.fixture
def app(make_app, dovecot, smtp_sink, db_url):
    return make_app(imap=imap_config(dovecot) | {"batch_size": 3}, smtp={"port": smtp_sink.port},
                    db_url=db_url)


def test_crash_before_commit(app, dovecot, smtp_sink, monkeypatch):
    """Dying while processing the 5th message loses its batch's work; the re-run does it once."""
    append_all(dovecot, _mails(7))
    real = app.intake.process
    seen = []

    def dying(session, raw, source=None, **kwargs):
        seen.append(source.uid)
        if len(seen) == 5:
            raise Crash()
        return real(session, raw, source, **kwargs)

    monkeypatch.setattr(app.intake, "process", dying)
    with pytest.raises(Crash):
        app.poll_once()
    assert counts(app)["incoming"] == 3  # the first batch of three was committed
    monkeypatch.setattr(app.intake, "process", real)
    app.poll_once()
    app.send_outbox()
    _assert_exactly_once(app, dovecot, smtp_sink, 7)


def test_crash_after_commit_before_move(app, dovecot, smtp_sink, monkeypatch):
    """Committed but not moved: the re-run moves the mail without processing it again."""
    append_all(dovecot, _mails(4))
    real_move = ImapMailbox.move

    def dying_move(self, uids, folder):
        raise Crash()

    monkeypatch.setattr(ImapMailbox, "move", dying_move)
    with pytest.raises(Crash):
        app.poll_once()
    assert counts(app)["incoming"] == 3 and folder_count(dovecot, "INBOX") == 4
    monkeypatch.setattr(ImapMailbox, "move", real_move)
    app.poll_once()
    app.send_outbox()
    _assert_exactly_once(app, dovecot, smtp_sink, 4)


def test_crash_after_smtp_send_before_mark(app, dovecot, smtp_sink):
    """Sent but not marked: after the claim lease the reply goes out once more with the
    same Message-ID (the documented at-most-one duplicate); no second acknowledgment is made."""
    append_all(dovecot, _mails(2))
    app.poll_once()
    real_send = app.transport.send_many

    def send_then_die(envelopes, **options):
        real_send(envelopes, **options)
        raise Crash()

    app.transport.send_many = send_then_die
    with pytest.raises(Crash):
        app.send_outbox()
    app.transport.send_many = real_send
    assert app.send_outbox().sent == 0  # still leased: nothing is re-sent at once
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    assert app.send_outbox(now=later).sent == 2
    assert app.send_outbox(now=later + timedelta(minutes=10)).sent == 0
    ids = [m["Message-ID"] for m in smtp_sink.parsed()]
    assert len(ids) == 4 and len(set(ids)) == 2
    with app.sessions() as session:
        assert session.execute(select(Outbox.status)).scalars().all() == ["sent", "sent"]


def test_connection_dropped_mid_fetch(app, dovecot, smtp_sink, monkeypatch):
    """The IMAP connection dies during FETCH: the cycle fails cleanly and the re-run finishes."""
    append_all(dovecot, _mails(5))
    real_fetch = ImapMailbox.fetch
    calls = []

    def cut_connection(self, uids):
        calls.append(uids)
        if len(calls) == 2:
            self.client.socket().shutdown(socket.SHUT_RDWR)
        return real_fetch(self, uids)

    monkeypatch.setattr(ImapMailbox, "fetch", cut_connection)
    with pytest.raises(FetchError):
        app.poll_once()
    monkeypatch.setattr(ImapMailbox, "fetch", real_fetch)
    app.poll_once()
    app.send_outbox()
    _assert_exactly_once(app, dovecot, smtp_sink, 5)


def test_same_message_twice_in_the_inbox_is_one_message(app, dovecot, smtp_sink):
    """A second copy of the same mail (same Message-ID) is recorded once and answered once."""
    raw = complaint(message_id="<copy@mail.example.be>")
    append_all(dovecot, [raw, raw])
    report = app.poll_once()
    app.send_outbox()
    assert (report.processed, report.duplicates) == (1, 1)
    assert counts(app)["incoming"] == 1 and len(smtp_sink.messages) == 1
    assert folder_count(dovecot, "INBOX") == 0
