"""Audit D, findings 6 and 5: a staff member's copy of the digest that the mail server refuses
is never dropped in silence (their address is not blocked for later digests, `digest --send`
says so and exits 1, a second `--send` sends it again, `mailbot status` shows it); and a
quarantined mail keeps the sender and subject its header gives, cleaned, so staff can act."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config, complaint
from mailbot.addresses import mark_undeliverable
from mailbot.cli import cli
from mailbot.db import AddressStatus, Event, Message, Outbox
from mailbot.import_sources import Item
from mailbot.importer import ImportClock, Importer
from mailbot.pipeline import process_files
from mailbot.poll_cycle import PollCycle
from mailbot.prepare import Prepared
from mailbot.record import QUARANTINE_SUBJECT_MAX, Source
from servers import free_port
from test_digest_seed import seed

STAFF = ["onthaal@vlaamseombudsdienst.be", "directie@vlaamseombudsdienst.be"]
REFUSED = "directie@vlaamseombudsdienst.be"


@dataclass
class RefusingSink:
    """An aiosmtpd server on loopback that refuses the recipients in `refused` at RCPT with
    550 5.1.1 (as a mail server does for a mailbox it does not know) and keeps the rest."""

    port: int
    refused: set[str] = field(default_factory=set)
    received: list[str] = field(default_factory=list)  # the recipient of every message accepted
    controller: object = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if address.lower() in sink.refused:
                    return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                sink.received.extend(envelope.rcpt_tos)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def sink() -> Iterator[RefusingSink]:
    server = RefusingSink(port=free_port(), refused={REFUSED})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path, make_app, sqlite_url, sink) -> Path:
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=sqlite_url, smtp_port=sink.port,
                                               digest={"recipients": STAFF})))
    return path


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, catch_exceptions=False)


def _session(config: Path):
    from mailbot.config import load_settings
    from mailbot.db_engine import make_engine
    from sqlalchemy.orm import Session

    return Session(make_engine(load_settings(config).database.url))


# -- finding 6: a refused digest copy -------------------------------------------------------

def test_a_refused_copy_is_reported_and_the_command_fails(config, sink, caplog):
    """`digest --send` with one staff address refused (550): the other copy is sent, the
    output names the failed recipient and the server's answer, the exit code is 1, the
    failure is logged at ERROR and recorded as a `digest_failed` event of that day."""
    with caplog.at_level(logging.WARNING, logger="mailbot"):
        result = _run(config, "digest", "--date", "2026-11-23", "--send")
    assert result.exit_code == 1, result.output
    assert "queued for 2 recipient(s); sent 1; 1 failed" in result.output
    assert f"not delivered to {REFUSED}: rejected by the SMTP server (550" in result.output
    assert sink.received == ["onthaal@vlaamseombudsdienst.be"]
    assert any(r.levelno >= logging.ERROR and REFUSED in r.getMessage() for r in caplog.records)
    with _session(config) as session:
        [event] = session.execute(select(Event).where(Event.type == "digest_failed")).scalars()
        digest_row = session.execute(select(Outbox.id).where(Outbox.recipient == REFUSED)).scalar_one()
        replies_failed = session.execute(select(Event).where(Event.type == "reply_failed")).scalars()
        assert digest_row not in {e.detail.get("outbox_id") for e in replies_failed}
    assert event.detail["day"] == "2026-11-23" and event.detail["recipient"] == REFUSED
    assert event.detail["address_rejected"] is True and "550" in event.detail["error"]


def test_a_refusal_does_not_block_the_staff_address_for_later_digests(config, sink):
    """A refused copy leaves no `undeliverable` mark on the staff address: once the server
    takes it again, the next day's digest goes to it over SMTP."""
    assert _run(config, "digest", "--date", "2026-11-23", "--send").exit_code == 1
    with _session(config) as session:
        assert session.execute(select(AddressStatus).where(AddressStatus.email == REFUSED)).first() is None
    sink.refused.clear()  # the mailbox exists again
    result = _run(config, "digest", "--date", "2026-11-24", "--send")
    assert result.exit_code == 0, result.output
    assert "queued for 2 recipient(s); sent 2" in result.output
    assert sorted(sink.received[1:]) == sorted(STAFF)


