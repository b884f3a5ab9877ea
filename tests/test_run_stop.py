"""`mailbot run` stopping (SIGTERM, as `docker stop` and systemd send it) while it is busy:
the stop waits for the work in flight only, never for a whole batch, and loses or doubles
nothing. Real subprocesses, Dovecot and slow aiosmtpd servers."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import complaint
from helpers import append_all, folder_count, imap_config
from mailbot.db import Message, Outbox
from mailbot.db_engine import make_engine, make_sessionmaker
from stuck_parser import STUCK
from test_outbox import queue_rows
from test_scheduler_procs import RunProcess, run_until, wait_until, write_config

pytestmark = pytest.mark.dovecot
TESTS = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_sigterm_waits_for_the_reply_in_flight_not_the_outbox_batch(tmp_path, dovecot, sqlite_url, slow_smtp):
    """Ten replies due, the SMTP server taking about 1.2 s for each: SIGTERM after the first
    is accepted ends the process within a few seconds (not after the whole batch, which a
    `docker stop` would cut with SIGKILL); every reply the server accepted is marked sent,
    the others are released, with no attempt spent. APScheduler's per-job lines stay out of
    the log."""
    port, server = slow_smtp
    config = write_config(tmp_path, imap=imap_config(dovecot), db_url=sqlite_url,
                          smtp={"port": port, "timeout_seconds": 5, "concurrency": 1})
    engine = make_engine(sqlite_url)
    queue_rows(make_sessionmaker(engine), 10)
    run = RunProcess(config, tmp_path / "run.log")
    try:
        wait_until(lambda: len(server.received) >= 1, 30, "the first reply to be accepted")
        started = time.monotonic()
        assert run.terminate() == 0, run.text()[-3000:]
        assert time.monotonic() - started < 5, run.text()[-3000:]
    finally:
        run.stop_quietly()
    time.sleep(0.5)
    with engine.connect() as conn:
        rows = conn.execute(select(Outbox.status, Outbox.attempts, Outbox.next_attempt_at)).all()
    engine.dispose()
    sent = [r for r in rows if r.status == "sent"]
    pending = [r for r in rows if r.status == "pending"]
    assert 1 <= len(sent) <= 3 and len(sent) == len(server.received)
    assert len(pending) == 10 - len(sent) and all(r.attempts == 0 for r in pending)
    assert all(r.next_attempt_at.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc) for r in pending)
    assert "mailbot stopped" in run.text() and "Running job" not in run.text()


def test_sigterm_does_not_wait_for_a_parse_worker_stuck_in_a_mail(tmp_path, dovecot, sqlite_url, smtp_sink):
    """SIGTERM while the parse worker hangs in a mail (parse timeout 60 s): the process exits
    within seconds, the batch is abandoned (nothing recorded, nothing moved: the inbox is
    as it was) and the worker is killed; the next run reads the whole batch again."""
    mails = [complaint(sender=f"burger{i}@example.be", subject=f"Klacht {i} over mijn dossier",
                       message_id=f"<stuck{i}@mail.example.be>") for i in range(4)]
    mails[1] = STUCK + b"\r\n" + mails[1]
    append_all(dovecot, mails)
    config = write_config(tmp_path, imap=imap_config(dovecot), db_url=sqlite_url,
                          smtp={"port": smtp_sink.port}, limits={"parse_timeout_seconds": 60})
    note = tmp_path / "stuck.pid"
    run = RunProcess(config, tmp_path / "run.log", command=[sys.executable, str(TESTS / "stuck_parser.py")],
                     env={"STUCK_PARSER_NOTE": str(note)})
    try:
        wait_until(note.exists, 60, "the parse worker to get stuck")
        time.sleep(0.3)
        started = time.monotonic()
        assert run.terminate(timeout=30) == 0, run.text()[-3000:]
        assert time.monotonic() - started < 6, run.text()[-3000:]
    finally:
        run.stop_quietly()
    worker = int(note.read_text())
    wait_until(lambda: not _alive(worker), 5, "the stuck worker to be gone")
    assert "rolled back, left in the inbox" in run.text() and "quarantined" not in run.text()
    assert folder_count(dovecot, "INBOX") == 4 and folder_count(dovecot, "Processed") == 0
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 0

    run_until(config, tmp_path / "again.log", lambda: folder_count(dovecot, "Processed") == 4,  # the plain parser
              "the batch to be read again")
    with engine.connect() as conn:
        ids = conn.execute(select(Message.message_id).where(Message.direction == "in")).scalars().all()
    engine.dispose()
    assert sorted(ids) == [f"stuck{i}@mail.example.be" for i in range(4)]
