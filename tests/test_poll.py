"""The intake spine end to end: Dovecot → case → acknowledgment → aiosmtpd."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from conftest import complaint
from helpers import append_all, counts, folder_count
from mailbot.db import Case, Message

pytestmark = pytest.mark.dovecot


def _app(make_app, dovecot, smtp_sink, db_url):
    return make_app(imap={"port": dovecot.port, "username": dovecot.username,
                          "password": dovecot.password},
                    smtp={"port": smtp_sink.port}, db_url=db_url)


def test_new_complaint_opens_a_case_and_acknowledges(make_app, dovecot, smtp_sink, db_url):
    """A complaint becomes a case with a reference and an investigator, and the citizen
    receives one acknowledgment naming the investigator, threaded to their mail."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    raw = complaint(message_id="<first@mail.example.be>")
    append_all(dovecot, [raw])

    report = app.poll_once()
    sent = app.send_outbox()

    assert (report.fetched, report.processed, sent.sent) == (1, 1, 1)
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        assert case.ref.startswith("VO-") and case.ref.endswith("-000001")
        assert case.citizen_email == "jan.peeters@example.be"
        assert case.investigator_email
    [reply] = smtp_sink.parsed()
    assert smtp_sink.messages[0].rcpt_tos == ["jan.peeters@example.be"]
    assert f"[{case.ref}]" in reply["Subject"]
    assert reply["In-Reply-To"] == "<first@mail.example.be>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Message-ID"].endswith("@vlaamseombudsdienst.be>")
    text = reply.get_body(("plain",)).get_content()
    assert case.investigator_name in text and case.investigator_email in text
    assert folder_count(dovecot, "INBOX") == 0
    assert folder_count(dovecot, "Processed") == 1


def test_fetch_does_not_set_seen(make_app, dovecot, smtp_sink, db_url):
    """Downloading uses BODY.PEEK[], so the moved message is still unread for staff."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    client = dovecot.client()
    client.select_folder("Processed")
    flags = client.get_flags(client.search())
    client.logout()
    assert all(b"\\Seen" not in f for f in flags.values())


def test_follow_up_with_reference_joins_the_case(make_app, dovecot, smtp_sink, db_url):
    """A citizen's mail carrying [REF] in its subject is threaded into that case, not a new one."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    append_all(dovecot, [complaint(subject=f"Re: Uw klacht [{ref}] studietoelage",
                                   body="Ik heb intussen een brief ontvangen.")])
    app.poll_once()
    with app.sessions() as session:
        assert session.execute(select(Case)).scalars().all().__len__() == 1
        kinds = [m.kind for m in session.execute(
            select(Message).where(Message.direction == "in").order_by(Message.id)).scalars()]
    assert kinds == ["new_complaint", "follow_up"]


def test_reply_to_our_message_id_threads_without_reference(make_app, dovecot, smtp_sink, db_url):
    """A reply whose In-Reply-To names our acknowledgment joins the case even without [REF]."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    app.send_outbox()
    ack_id = smtp_sink.parsed()[0]["Message-ID"]
    append_all(dovecot, [complaint(subject="nog een vraag", body="Mag ik nog iets toevoegen?",
                                   extra_headers=f"In-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\n")])
    app.poll_once()
    assert counts(app)["cases"] == 1 and counts(app)["incoming"] == 2


def test_unreadable_message_is_quarantined_and_batch_goes_on(make_app, dovecot, smtp_sink, db_url):
    """An oversize message goes to the quarantine folder with a reason; the others are processed."""
    app = make_app(
        imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
        smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": 4096})
    big = complaint(body="x" * 10_000)
    append_all(dovecot, [complaint(sender="a@example.be"), big, complaint(sender="b@example.be")])
    report = app.poll_once()
    assert (report.processed, report.quarantined) == (2, 1)
    with app.sessions() as session:
        reasons = session.execute(select(Message.quarantine_reason)
                                  .where(Message.quarantine_reason.is_not(None))).scalars().all()
    assert len(reasons) == 1 and "exceeds" in reasons[0]
    assert folder_count(dovecot, "Quarantine") == 1
    assert folder_count(dovecot, "Processed") == 2
    assert folder_count(dovecot, "INBOX") == 0


def test_second_poll_does_nothing(make_app, dovecot, smtp_sink, db_url):
    """Polling an empty inbox again creates nothing and sends nothing."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    app.send_outbox()
    before = counts(app)
    report = app.poll_once()
    app.send_outbox()
    assert report.fetched == 0 and counts(app) == before and len(smtp_sink.messages) == 1


