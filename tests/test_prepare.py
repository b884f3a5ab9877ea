"""Parsing ahead in a worker process: same results as in process, failures stay per message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import append_all, folder_count
from mailbot.db import Case, Message
from mailbot.errors import ParseError
from mailbot.prepare import MIN_BATCH, Options, Preparer, prepare

CORPUS = Path(__file__).resolve().parent / "data"  # our fixtures and the corpus mails kept with them
OPTIONS = Options(max_bytes=25 * 2**20, own_addresses=frozenset({"klachten@vlaamseombudsdienst.be"}),
                  default_language="nl")
UNREADABLE = b""  # nothing to parse: a ParseError


def _corpus(limit: int = 40) -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))[:limit]]


def _outcome(prepared) -> object:
    try:
        return prepared.result()
    except ParseError as err:
        return ("ParseError", str(err))


def test_worker_gives_what_parsing_in_process_gives() -> None:
    """Every corpus mail (and an unreadable one) comes back from the worker equal to an
    in-process parse, in order; the unreadable one raises its own ParseError."""
    raws = _corpus()
    raws.insert(5, UNREADABLE)
    assert len(raws) >= MIN_BATCH
    inline = [_outcome(p) for p in Preparer(workers=0).batch(raws, OPTIONS)]
    preparer = Preparer(workers=1)
    try:
        ahead = [_outcome(p) for p in preparer.batch(raws, OPTIONS)]
        assert preparer._pool is not None  # the batch really went to the worker
    finally:
        preparer.close()
    assert ahead == inline
    assert ahead[5][0] == "ParseError"
    with pytest.raises(ParseError):
        prepare(UNREADABLE, OPTIONS)


def test_small_batches_stay_in_process() -> None:
    preparer = Preparer(workers=1)
    results = [p.result() for p in preparer.batch(_corpus(MIN_BATCH - 1), OPTIONS)]
    assert len(results) == MIN_BATCH - 1 and preparer._pool is None


def test_a_dead_worker_is_replaced_by_parsing_in_process() -> None:
    """The worker killed mid-batch: the rest of the batch and later batches are still parsed."""
    raws = _corpus()
    preparer = Preparer(workers=1)
    try:
        batch = iter(preparer.batch(raws, OPTIONS))
        first = next(batch).result()
        for pid in list(preparer._pool._processes):  # the worker exists once a result came back
            os.kill(pid, signal.SIGKILL)
        rest = [p.result() for p in batch]
        later = [p.result() for p in preparer.batch(raws, OPTIONS)]
    finally:
        preparer.close()
    expected = [prepare(raw, OPTIONS) for raw in raws]
    assert [first, *rest] == expected and later == expected
    assert preparer.workers == 0  # given up on: no new worker per batch


def test_worker_ends_when_the_robot_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed robot leaves no parse worker behind."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path[:0] = [{str(Path(__file__).resolve().parents[1])!r}]
        from mailbot.prepare import Options, Preparer
        options = Options(1_000_000, frozenset(), "nl")
        preparer = Preparer(workers=1)
        [p.result() for p in preparer.batch([b"Subject: x\\r\\n\\r\\nklacht\\r\\n"] * 20, options)]
        print(*preparer._pool._processes, flush=True)
        time.sleep(60)
    """)
    robot = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(robot.stdout.readline())
    robot.kill()
    robot.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is (somehow) ours
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.dovecot
def test_poll_with_a_batch_parsed_ahead(make_app, dovecot, smtp_sink, db_url) -> None:
    """A poll whose batch goes to the worker: every complaint becomes a case, the unreadable
    mail is quarantined with the parser's reason, the inbox ends empty."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username,
                         "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": 20_000})
    mails = [complaint(sender=f"burger{i}@example.be", name=f"Burger {i}",
                       subject=f"Klacht {i} over mijn dossier {1000 + i}",
                       body=f"Geachte, mijn aanvraag {i} bij het agentschap blijft al maanden liggen.")
             for i in range(MIN_BATCH + 4)]
    mails.insert(3, complaint(body="veel te lang " * 2_000))  # over the limit: unreadable
    append_all(dovecot, mails)
    report = app.poll_once()
    assert app.intake.preparer._pool is not None
    assert (report.fetched, report.processed, report.quarantined) == (len(mails), len(mails) - 1, 1)
    with app.sessions() as session:
        assert len(session.execute(select(Case)).scalars().all()) == len(mails) - 1
        reasons = session.execute(select(Message.quarantine_reason)
                                  .where(Message.quarantine_reason.is_not(None))).scalars().all()
    assert len(reasons) == 1 and "exceeds the limit of 20000" in reasons[0]
    assert folder_count(dovecot, "INBOX") == 0
