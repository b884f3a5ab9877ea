"""Fault injection through the real poll cycle: IMAP and SMTP connections broken by a proxy,
Dovecot restarted mid-batch, the folder recreated under a new UIDVALIDITY.

After every scenario the robot is only re-run (poll_once / send_outbox), never repaired,
and `assert_settled` checks the promises of DESIGN.md: every appended message is in the
database exactly once (or quarantined with a reason), no citizen got two different
replies (a repeat of the same Message-ID is the documented at-most-one case), the inbox
is empty.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from conftest import complaint
from helpers import append_all, folder_count, imap_config
from sqlalchemy import select
from tcp_proxy import TcpProxy

from mailbot.db import Event, Message, Outbox
from mailbot.errors import FetchError
from mailbot.fetch import ImapMailbox

pytestmark = pytest.mark.dovecot

LATER = timedelta(hours=3)  # past any retry backoff and claim lease of the tests


class Crash(BaseException):
    """The process dies here (not catchable by `except Exception`)."""


def mails(n: int, *, body_kb: int = 0, tag: str = "f") -> list[bytes]:
    """`n` distinct complaints from `n` citizens; `body_kb` pads each body."""
    pad = ("\n" + "Aanvullende uitleg over mijn dossier. " * 26 + "\n") * body_kb
    return [complaint(sender=f"{tag}{i}@example.be", name=f"Burger {i}", subject=f"Klacht {tag} {i}",
                      message_id=f"<{tag}{i}@mail.example.be>",
                      body=None if not body_kb else f"Geachte,\n\nMijn klacht nummer {i}.{pad}\nGroeten")
            for i in range(n)]


def recover(app, *, rounds: int = 3) -> None:
    """What cron does: poll and send again, a few times, with time passing in between."""
    now = datetime.now(timezone.utc)
    for i in range(rounds):
        app.poll_once()
        app.send_outbox(now=now + LATER * (i + 1))


def assert_settled(app, dovecot, smtp_sink, n: int, *, quarantined: int = 0, replies: int | None = None,
                   folder: str = "INBOX") -> None:
    """The promises of DESIGN.md after a fault and a plain re-run."""
    replies = n - quarantined if replies is None else replies
    with app.sessions() as session:
        rows = session.execute(select(Message.message_id, Message.quarantine_reason)
                               .where(Message.direction == "in")).all()
        outbox = session.execute(select(Outbox.recipient, Outbox.status, Outbox.message_id)).all()
    assert len(rows) == n, f"{len(rows)} incoming rows for {n} mails"
    assert len({mid for mid, _ in rows if mid}) == len([mid for mid, _ in rows if mid])
    assert sum(1 for _, reason in rows if reason) == quarantined
    # One reply row per answered citizen, every one of them sent.
    assert Counter(r for r, _, _ in outbox) == Counter({r: 1 for r, _, _ in outbox})
    assert len(outbox) == replies and {s for _, s, _ in outbox} <= {"sent"}
    # Delivered: each recipient got exactly one distinct Message-ID (repeats of it allowed).
    per_recipient: dict[str, set[str]] = {}
    for envelope, parsed in zip(smtp_sink.messages, smtp_sink.parsed()):
        per_recipient.setdefault(envelope.rcpt_tos[0], set()).add(parsed["Message-ID"])
    assert len(per_recipient) == replies
    assert all(len(ids) == 1 for ids in per_recipient.values()), per_recipient
    assert folder_count(dovecot, folder) == 0
    assert folder_count(dovecot, "Processed") + folder_count(dovecot, "Quarantine") == n


@pytest.fixture
def imap_proxy(dovecot):
    with TcpProxy(dovecot.port) as proxy:
        yield proxy


@pytest.fixture
def app(make_app, dovecot, imap_proxy, smtp_sink, db_url):
    """The app reaching Dovecot through the proxy, in batches of five."""
    return make_app(imap=imap_config(dovecot) | {"port": imap_proxy.port, "batch_size": 5,
                                                 "timeout_seconds": 5},
                    smtp={"port": smtp_sink.port, "retry_base_seconds": 1}, db_url=db_url)


def test_imap_cut_mid_fetch(app, dovecot, imap_proxy, smtp_sink):
    """The IMAP connection cut in the middle of a FETCH response: the poll fails with
    FetchError after committing the batches before it, and the next poll finishes the rest."""
    n = 14
    append_all(dovecot, mails(n, body_kb=8))
    imap_proxy.cut_after(60_000)  # 8 kB mails in batches of 5: inside the second FETCH
    with pytest.raises(FetchError):
        app.poll_once()
    assert 0 < folder_count(dovecot, "INBOX") < n and not imap_proxy.armed
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


@pytest.mark.parametrize("server_moved", [False, True], ids=["move-lost", "reply-lost"])
def test_imap_cut_mid_move(app, dovecot, imap_proxy, smtp_sink, server_moved):
    """The connection cut on the UID MOVE, before the server got it or after it moved the
    mail but before we heard back: committed mail is moved (or found moved) by the next poll."""
    n = 8
    append_all(dovecot, mails(n))
    imap_proxy.cut_on(b"MOVE", forward=server_moved)
    with pytest.raises(FetchError):
        app.poll_once()
    assert folder_count(dovecot, "INBOX") == (3 if server_moved else n)
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


def test_dovecot_restarted_mid_batch(app, dovecot, smtp_sink, monkeypatch):
    """Dovecot kicks every client and restarts while a batch is processed: the poll fails
    cleanly and the next one, on a new connection, finishes without doing anything twice."""
    n = 12
    append_all(dovecot, mails(n))
    real = app.intake.process
    calls = []

    def restart_on_seventh(session, raw, source=None, **kw):
        calls.append(source)
        if len(calls) == 7:
            subprocess.run(["doveadm", "-c", str(dovecot.root / "dovecot.conf"), "kick", dovecot.username],
                           check=True, capture_output=True, timeout=10)
            dovecot.restart()
        return real(session, raw, source, **kw)

    monkeypatch.setattr(app.intake, "process", restart_on_seventh)
    with pytest.raises(FetchError):
        app.poll_once()
    monkeypatch.setattr(app.intake, "process", real)
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


def test_uidvalidity_changed_same_mail_reappended(make_app, dovecot, smtp_sink, db_url, monkeypatch):
    """The folder deleted and recreated with the same mail re-appended (new UIDVALIDITY):
    what was recorded is recognised by Message-ID + content and not answered again."""
    n = 8
    app = make_app(imap=imap_config(dovecot) | {"folder": "Klachten", "batch_size": 5},
                   smtp={"port": smtp_sink.port}, db_url=db_url)
    raws = mails(n, tag="u")
    client = dovecot.client()
    client.create_folder("Klachten")
    client.logout()
    append_all(dovecot, raws, folder="Klachten")
    real_move = ImapMailbox.move

    def dying_move(self, uids, folder):
        raise Crash()

    monkeypatch.setattr(ImapMailbox, "move", dying_move)
    with pytest.raises(Crash):
        app.poll_once()
    app.send_outbox()  # the first five are answered already
    monkeypatch.setattr(ImapMailbox, "move", real_move)
    client = dovecot.client()
    old = client.folder_status("Klachten", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.delete_folder("Klachten")
    client.create_folder("Klachten")
    new = client.folder_status("Klachten", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    assert new != old
    client.logout()
    append_all(dovecot, raws, folder="Klachten")
    report = app.poll_once()
    assert (report.processed, report.duplicates) == (3, 5)
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n, folder="Klachten")
    with app.sessions() as session:
        changes = session.execute(select(Event.detail).where(Event.type == "uidvalidity_changed")).scalars()
        # Exactly one change is recorded: the first poll only notes the value.
        assert [(d["old"], d["new"]) for d in changes] == [(old, new)]


# -- SMTP ----------------------------------------------------------------------------------

@pytest.fixture
def smtp_proxy(smtp_sink):
    with TcpProxy(smtp_sink.port) as proxy:
        yield proxy


@pytest.fixture
def proxied_app(make_app, dovecot, smtp_proxy, db_url):
    """The app sending through a proxy in front of the SMTP sink."""
    return make_app(imap=imap_config(dovecot), smtp={"port": smtp_proxy.port, "timeout_seconds": 3,
                                                     "retry_base_seconds": 1}, db_url=db_url)


def test_smtp_greylisting_4xx_is_retried(app, dovecot, smtp_sink):
    """Greylisting (451) on the first tries: the replies are retried later and sent once each."""
    n = 6
    append_all(dovecot, mails(n))
    smtp_sink.failures = ["451 4.7.1 Greylisted, try again later"] * 4
    app.poll_once()
    first = app.send_outbox()
    assert (first.sent, first.retried) == (n - 4, 4)
    recover(app)
    assert_settled(app, dovecot, smtp_sink, n)


def test_smtp_rejection_5xx_fails_once_and_is_flagged(app, dovecot, smtp_sink):
    """A 554 rejection fails that reply for good (case flagged), never resent; the others go."""
    n = 4
    append_all(dovecot, mails(n))
    smtp_sink.failures = ["554 5.7.1 Message refused by policy"]
    app.poll_once()
    assert app.send_outbox().failed == 1
    recover(app)
    with app.sessions() as session:
        statuses = Counter(session.execute(select(Outbox.status)).scalars())
    assert statuses == Counter({"sent": n - 1, "failed": 1}) and len(smtp_sink.messages) == n - 1
    assert len({e.rcpt_tos[0] for e in smtp_sink.messages}) == n - 1


def test_smtp_refusing_connections(proxied_app, dovecot, smtp_proxy, smtp_sink):
    """SMTP refusing connections: nothing is lost, the replies go out once the server is back."""
    n = 5
    append_all(dovecot, mails(n))
    smtp_proxy.refuse(600)
    proxied_app.poll_once()
    report = proxied_app.send_outbox()
    assert (report.sent, report.retried) == (0, n)
    smtp_proxy.heal()
    recover(proxied_app)
    assert_settled(proxied_app, dovecot, smtp_sink, n)


@pytest.mark.parametrize("server_got_it", [False, True], ids=["data-lost", "reply-lost"])
def test_smtp_dropped_mid_data(make_app, dovecot, smtp_proxy, smtp_sink, db_url, server_got_it):
    """The SMTP connection dropped on the final dot of DATA: the reply is retried; when the
    server had accepted it, the retry repeats the same Message-ID (the at-most-one case)."""
    # One connection: with several, the cut also drops another connection's 250 after its
    # server accepted the mail — a legitimate repeat that "data lost" must not count.
    proxied_app = make_app(imap=imap_config(dovecot), db_url=db_url,
                           smtp={"port": smtp_proxy.port, "timeout_seconds": 3,
                                 "retry_base_seconds": 1, "concurrency": 1})
    n = 5
    append_all(dovecot, mails(n))
    proxied_app.poll_once()
    smtp_proxy.cut_on(b"\r\n.\r\n", forward=server_got_it)
    report = proxied_app.send_outbox()
    assert report.retried >= 1
    recover(proxied_app)
    assert_settled(proxied_app, dovecot, smtp_sink, n)
    # README, Reliability: a reply whose 250 was lost is sent once more (at most one duplicate);
    # one whose data never reached the server is not a repeat at all.
    repeats = len(smtp_sink.messages) - n
    assert repeats == (1 if server_got_it else 0)