def test_quarantined_mail_moved_back_is_processed_once_fixed(make_app, dovecot, smtp_sink, db_url, monkeypatch):
    """A mail quarantined by a processing failure, moved back to the inbox after the fix, becomes
    a case; an unreadable mail moved back goes straight back to quarantine."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": 4096})
    append_all(dovecot, [complaint(message_id="<bug@mail.example.be>"), complaint(body="x" * 10_000)])

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in routing")

    monkeypatch.setattr(app.intake.routing, "route", broken)
    assert app.poll_once().quarantined == 2
    monkeypatch.undo()

    client = dovecot.client()
    client.select_folder("Quarantine")
    client.move(client.search(), "INBOX")
    client.logout()
    report = app.poll_once()
    assert (report.processed, report.quarantined) == (1, 1)
    assert counts(app)["cases"] == 1
    assert folder_count(dovecot, "Quarantine") == 1 and folder_count(dovecot, "INBOX") == 0


def test_a_message_that_breaks_processing_is_quarantined_and_the_batch_goes_on(
        make_app, dovecot, smtp_sink, db_url, monkeypatch):
    """A bug on one message (here: matching raises) rolls the batch back once; it is then
    redone with a savepoint per message: the others are recorded exactly once, the broken
    one is quarantined with the reason, and every mail leaves the inbox."""
    app = _app(make_app, dovecot, smtp_sink, db_url)
    mails = [complaint(sender=f"burger{i}@example.be", subject=f"Klacht {i} over de bus",
                       body=f"Al {i + 2} weken rijdt de bus niet meer door mijn straat.")
             for i in range(5)]
    mails.insert(2, complaint(subject="BOOM", body="Deze mail laat de robot struikelen."))
    append_all(dovecot, mails)
    real = app.intake.matching.match_explained

    def breaking(session, mail, classification=None):
        if mail.subject == "BOOM":
            raise RuntimeError("matching broke")
        return real(session, mail, classification)

    monkeypatch.setattr(app.intake.matching, "match_explained", breaking)
    report = app.poll_once()
    assert (report.fetched, report.processed, report.quarantined) == (6, 5, 1)
    with app.sessions() as session:
        incoming = session.execute(select(Message).where(Message.direction == "in")).scalars().all()
        cases = session.execute(select(Case)).scalars().all()
    assert len(incoming) == 6 and len(cases) == 5
    [broken] = [m for m in incoming if m.quarantine_reason]
    assert broken.quarantine_reason == "processing failed: RuntimeError: matching broke"
    assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "Quarantine") == 1
    assert sorted(c.ref[-6:] for c in cases) == [f"{n:06d}" for n in range(1, 6)]  # no gap left by the redo


def test_assignments_in_one_batch_spread_as_if_made_one_by_one(make_app, dovecot, smtp_sink, db_url):
    """Investigator loads are read once per batch and counted up as the batch assigns cases:
    eight complaints polled together go to the same people as eight polled one at a time."""
    mails = [complaint(sender=f"burger{i}@example.be", name=f"Burger {i}", subject=f"Klacht {i}",
                       body=f"Mijn aanvraag {4000 + i} voor een parkeerkaart blijft al maanden zonder antwoord.")
             for i in range(8)]

    def assigned(app) -> list[str]:
        with app.sessions() as session:
            return list(session.execute(select(Case.investigator_email).order_by(Case.id)).scalars())

    together = _app(make_app, dovecot, smtp_sink, db_url)
    append_all(dovecot, mails)
    together.poll_once()
    in_one_batch = assigned(together)
    with together.sessions.begin() as session:  # start again from an empty office
        for table in ("outbox", "event", "receipt", "case_key", "message", "raw_mail", "case", "case_sequence"):
            session.execute(text(f'DELETE FROM "{table}"'))
    for mail in mails:
        append_all(dovecot, [mail])
        together.poll_once()
    assert len(set(in_one_batch)) > 1  # the work is spread at all
    assert in_one_batch == assigned(together)