def test_a_staff_address_blocked_earlier_still_gets_the_digest(config, sink):
    """A staff address marked undeliverable before (by an older version, or a reply to it
    that bounced) does not keep the digest from it: SMTP is tried."""
    with _session(config) as session:
        mark_undeliverable(session, REFUSED, source="smtp", reason="550 5.1.1 once",
                           now=datetime(2026, 11, 20, tzinfo=timezone.utc))
        session.commit()
    sink.refused.clear()
    result = _run(config, "digest", "--date", "2026-11-23", "--send")
    assert result.exit_code == 0, result.output
    assert sorted(sink.received) == sorted(STAFF)


def test_a_second_send_tries_the_failed_copy_again(config, sink):
    """A failed copy is not "already sent": the next `--send` of that day sends it again,
    to that recipient only, under the same Message-ID; `mailbot status` shows the failure
    until then, and its recovery after."""
    seeded = _run(config, "status").output  # the seeded day has a failed reply already
    assert "outbox: 0 pending, 1 held, 1 failed" in seeded
    assert _run(config, "digest", "--date", "2026-11-23", "--send").exit_code == 1
    status = _run(config, "status").output
    assert "outbox: 0 pending, 1 held, 2 failed" in status
    failure = next(line for line in status.splitlines() if "digest_failed" in line)
    assert f"digest to {REFUSED}: rejected by the SMTP server (550" in failure and "recovered" not in failure
    with _session(config) as session:
        first = session.execute(select(Outbox.message_id).where(Outbox.recipient == REFUSED)).scalar_one()

    again = _run(config, "digest", "--date", "2026-11-23", "--send")  # still refused: fails again
    assert again.exit_code == 1 and "queued for 1 recipient(s); sent 0; 1 failed" in again.output
    sink.refused.clear()
    third = _run(config, "digest", "--date", "2026-11-23", "--send")
    assert third.exit_code == 0, third.output
    assert "queued for 1 recipient(s); sent 1" in third.output and "failed" not in third.output
    assert sink.received == ["onthaal@vlaamseombudsdienst.be", REFUSED]
    with _session(config) as session:
        rows = session.execute(select(Outbox.recipient, Outbox.status, Outbox.message_id)
                               .where(Outbox.template == "digest")).all()
    assert sorted((r.recipient, r.status) for r in rows) == sorted((s, "sent") for s in STAFF)
    assert next(r.message_id for r in rows if r.recipient == REFUSED) == first
    assert "already sent" in _run(config, "digest", "--date", "2026-11-23", "--send").output
    status = _run(config, "status").output
    assert "outbox: 0 pending, 1 held, 1 failed" in status
    assert all("recovered at" in line for line in status.splitlines() if "digest_failed" in line)


# -- finding 5: a quarantined mail's sender and subject -------------------------------------

HOSTILE_SUBJECT = "=?utf-8?q?Dringend=0D=0ABcc:_x@evil.example=07?= " + "woord " * 200
BIG = 1_100_000  # over the 1 MB limit of these tests


def _quarantined(app) -> list[Message]:
    with app.sessions() as session:
        return list(session.execute(select(Message).where(Message.quarantine_reason.is_not(None))
                                    .order_by(Message.id)).scalars())


