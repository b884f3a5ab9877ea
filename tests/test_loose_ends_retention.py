"""Quarantined mail past `retention.quarantine_days` keeps nothing personal: no raw bytes,
Message-ID, sender, recipients, subject, details, no reason quoting the mail and no event
detail about it. What the statistics need stays: the row, its kind, dates, size and the
reason's category. The dry run reports exactly what the real run does."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from conftest import complaint
from mailbot.db import Event, Message, RawMail
from mailbot.pipeline import process_files
from mailbot.record import quarantine
from mailbot.retention import reason_category
from personal_scan import dump, scan

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(days=91)  # quarantine_days 90
BIG = 1_100_000
# What only the quarantined mails hold. (The case keeps the citizen's address, and the notice
# on the case the oversize mail's Message-ID in its In-Reply-To: case data, with the case's period.)
SECRETS = ("geheim@example.be", "legacy@mail.example.be", "oud.adres@example.be")


def _bed(make_app, db_url):
    """Quarantined on T0: an oversize mail on the citizen's case (its notice names the case),
    a processing failure whose reason quotes an address, a mail an earlier retention already
    half-blanked (raw gone, Message-ID, reason and details left), and a failed mail whose
    bytes a case message (processed after the fix) still uses; one quarantined mail younger
    than the period."""
    clock = [T0]
    app = make_app(db_url=db_url, limits={"max_message_bytes": 2**20},
                   retention={"quarantine_days": 90, "caseless_days": 3650, "closed_case_days": 3650},
                   clock=lambda: clock[0])
    process_files(app.intake, [complaint()])
    process_files(app.intake, [complaint(subject="Re: Uw klacht [VO-2026-000001] Onleesbare bijlage",
                                         body="x" * BIG, message_id="<groot@mail.example.be>")])
    failing = complaint(subject="Klacht over mijn studietoelage", body="Nogmaals mijn klacht, met bijlage.")
    with app.sessions.begin() as session:
        quarantine(session, b"From: x\r\n\r\nkapot", hashlib.sha256(b"kapot").hexdigest(), None,
                   "processing failed: ValueError: 'geheim@example.be' is not a valid recipient", now=T0)
        quarantine(session, failing, hashlib.sha256(failing).hexdigest(), None,
                   "processing failed: OperationalError: database is locked", now=T0)
        legacy = Message(direction="in", kind="unreadable", message_id="legacy@mail.example.be",
                         sha256="0" * 64, received_at=T0 - timedelta(days=400), to_addrs=["oud.adres@example.be"],
                         quarantine_reason="unreadable message: UnicodeError: 'oud.adres@example.be'",
                         details={"from_header": "oud.adres@example.be"})
        session.add(legacy)
        session.flush()
        session.add(Event(type="quarantined", message_pk=legacy.id, created_at=legacy.received_at,
                          detail={"reason": legacy.quarantine_reason}))
    process_files(app.intake, [failing])  # moved back to the inbox after the fix: now read
    clock[0] = LATER - timedelta(days=2)
    process_files(app.intake, [b"\r\n"])
    clock[0] = LATER
    return app


def _quarantined(app) -> list[Message]:
    with app.sessions() as session:
        return list(session.execute(select(Message).where(Message.quarantine_reason.is_not(None))
                                    .order_by(Message.id)).scalars())


def test_old_quarantined_mail_keeps_nothing_personal(make_app, db_url):
    app = _bed(make_app, db_url)
    assert len(scan(app.sessions, *SECRETS)) >= 5
    assert _quarantined(app)[0].message_id == "" and _quarantined(app)[0].case_id is not None
    state = dump(app.sessions)
    dry = app.run_retention(dry_run=True)
    assert dump(app.sessions) == state
    real = app.run_retention()
    assert {**real.as_dict(), "dry_run": True} == dry.as_dict()
    assert scan(app.sessions, *SECRETS) == []
    assert (real.quarantined_messages, real.quarantined) == (4, 2)  # the legacy raw was gone; one is in use
    *old, young = _quarantined(app)
    assert [m.quarantine_reason for m in old] == [
        "too large", "processing failed", "processing failed", "unreadable message"]
    for m in old:
        assert (m.message_id, m.from_email, m.subject, m.to_addrs, m.in_reply_to, m.details) == ("", "", "", [], "", {})
        assert m.received_at is not None and m.kind == "unreadable" and m.size >= 0
    assert old[0].case_id is not None  # still counted on its case
    assert young.quarantine_reason == "empty message"
    with app.sessions() as session:
        assert session.get(RawMail, young.sha256) is not None
        assert session.get(RawMail, old[2].sha256) is not None  # the case message's bytes
        details = [e.detail for e in session.execute(select(Event).where(
            Event.message_pk.in_([m.id for m in old]))).scalars()]
    assert details and all("reason" not in d for d in details)

    again = app.run_retention()
    assert (again.quarantined_messages, again.quarantined) == (0, 0)


def test_a_reason_keeps_its_category_only():
    """The category of every reason the robot writes, and none of what follows it."""
    assert reason_category("message of 31457280 bytes exceeds the limit of 26214400") == "too large"
    assert reason_category("empty message") == "empty message"
    assert reason_category("message nested too deeply to read") == "nested too deeply"
    assert reason_category("unreadable message: UnicodeError: 'jan@example.be'") == "unreadable message"
    assert reason_category("reading the message took longer than 60 s") == "reading took too long"
    assert reason_category("reading the message made the parser crash") == "parser crashed"
    assert reason_category("processing failed: ValueError: jan@example.be") == "processing failed"
    assert reason_category("jan@example.be") == "other"
    assert reason_category(reason_category("processing failed: X")) == "processing failed"


def test_a_message_id_that_cannot_be_emptied_is_hashed_not_kept(make_app, sqlite_url):
    """Two old quarantined copies of the same bytes, one recorded with its Message-ID: blanking
    it would break the unique (direction, Message-ID, content hash) identity, so it is hashed,
    and the run goes on."""
    app = make_app(db_url=sqlite_url, retention={"quarantine_days": 90})
    with app.sessions.begin() as session:
        for message_id in ("", "dubbel@mail.example.be"):
            session.add(Message(direction="in", kind="unreadable", message_id=message_id, sha256="1" * 64,
                                received_at=T0, quarantine_reason="empty message"))
    app.clock = lambda: LATER
    assert app.run_retention().quarantined_messages == 1
    with app.sessions() as session:
        ids = sorted(session.execute(select(Message.message_id)).scalars())
    assert ids[0] == "" and ids[1].startswith("h:") and scan(app.sessions, "dubbel@mail.example.be") == []
