"""SIGKILL at random points of real `mailbot poll --once` processes, then a clean run:
every mail is recorded exactly once, each citizen acknowledged once, the inbox empty."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from conftest import base_config, complaint
from helpers import append_all, folder_count, imap_config
from mailbot.db import Case, Message, Outbox, make_engine

pytestmark = pytest.mark.dovecot

N = 150
# More kills on demand (MAILBOT_KILL_ROUNDS=40, or MAILBOT_SLOW_TESTS=1 for 30): each adds ~3 s.
ROUNDS = int(os.environ.get("MAILBOT_KILL_ROUNDS") or (30 if os.environ.get("MAILBOT_SLOW_TESTS") else 6))


def _poll(config: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailbot.cli", "--config", str(config), "poll", "--once"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def test_random_sigkill_never_loses_or_doubles(tmp_path, dovecot, smtp_sink, db_url):
    """ROUNDS (default six) processes killed at random moments, then one that finishes: nothing lost, nothing twice."""
    config = tmp_path / "config.yaml"
    # Short leases, so the next process may take over the mailbox and the claimed replies
    # of a killed one soon after the kill (production: 60 s and 5 min).
    config.write_text(yaml.safe_dump(base_config(
        imap=imap_config(dovecot) | {"batch_size": 20}, db_url=db_url,
        smtp={"port": smtp_sink.port, "claim_lease_seconds": 10}, schedule={"lease_seconds": 2})))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-m", "mailbot.cli", "--config", str(config), "db", "upgrade"],
                   check=True, env=env, capture_output=True)
    append_all(dovecot, [complaint(sender=f"k{i}@example.be", subject=f"Klacht {i}",
                                   message_id=f"<kill{i}@mail.example.be>") for i in range(N)])
    rng = random.Random(20261128)
    for _ in range(ROUNDS):
        process = _poll(config, env)
        time.sleep(rng.uniform(0.4, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(2.2)  # the dead poller's mailbox lease runs out
    command = [sys.executable, "-m", "mailbot.cli", "--config", str(config), "poll", "--once"]
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    time.sleep(10.5)  # replies claimed by a killed sender become due again
    resend = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resend.returncode == 0, resend.stderr[-3000:]

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
    # reply with the same Message-ID (documented), never a second acknowledgment.
    delivered = smtp_sink.parsed()
    assert {e.rcpt_tos[0] for e in smtp_sink.messages} == {f"k{i}@example.be" for i in range(N)}
    assert len({m["Message-ID"] for m in delivered}) == N
    assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "Processed") == N
