"""The outbox: claims, retries with backoff, 5xx handling, leases, concurrent senders, Sent copies.

Rows are put straight into the outbox (see `queue_rows`); replies go to a real aiosmtpd sink.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from helpers import imap_config
from mailbot.addresses import undeliverable
from mailbot.db import AddressStatus, Case, Event, Outbox
from mailbot.outbox import RetryPolicy, backoff, claim_due, send_due
from mailbot.send import SmtpTransport

from datetime import datetime, timezone
from email.message import EmailMessage



def make_mime(message_id: str, recipient: str, subject: str = "Uw klacht [VO-2026-000001]") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Vlaamse Ombudsdienst <klachten@vlaamseombudsdienst.be>"
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Wij hebben uw klacht goed ontvangen.\n")
    return bytes(msg)


def queue_rows(sessions, n: int, *, recipient: str | None = None, prefix: str = "r",
               now: datetime | None = None, with_case: bool = True) -> list[int]:
    """`n` pending outbox rows (one case each when `with_case`); returns their ids."""
    now = now or datetime.now(timezone.utc)
    ids = []
    with sessions.begin() as session:
        for i in range(n):
            to = recipient or f"burger{i}@example.be"
            case = None
            if with_case:
                case = Case(ref=f"VO-2026-{prefix}{i:05d}", citizen_email=to, created_at=now, updated_at=now)
                session.add(case)
                session.flush()
            mid = f"{prefix}{i}@vlaamseombudsdienst.be"
            row = Outbox(case_id=case.id if case else None, template="ack_investigation", recipient=to,
                         message_id=mid, mime=make_mime(mid, to), status="pending",
                         created_at=now, next_attempt_at=now)
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def _statuses(app) -> list[str]:
    with app.sessions() as session:
        return list(session.execute(select(Outbox.status).order_by(Outbox.id)).scalars())


def _events(app, type_: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.execute(select(Event).where(Event.type == type_)).scalars())


def _sent_ids(sink) -> list[str]:
    return [m["Message-ID"] for m in sink.parsed()]


@pytest.fixture
def app(make_app, smtp_sink, db_url):
    return make_app(smtp={"port": smtp_sink.port}, db_url=db_url, limits={"send_attempts": 3})


def test_due_rows_are_sent_and_marked(app, smtp_sink):
    """Every due row goes out once, to its recipient, and is marked sent with an event."""
    queue_rows(app.sessions, 5)
    report = app.send_outbox()
    assert (report.sent, report.retried, report.failed) == (5, 0, 0)
    assert sorted(e.rcpt_tos[0] for e in smtp_sink.messages) == sorted(f"burger{i}@example.be" for i in range(5))
    assert smtp_sink.messages[0].mail_from == "klachten@vlaamseombudsdienst.be"
    assert _statuses(app) == ["sent"] * 5
    assert len(_events(app, "reply_sent")) == 5
    assert app.send_outbox().sent == 0


def test_4xx_is_retried_with_backoff_then_sent(app, smtp_sink):
    """A 4xx reply leaves the row pending with a backed-off retry time; the retry delivers it."""
    [row_id] = queue_rows(app.sessions, 1)
    smtp_sink.failures.append("451 4.7.1 greylisted, try later")
    now = datetime.now(timezone.utc)
    report = app.send_outbox(now=now)
    assert (report.sent, report.retried) == (0, 1)
    with app.sessions() as session:
        row = session.get(Outbox, row_id)
        wait = row.next_attempt_at.replace(tzinfo=timezone.utc) - now
        assert row.status == "pending" and row.attempts == 1 and "451" in row.last_error
    assert timedelta(seconds=15) <= wait <= timedelta(seconds=30)
    assert app.send_outbox(now=now + timedelta(seconds=10)).sent == 0  # not due yet
    assert app.send_outbox(now=now + timedelta(seconds=31)).sent == 1
    assert len(smtp_sink.messages) == 1 and _statuses(app) == ["sent"]


def test_refused_connection_is_retried_until_the_server_recovers(app, smtp_sink):
    """With the SMTP server down every row is retried later; once it is back each goes out once."""
    queue_rows(app.sessions, 3)
    smtp_sink.stop()
    now = datetime.now(timezone.utc)
    report = app.send_outbox(now=now)
    assert (report.sent, report.retried, report.failed) == (0, 3, 0)
    smtp_sink.start()
    assert app.send_outbox(now=now + timedelta(minutes=1)).sent == 3
    assert len(smtp_sink.messages) == 3 and len(set(_sent_ids(smtp_sink))) == 3


def test_transient_failures_fail_only_after_days_and_send_attempts(app, smtp_sink):
    """A reply the server keeps refusing with 4xx stays pending past `limits.send_attempts`
    tries; it fails, case flagged, only once it has also waited the queue lifetime (5 days)."""
    [row_id] = queue_rows(app.sessions, 1)
    smtp_sink.failures.extend(["421 4.3.2 shutting down"] * 5)
    now = datetime.now(timezone.utc)
    for hours in (0, 1, 3, 6):
        assert app.send_outbox(now=now + timedelta(hours=hours)).retried == 1
    assert _statuses(app) == ["pending"] and not _events(app, "reply_failed")
    assert app.send_outbox(now=now + timedelta(days=5, minutes=1)).failed == 1
    with app.sessions() as session:
        row = session.get(Outbox, row_id)
        assert (row.status, row.attempts) == ("failed", 5)
        assert row.last_error.startswith("still not delivered after 5 days and 5 attempts: ")
        assert "421" in row.last_error
        assert "reply_failed" in session.get(Case, row.case_id).flags
        assert not undeliverable(session, row.recipient)
    [event] = _events(app, "reply_failed")
    assert event.detail["permanent"] is False
    assert smtp_sink.messages == []


def test_an_smtp_outage_of_days_charges_no_attempt_and_loses_no_reply(make_app, db_url):
    """Nobody listening on the SMTP port for a week, the outbox job running every few minutes:
    no reply fails, none is charged an attempt, retries back off to the cap; once the
    server is back each reply goes out once."""
    from servers import SmtpSink, free_port

    port = free_port()
    app = make_app(smtp={"port": port}, db_url=db_url, limits={"send_attempts": 3})
    start = datetime.now(timezone.utc)
    ids = queue_rows(app.sessions, 3, now=start)
    now, tries = start, 0
    while now < start + timedelta(days=7):
        report = app.send_outbox(now=now)
        tries += report.retried
        assert report.failed == 0 and report.sent == 0
        now += timedelta(minutes=7)
    assert _statuses(app) == ["pending"] * 3 and not _events(app, "reply_failed")
    with app.sessions() as session:
        rows = [session.get(Outbox, i) for i in ids]
        assert [r.attempts for r in rows] == [0, 0, 0]
        assert all("SMTP" in r.last_error for r in rows)
        waits = [r.next_attempt_at.replace(tzinfo=timezone.utc) - now for r in rows]
    assert all(w <= timedelta(hours=2) for w in waits)
    # backed off: far fewer tries than outbox runs (7 days / 7 min = 1440 runs, 3 rows)
    assert 3 * 7 * 12 <= tries < 3 * 7 * 24 + 3 * 40
    sink = SmtpSink(port=port)
    sink.start()
    try:
        assert app.send_outbox(now=now + timedelta(hours=2)).sent == 3
        assert len(sink.messages) == 3 and len(set(_sent_ids(sink))) == 3
    finally:
        sink.stop()


def test_5xx_for_a_bad_address_fails_at_once_and_blocks_the_address(app, smtp_sink):
    """550 5.1.1 marks the row failed without retry, flags the case undeliverable, and blocks
    the address: a later reply to it is not sent."""
    first, second = queue_rows(app.sessions, 2, recipient="weg@example.be")
    smtp_sink.failures.append("550 5.1.1 <weg@example.be>: no such user")
    report = send_due(app.sessions, app.transport, "klachten@vlaamseombudsdienst.be",
                      max_attempts=3, batch=1)
    assert (report.sent, report.failed) == (0, 2)  # the second is dropped unsent
    assert smtp_sink.messages == []
    with app.sessions() as session:
        assert session.get(Outbox, first).attempts == 1
        assert "undeliverable" in session.get(Case, session.get(Outbox, first).case_id).flags
        status = session.get(AddressStatus, "weg@example.be")
        assert status.status == "undeliverable" and status.source == "smtp" and "5.1.1" in status.reason
        assert undeliverable(session, "WEG@example.be")
        assert session.get(Outbox, second).last_error == "the address is marked undeliverable"


def test_5xx_policy_rejection_fails_without_blocking_the_address(app, smtp_sink):
    """554 5.7.1 (refused as spam) fails the row and flags `reply_failed`, but the address stays usable."""
    [row_id] = queue_rows(app.sessions, 1)
    smtp_sink.failures.append("554 5.7.1 message refused as spam")
    assert app.send_outbox().failed == 1
    with app.sessions() as session:
        row = session.get(Outbox, row_id)
        assert row.status == "failed" and row.attempts == 1
        assert session.get(Case, row.case_id).flags == ["reply_failed"]
        assert not undeliverable(session, row.recipient)


def test_held_rows_are_never_sent(app, smtp_sink):
    """A reply held by the flood limits stays held; the sender does not touch it."""
    [row_id] = queue_rows(app.sessions, 1)
    with app.sessions.begin() as session:
        session.get(Outbox, row_id).status = "held"
    assert app.send_outbox().sent == 0 and smtp_sink.messages == []
    assert _statuses(app) == ["held"]


def test_backoff_is_exponential_with_jitter_and_capped():
    """Retry delays double per attempt, vary between half and all of the ceiling, and stop at the cap."""
    rng = random.Random(7)
    base, cap = timedelta(seconds=30), timedelta(hours=2)
    for attempt in range(1, 12):
        ceiling = min(base * 2 ** (attempt - 1), cap)
        delays = [backoff(attempt, base=base, cap=cap, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert backoff(1000, base=base, cap=cap) <= cap


def test_claimed_rows_are_leased(app):
    """Rows claimed by one sender are invisible to the next until the lease runs out."""
    queue_rows(app.sessions, 3)
    now = datetime.now(timezone.utc)
    lease = timedelta(minutes=5)
    with app.sessions.begin() as session:
        assert len(claim_due(session, now, 10, lease)) == 3
    with app.sessions.begin() as session:
        assert claim_due(session, now + timedelta(minutes=4), 10, lease) == []
    with app.sessions.begin() as session:
        assert len(claim_due(session, now + timedelta(minutes=6), 10, lease)) == 3


def test_result_after_the_lease_ran_out_is_not_recorded(app, smtp_sink):
    """A sender whose claim expired mid-send does not overwrite the row another sender took over."""
    queue_rows(app.sessions, 1)
    now = datetime.now(timezone.utc)
    real = app.transport
    second: list = []

    class Slow:
        def send_many(self, envelopes, *, stop=None, on_result=None):
            # Meanwhile, after the lease, a second sender claims and sends the row.
            second.append(send_due(app.sessions, real, "klachten@vlaamseombudsdienst.be",
                                   max_attempts=3, now=now + timedelta(minutes=6)))
            return real.send_many(envelopes, stop=stop)

    report = send_due(app.sessions, Slow(), "klachten@vlaamseombudsdienst.be", max_attempts=3, now=now)
    assert report.sent == 0 and second[0].sent == 1
    with app.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
        assert row.status == "sent" and row.attempts == 2
    assert len(_events(app, "reply_sent")) == 1


def test_time_budget_releases_unstarted_rows(app, smtp_sink):
    """Rows a batch could not start inside the claim are released, due again, with no attempt spent."""
    queue_rows(app.sessions, 3)
    hurried = SmtpTransport(app.settings.smtp, claim_seconds=0)
    report = send_due(app.sessions, hurried, "klachten@vlaamseombudsdienst.be", max_attempts=3)
    assert (report.sent, report.released) == (0, 3) and smtp_sink.messages == []
    with app.sessions() as session:
        assert [r.attempts for r in session.execute(select(Outbox)).scalars()] == [0, 0, 0]
    assert app.send_outbox().sent == 3


def test_concurrent_senders_deliver_each_row_exactly_once(app, smtp_sink, db_url):
    """Three senders in threads share 200 rows (SKIP LOCKED on PostgreSQL): each Message-ID arrives once."""
    ids = queue_rows(app.sessions, 200, recipient="burger@example.be", with_case=False)
    reports = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def sender() -> None:
        try:
            transport = SmtpTransport(app.settings.smtp)
            start.wait(10)
            reports.append(send_due(app.sessions, transport, "klachten@vlaamseombudsdienst.be",
                                    max_attempts=3, batch=10))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    received = _sent_ids(smtp_sink)
    assert len(received) == 200 and len(set(received)) == 200
    assert sum(r.sent for r in reports) == 200
    assert sorted(i for r in reports for i in r.sent_ids) == ids
    if db_url.startswith("postgresql"):
        assert sum(1 for r in reports if r.sent) >= 2  # the work was really shared
    assert _statuses(app) == ["sent"] * 200


@pytest.mark.dovecot
def test_sent_replies_are_copied_to_the_imap_sent_folder(make_app, smtp_sink, dovecot, sqlite_url):
    """With `imap.sent_folder` set, every sent reply is also filed, as read, in that IMAP folder;
    the staff digest is not (it names many citizens; the outbox keeps it for digest_days)."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url,
                   imap=imap_config(dovecot) | {"sent_folder": "Sent"})
    digest_id, *_ = queue_rows(app.sessions, 4)
    with app.sessions.begin() as session:
        digest = session.get(Outbox, digest_id)
        digest.template, digest_mid = "digest", digest.message_id
    assert app.send_outbox().sent == 4
    client = dovecot.client()
    try:
        client.select_folder("Sent")
        found = client.fetch(client.search(), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "FLAGS"])
    finally:
        client.logout()
    ids = sorted(bytes(v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).decode().split()[1] for v in found.values())
    assert len(ids) == 3 and ids == sorted(i for i in _sent_ids(smtp_sink) if digest_mid not in i)
    assert all(b"\\Seen" in v[b"FLAGS"] for v in found.values())


