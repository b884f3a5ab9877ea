"""SIGKILL at random points of real `mailbot poll --once` processes, then a clean run:
every mail is recorded exactly once, each citizen acknowledged once, the inbox empty.

A kill lands in the work, never in the start-up: while mail is taken in (or later), or
just after the SMTP server took a reply and before the poller recorded it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, update

from conftest import base_config, complaint
from helpers import append_all, folder_count, imap_config
from mailbot.app import create_app
from mailbot.config import load_settings
from mailbot.db import Case, MailboxState, Message, Outbox
from mailbot.db_engine import make_engine

pytestmark = pytest.mark.dovecot

N = 150
# More kills on demand (MAILBOT_KILL_ROUNDS=40, or MAILBOT_SLOW_TESTS=1 for 30): each adds ~2 s.
ROUNDS = int(os.environ.get("MAILBOT_KILL_ROUNDS") or (30 if os.environ.get("MAILBOT_SLOW_TESTS") else 6))


def _poll(config: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailbot.cli", "--config", str(config), "poll", "--once"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _wait_until_polling(db_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Until the poller holds the mailbox lease: its start-up (over a second, longer on a
    loaded machine) is over, so the kill that follows lands in its work, not in its imports."""
    engine = make_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            live = (select(func.count()).select_from(MailboxState)
                    .where(MailboxState.lease_until > datetime.now(timezone.utc)))
            with engine.connect() as conn:
                if conn.execute(live).scalar_one():
                    return
            assert time.monotonic() < deadline, "the poller never took the mailbox"
            time.sleep(0.02)
    finally:
        engine.dispose()


def _wait_until_sent(smtp_sink, process: subprocess.Popen, before: int, timeout: float = 60) -> None:
    """Until the server has taken a reply from the poller (more than `before` in all)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and len(smtp_sink.messages) <= before:
        assert time.monotonic() < deadline, "the poller never sent a reply"
        time.sleep(0.005)


def _lease_runs_out(db_url: str) -> None:
    """The killed poller's mailbox lease has run out: as if its 2 s had passed (test_lease
    proves the take-over after kill -9 in real time)."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(MailboxState).where(MailboxState.lease_owner.is_not(None))
                     .values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    engine.dispose()


def test_random_sigkill_never_loses_or_doubles(tmp_path, dovecot, smtp_sink, db_url):
    """ROUNDS (default six) processes killed at random moments, then one that finishes: nothing lost, nothing twice."""
    config = tmp_path / "config.yaml"
    # Short leases (production: 60 s and 5 min); the test lets them run out at once.
    config.write_text(yaml.safe_dump(base_config(
        imap=imap_config(dovecot) | {"batch_size": 20}, db_url=db_url,
        smtp={"port": smtp_sink.port, "claim_lease_seconds": 10}, schedule={"lease_seconds": 2})))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-m", "mailbot.cli", "--config", str(config), "db", "upgrade"],
                   check=True, env=env, capture_output=True)
    mails = [complaint(sender=f"k{i}@example.be", subject=f"Klacht {i}", message_id=f"<kill{i}@mail.example.be>")
             for i in range(N)]
    # Fresh mail for every poller, so that each has mail to take in and replies to send.
    share = [N * r // (ROUNDS + 1) for r in range(ROUNDS + 2)]
    rng = random.Random(20261128)
    for r in range(ROUNDS):
        append_all(dovecot, mails[share[r]:share[r + 1]])
        process = _poll(config, env)
        _wait_until_polling(db_url, process)
        # The last kill is among the replies, so some are still claimed when the final poll runs.
        if r < ROUNDS - 1 and rng.random() < 0.5:  # while it takes mail in, sends, or exits
            delay = rng.uniform(0.0, 1.5)
        else:  # between handing replies to the SMTP server and recording them
            _wait_until_sent(smtp_sink, process, len(smtp_sink.messages))
            delay = rng.uniform(0.0, 0.02)
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        _lease_runs_out(db_url)
    append_all(dovecot, mails[share[ROUNDS]:])
    command = [sys.executable, "-m", "mailbot.cli", "--config", str(config), "poll", "--once"]
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    # Replies claimed by a killed sender are due again once their 10 s claim has run out.
    app = create_app(load_settings(config))
    try:
        app.send_outbox(now=datetime.now(timezone.utc) + timedelta(seconds=11))
    finally:
        app.close()

    engine = make_engine(db_url)
    with engine.connect() as conn:
        incoming = conn.execute(select(func.count()).select_from(Message).where(Message.direction == "in")).scalar_one()
        distinct_ids = conn.execute(select(func.count(func.distinct(Message.message_id)))
                                    .where(Message.direction == "in")).scalar_one()
        cases = conn.execute(select(func.count()).select_from(Case)).scalar_one()
        outbox = conn.execute(select(Outbox.recipient, Outbox.status)).all()
    engine.dispose()
    assert (incoming, distinct_ids, cases) == (N, N, N), final.stdout + final.stderr[-3000:]
    assert len(outbox) == N and {status for _, status in outbox} == {"sent"}
    assert len({recipient for recipient, _ in outbox}) == N
    # Delivered at least once each; a kill between SMTP send and the mark may repeat one
    # reply with the same Message-ID (documented: at most once per kill), never a second
    # acknowledgment.
    delivered = smtp_sink.parsed()
    copies = Counter(e.rcpt_tos[0] for e in smtp_sink.messages)
    assert set(copies) == {f"k{i}@example.be" for i in range(N)} and max(copies.values()) <= 1 + ROUNDS
    assert len({m["Message-ID"] for m in delivered}) == N
    assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "Processed") == N