def _clean(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isprintable()


def test_an_unreadable_mail_keeps_its_sender_and_subject_cleaned(make_app, db_url, smtp_sink):
    """A mail too large to read (quarantined while it is read) keeps the sender and the
    subject of its header: one line, no control characters, at most QUARANTINE_SUBJECT_MAX
    characters; a sender that is no address is not kept."""
    app = make_app(db_url=db_url, smtp={"port": smtp_sink.port}, limits={"max_message_bytes": 2**20})
    process_files(app.intake, [complaint(subject=HOSTILE_SUBJECT, body="x" * BIG),
                               complaint(sender="jan@@example..be", name="Kapot\x07", subject="Bijlage",
                                         body="y" * BIG)])
    mail, broken = _quarantined(app)
    assert (mail.from_email, mail.from_name) == ("jan.peeters@example.be", "Jan Peeters")
    assert mail.subject.startswith("Dringend Bcc: x@evil.example woord")
    assert _clean(mail.subject, QUARANTINE_SUBJECT_MAX) and "\r" not in mail.subject and "\n" not in mail.subject
    assert broken.from_email == "" and broken.subject == "Bijlage" and _clean(broken.from_name, 200)


def test_a_mail_whose_reading_was_cut_off_is_not_read_again(make_app, db_url):
    """A mail the parse watchdog set aside is quarantined without reading its header again."""
    app = make_app(db_url=db_url)
    raw = complaint(subject="Geheim")
    prepared = Prepared(raw, app.intake.prepare_options)
    prepared.set_aside("reading the message took longer than 5 s")
    with app.sessions.begin() as session:
        assert app.intake.process(session, raw, prepared=prepared).disposition == "quarantined"
    [mail] = _quarantined(app)
    assert (mail.from_email, mail.subject) == ("", "")


def _break_on(app, subject: str) -> None:
    real = app.intake.matching.match_explained

    def breaking(session, mail, classification=None):
        if mail.subject == subject:
            raise RuntimeError("matching broke")
        return real(session, mail, classification)

    app.intake.matching.match_explained = breaking


def test_a_mail_that_breaks_processing_keeps_its_sender_and_subject(make_app, db_url):
    """Quarantined by the poll after a processing failure: sender and subject are kept."""
    app = make_app(db_url=db_url)
    _break_on(app, "BOOM")
    with app.sessions.begin() as session:
        outcome = PollCycle(app.intake).process_isolated(session, complaint(subject="BOOM"), Source("INBOX", 1, 7))
    assert outcome.disposition == "quarantined"
    [mail] = _quarantined(app)
    assert (mail.from_email, mail.from_name, mail.subject) == ("jan.peeters@example.be", "Jan Peeters", "BOOM")
    assert mail.quarantine_reason == "processing failed: RuntimeError: matching broke"


def test_imported_quarantined_mail_keeps_its_sender_and_subject(make_app, db_url):
    """`mailbot import`: a mail over the size limit and one that breaks processing are
    quarantined with the sender and subject of their header."""
    app = make_app(db_url=db_url, limits={"max_message_bytes": 2**20})
    _break_on(app, "BOOM")
    big = complaint(sender="groot@example.be", name="Groot", subject="Scans", body="x" * BIG)
    boom = complaint(sender="boom@example.be", name="Boom", subject="BOOM")
    items = [Item(1, big, 1, len(big)), Item(2, boom, 2, len(boom)), Item(3, complaint(), 3, 100)]
    report = Importer(app, ImportClock(), batch_size=10).run("import:test", 1, iter(items))
    assert report.outcomes["quarantined"] == 2
    assert sorted((m.from_email, m.subject) for m in _quarantined(app)) == [
        ("boom@example.be", "BOOM"), ("groot@example.be", "Scans")]


def test_retention_blanks_the_sender_and_subject_of_old_quarantined_mail(make_app, db_url, smtp_sink):
    """After `retention.quarantine_days` the kept sender, name and subject are blanked."""
    t0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    clock = [t0]
    app = make_app(db_url=db_url, smtp={"port": smtp_sink.port}, limits={"max_message_bytes": 2**20},
                   retention={"quarantine_days": 90}, clock=lambda: clock[0])
    process_files(app.intake, [complaint(subject="Mijn scans", body="x" * BIG)])
    [mail] = _quarantined(app)
    assert (mail.from_email, mail.subject) == ("jan.peeters@example.be", "Mijn scans")
    clock[0] = t0 + timedelta(days=91)
    app.run_retention()
    [mail] = _quarantined(app)
    assert (mail.from_email, mail.from_name, mail.subject) == ("", "", "")