def test_failed_sent_copy_is_an_event_not_a_resend(make_app, smtp_sink, sqlite_url):
    """When the IMAP server is unreachable the replies still count as sent and the digest gets an event."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url, imap={"sent_folder": "Sent", "port": 1})
    queue_rows(app.sessions, 2)
    assert app.send_outbox().sent == 2
    [event] = _events(app, "sent_copy_failed")
    assert event.detail["missing"] == 2 and event.detail["folder"] == "Sent"
    assert app.send_outbox().sent == 0 and len(smtp_sink.messages) == 2


def test_retry_policy_comes_from_config(make_app, smtp_sink, sqlite_url):
    """`smtp.retry_base_seconds` sets the first retry delay."""
    app = make_app(smtp={"port": smtp_sink.port, "retry_base_seconds": 600}, db_url=sqlite_url)
    [row_id] = queue_rows(app.sessions, 1)
    smtp_sink.failures.append("450 4.2.0 mailbox busy")
    now = datetime.now(timezone.utc)
    app.send_outbox(now=now)
    with app.sessions() as session:
        wait = session.get(Outbox, row_id).next_attempt_at.replace(tzinfo=timezone.utc) - now
    assert timedelta(seconds=300) <= wait <= timedelta(seconds=600)
    assert RetryPolicy().lease == timedelta(minutes=5)


@pytest.mark.parametrize("slow_smtp", [2.8], indirect=True)
def test_a_slow_server_cannot_keep_a_reply_on_the_wire_past_the_claim(make_app, sqlite_url, slow_smtp):
    """A server answering each command in 2.8 s (timeout 3 s) needs 11.2 s for one reply, more
    than the 10 s claim. The transaction is cut off before DATA, so when a second sender
    (`mailbot run`'s outbox job next to the send after a poll) runs after the claim, the server
    has no copy and the row is not due; once the server is quick again the reply goes out once."""
    port, server = slow_smtp
    app = make_app(db_url=sqlite_url, smtp={"port": port, "timeout_seconds": 3,
                                            "claim_lease_seconds": 10, "concurrency": 1})
    [row_id] = queue_rows(app.sessions, 1)
    reports: dict = {}
    first = threading.Thread(target=lambda: reports.setdefault("first", app.send_outbox()))
    first.start()
    time.sleep(10.5)  # the claim has run out (real time: the transport's bound is on the clock)
    reports["second"] = app.send_outbox()
    first.join()
    # The first sender's result is recorded (retried, one attempt): it was done before the
    # second looked, which would otherwise have claimed the row and made that result stale.
    assert server.received == []
    assert (reports["first"].retried, reports["second"].sent) == (1, 0)
    with app.sessions() as session:
        row = session.get(Outbox, row_id)
        assert row.status == "pending" and row.attempts == 1
        assert "cut off before DATA" in row.last_error and "claim" in row.last_error
    server.delay = 0
    assert app.send_outbox(now=datetime.now(timezone.utc) + timedelta(minutes=1)).sent == 1
    assert len(server.received) == 1 and _statuses(app) == ["sent"]


@pytest.mark.parametrize("slow_smtp", [0.3], indirect=True)
def test_a_stop_releases_the_unstarted_rows(make_app, db_url, slow_smtp):
    """SIGTERM while the outbox goes out to a slow server: the reply in flight is sent and
    marked, the others are released (due at once, no attempt spent) and not sent twice
    later; a sender that is already stopping claims nothing."""
    port, server = slow_smtp
    app = make_app(db_url=db_url, smtp={"port": port, "timeout_seconds": 5, "concurrency": 1})
    queue_rows(app.sessions, 5)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    report = app.send_outbox(stop=stop)  # without the stop, all five would go (slowly)
    assert (report.sent, report.released, report.retried, report.failed) == (1, 4, 0, 0)
    with app.sessions() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        assert [r.status for r in rows] == ["sent"] + ["pending"] * 4
        assert [r.attempts for r in rows] == [1, 0, 0, 0, 0]
        due = [r.next_attempt_at.replace(tzinfo=timezone.utc) for r in rows[1:]]
    assert all(d <= datetime.now(timezone.utc) for d in due)
    assert app.send_outbox(stop=stop).released == 0  # stopping: nothing is claimed
    with app.sessions() as session:
        assert [r.attempts for r in session.execute(select(Outbox)).scalars()] == [1, 0, 0, 0, 0]
    server.delay = 0
    assert app.send_outbox().sent == 4
    time.sleep(0.2)
    assert len(server.received) == 5


class _Crash(BaseException):
    """The sender dies (SIGKILL, OOM) right after a reply was delivered."""


def test_a_sender_dying_mid_batch_leaves_few_delivered_replies_unrecorded(app, smtp_sink):
    """Results are recorded while the batch goes out, RECORD_EVERY at a time. Before, a batch of
    up to 200 was recorded only at its end: a sender killed after 25 deliveries left all 25
    unrecorded, and each was sent a second time when the claim ran out (audit B: 16 of 30)."""
    from mailbot.outbox import RECORD_EVERY

    queue_rows(app.sessions, 40)
    real = app.transport

    class DiesAfter25:
        def send_many(self, envelopes, *, stop=None, on_result=None):
            delivered = []

            def hook(result):
                if on_result is not None:
                    on_result(result)
                delivered.append(result)
                if len(delivered) == 25:
                    raise _Crash()
            return real.send_many(envelopes, stop=stop, on_result=hook)

    with pytest.raises(_Crash):
        send_due(app.sessions, DiesAfter25(), "klachten@vlaamseombudsdienst.be", max_attempts=3)
    assert len(smtp_sink.messages) >= 25
    with app.sessions() as session:
        sent = session.execute(select(Outbox.message_id).where(Outbox.status == "sent")).scalars().all()
    delivered = {_message_id(m) for m in smtp_sink.messages}
    assert set(sent) <= delivered
    assert len(delivered) - len(sent) <= RECORD_EVERY + app.settings.smtp.concurrency, (len(delivered), len(sent))


def _message_id(message) -> str:
    from email import message_from_bytes

    return message_from_bytes(message.content)["Message-ID"].strip("<>")
