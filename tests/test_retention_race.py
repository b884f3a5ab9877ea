"""Retention racing live mail: a worker that read a closed case before retention scrubbed it
may still thread a follow-up into it (the citizen's address, text and a receipt to them).
Retention locks the cases it scrubs, and each run sweeps what such a worker left on a
pseudonymised case once the run after it was stored has ended."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, select, text

from mailbot.db import Case, Event, Message, Outbox, RawMail
from test_retention import _seeded

ADDRESS = "marie.dubois@example.be"
RACE_SHA = "ab" * 32


def _last_run(app) -> datetime:
    with app.sessions() as session:
        created = session.execute(select(Event.created_at).where(Event.type == "retention_run")
                                  .order_by(Event.id.desc()).limit(1)).scalar_one()
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def _case(session, ref: str) -> Case:
    return session.execute(select(Case).where(Case.ref == ref)).scalar_one()


def _thread_follow_up(app, ref: str, at: datetime, tag: str) -> None:
    """What a worker that matched `ref` before its scrub stores: the follow-up, its raw mail,
    the closed-case receipt to the address it read, and an event quoting the sender."""
    sha = f"{RACE_SHA[:-len(tag)]}{tag}"
    with app.sessions.begin() as session:
        case = _case(session, ref)
        session.add(RawMail(sha256=sha, data=b"From: Marie Dubois <marie.dubois@example.be>\r\n\r\nnieuws"))
        message = Message(case_id=case.id, direction="in", kind="follow_up", message_id=f"<{tag}@example.be>",
                          from_email=ADDRESS, from_name="Marie Dubois", subject=f"Re: [{ref}] nog een vraag",
                          body_text="Mijn nummer is 0470 12 34 56.", to_addrs=["klachten@ombudsman.example"],
                          sha256=sha, size=60, received_at=at)
        session.add(message)
        session.flush()
        session.add(Outbox(case_id=case.id, template="closed_case_received", recipient=ADDRESS,
                           message_id=f"<receipt-{tag}@ombudsman.example>", mime=b"To: marie.dubois@example.be\r\n",
                           status="sent", created_at=at, sent_at=at))
        session.add(Event(case_id=case.id, message_pk=message.id, type="message_received",
                          detail={"kind": "follow_up", "sender": ADDRESS}, created_at=at))
        session.add(Event(case_id=case.id, type="reply_queued", detail={"template": "closed_case_received",
                                                                        "recipient": ADDRESS}, created_at=at))


def _personal_left(app, ref: str) -> dict[str, int]:
    with app.sessions() as session:
        case = _case(session, ref)
        assert case.citizen_email.endswith("@pseudonymised.invalid")
        messages = [m for m in session.execute(select(Message).where(Message.case_id == case.id)).scalars()
                    if m.from_email or m.body_text or m.subject or m.to_addrs or not m.message_id.startswith("h:")]
        replies = [o for o in session.execute(select(Outbox).where(Outbox.case_id == case.id)).scalars()
                   if o.recipient != case.citizen_email or o.mime]
        events = [e for e in session.execute(select(Event).where(Event.case_id == case.id)).scalars()
                  if ADDRESS in str(e.detail)]
        raw = [r for r in session.execute(select(RawMail.sha256).where(RawMail.sha256.like("abab%"))).scalars()]
        return {"messages": len(messages), "outbox": len(replies), "events": len(events), "raw": len(raw)}


NOTHING = {"messages": 0, "outbox": 0, "events": 0, "raw": 0}


def test_what_a_racing_worker_left_is_swept_at_the_next_run(make_app, db_url):
    """A follow-up stored on a case while retention scrubbed it (received before the run ended,
    committed after) is pseudonymised by the next run, with its receipt, events and raw mail."""
    app = _seeded(make_app, db_url)
    first = app.run_retention()
    assert "VO-2026-000002" in first.closed_cases.refs
    _thread_follow_up(app, "VO-2026-000002", _last_run(app) - timedelta(seconds=1), "01")
    assert _personal_left(app, "VO-2026-000002") == {"messages": 1, "outbox": 1, "events": 2, "raw": 1}
    dry = app.run_retention(dry_run=True)
    assert (dry.closed_cases.messages, dry.closed_cases.outbox) == (1, 1)
    assert _personal_left(app, "VO-2026-000002")["messages"] == 1  # the dry run changed nothing
    second = app.run_retention()
    assert second.closed_cases.cases == 0 and second.closed_cases.refs == []
    assert (second.closed_cases.messages, second.closed_cases.outbox, second.closed_cases.raw_mails) == (1, 1, 1)
    assert _personal_left(app, "VO-2026-000002") == NOTHING
    with app.sessions() as session:
        case = _case(session, "VO-2026-000002")
        receipt = session.execute(select(Outbox).where(Outbox.template == "closed_case_received")).scalar_one()
        assert receipt.recipient == case.citizen_email and receipt.status == "sent"
    third = app.run_retention()
    assert (third.closed_cases.messages, third.closed_cases.outbox, third.closed_cases.events) == (0, 0, 0)


def test_mail_threaded_after_the_scrub_waits_one_run(make_app, db_url):
    """Mail that comes in on a pseudonymised case after the run is kept for the digest until the
    run after next: the sweep takes what was stored before the previous run ended."""
    app = _seeded(make_app, db_url)
    app.run_retention()
    _thread_follow_up(app, "VO-2026-000002", _last_run(app) + timedelta(milliseconds=1), "02")
    time.sleep(0.05)  # the second run ends after the follow-up was stored
    app.run_retention()
    assert _personal_left(app, "VO-2026-000002") == {"messages": 1, "outbox": 1, "events": 2, "raw": 1}
    app.run_retention()
    assert _personal_left(app, "VO-2026-000002") == NOTHING


def test_sweep_reads_only_rows_added_since_the_run_before_the_previous_one(make_app, sqlite_url):
    """Bounded: every run records the highest ids as it starts; a later sweep reads rows above
    the watermark of the run before its previous one (a row a worker added during a run has a
    higher id than that run's start)."""
    app = _seeded(make_app, sqlite_url)
    app.run_retention()
    app.run_retention()
    with app.sessions.begin() as session:
        runs = list(session.execute(select(Event).where(Event.type == "retention_run").order_by(Event.id)).scalars())
        top = session.execute(select(Message.id).order_by(Message.id.desc()).limit(1)).scalar_one()
        assert runs[0].detail["watermark"]["message"] == top
        # An old row below the first run's watermark, left with personal data (as an old
        # leak would be), is not read again: the sweep does not rescan a decade of mail.
        old = session.execute(select(Message).where(Message.id == top)).scalar_one()
        old.case_id = _case(session, "VO-2026-000002").id
        old.body_text = "left behind"
    app.run_retention()
    with app.sessions() as session:
        assert session.execute(select(Message.body_text).where(Message.id == top)).scalar_one() == "left behind"


def test_postgres_a_case_being_written_is_left_for_the_next_run(make_app, pg_url):
    """PostgreSQL: a worker's open transaction has threaded a follow-up into a closed case
    (its insert holds the case row). Retention does not scrub that case around the uncommitted
    row, nor wait for it: it leaves the case whole for the next run, which scrubs it with the
    follow-up; the other cases are scrubbed at once."""
    app = _seeded(make_app, pg_url)
    with app.sessions() as session:
        case_id = _case(session, "VO-2026-000002").id
    worker = create_engine(pg_url).connect()
    try:
        tx = worker.begin()
        _uncommitted_follow_up(worker, case_id)
        done: list = []
        runner = threading.Thread(target=lambda: done.append(app.run_retention()))
        runner.start()
        runner.join(30)
        assert done, "retention waited for the worker's transaction"
        assert done[0].closed_cases.refs == ["VO-2026-000003"]
        with app.sessions() as session:
            assert _case(session, "VO-2026-000002").citizen_email == ADDRESS
        tx.commit()
    finally:
        worker.close()
    second = app.run_retention()
    assert second.closed_cases.refs == ["VO-2026-000002"]
    with app.sessions() as session:
        bodies = session.execute(select(Message.body_text, Message.from_email).where(
            Message.case_id == case_id)).all()
        assert bodies and all(row == ("", "") for row in bodies)


def test_postgres_erase_waits_for_a_worker_writing_to_the_case(make_app, pg_url):
    """PostgreSQL: an erasure racing a poll. A worker's open transaction has threaded mail from
    the citizen into their case; the erasure waits for it (the case rows are locked) and then
    scrubs that mail too, instead of leaving it behind on the erased case."""
    from mailbot.privacy import erase

    app = _seeded(make_app, pg_url)
    with app.sessions() as session:
        case_id = _case(session, "VO-2026-000002").id
    worker = create_engine(pg_url).connect()
    try:
        tx = worker.begin()
        _uncommitted_follow_up(worker, case_id)
        done: list = []
        runner = threading.Thread(target=lambda: done.append(erase(app.sessions, ADDRESS)))
        runner.start()
        runner.join(1.0)
        assert not done, "the erasure did not wait for the worker's transaction"
        tx.commit()
        runner.join(30)
        assert done
    finally:
        worker.close()
    with app.sessions() as session:
        rows = session.execute(select(Message.body_text, Message.from_email).where(Message.case_id == case_id)).all()
        assert rows and all(row == ("", "") for row in rows)


def _uncommitted_follow_up(worker, case_id: int) -> None:
    """What a worker threading the citizen's follow-up into the case inserts (uncommitted)."""
    worker.execute(text(
        "INSERT INTO message (case_id, direction, kind, message_id, in_reply_to, \"references\", from_email, "
        "from_name, to_addrs, cc_addrs, subject, body_text, sha256, size, received_at, details) VALUES "
        "(:case, 'in', 'follow_up', '<race@example.be>', '', '[]', :address, 'Marie Dubois', '[]', '[]', "
        "'Re: nog een vraag', 'Mijn nummer is 0470 12 34 56.', :sha, 60, now(), '{}')"),
        {"case": case_id, "address": ADDRESS, "sha": RACE_SHA})
