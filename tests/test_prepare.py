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

from conftest import base_config, complaint
from faulty_parsers import CRASH, HANG, hang_or_crash, no_worker_runs, slow_first
from helpers import append_all, counts, folder_count
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


def test_the_watchdog_is_on_unless_switched_off() -> None:
    from mailbot.app import create_app
    from mailbot.config import settings_from_mapping

    defaults = base_config()
    del defaults["limits"]
    for config, timeout in ((defaults, 60), (base_config(limits={"parse_timeout_seconds": 0}), None)):
        app = create_app(settings_from_mapping(config))
        assert app.intake.preparer.timeout == timeout
        app.close()


def test_small_batches_stay_in_process_without_a_watchdog() -> None:
    preparer = Preparer(workers=1)
    results = [p.result() for p in preparer.batch(_corpus(MIN_BATCH - 1), OPTIONS)]
    assert len(results) == MIN_BATCH - 1 and preparer._pool is None


def test_with_a_watchdog_even_one_mail_goes_to_the_worker() -> None:
    preparer = Preparer(timeout=30)
    try:
        [result] = [p.result() for p in preparer.batch(_corpus(1), OPTIONS)]
        assert preparer._pool is not None
    finally:
        preparer.close()
    assert result == prepare(_corpus(1)[0], OPTIONS)


def test_a_dead_worker_is_replaced() -> None:
    """The worker killed mid-batch: the rest of the batch and later batches are still
    parsed, by a new worker."""
    raws = _corpus()
    preparer = Preparer(workers=1)
    try:
        batch = iter(preparer.batch(raws, OPTIONS))
        first = next(batch).result()
        [killed] = list(preparer._pool._processes)  # the worker exists once a result came back
        os.kill(killed, signal.SIGKILL)
        rest = [p.result() for p in batch]
        later = [p.result() for p in preparer.batch(raws, OPTIONS)]
        assert preparer.workers == 1 and killed not in preparer._pool._processes
    finally:
        preparer.close()
    expected = [prepare(raw, OPTIONS) for raw in raws]
    assert [first, *rest] == expected and later == expected


def _marked(raw: bytes, marker: bytes) -> bytes:
    return marker + b"\r\n" + raw


def test_a_hanging_mail_is_cut_off_and_the_rest_goes_on() -> None:
    """The watchdog: the hanging mail is a ParseError after the timeout, its worker is
    killed, and every other mail of the batch (and the next batch) comes back as usual."""
    raws = _corpus(20)
    raws[4] = _marked(raws[4], HANG)
    preparer = Preparer(timeout=1.5, work=hang_or_crash)
    try:
        ahead = preparer.batch(raws, OPTIONS)
        before = [p.result() for p in ahead[:4]]
        [hung] = list(preparer._pool._processes)
        started = time.monotonic()
        with pytest.raises(ParseError, match="took longer than 1.5 s"):
            ahead[4].result()
        assert time.monotonic() - started < 15
        after = [p.result() for p in ahead[5:]]
        again = [p.result() for p in preparer.batch(raws[:3], OPTIONS)]
        assert not _alive(hung)
    finally:
        preparer.close()
    expected = [prepare(raw, OPTIONS) for raw in raws]
    assert before == expected[:4] and after == expected[5:] and again == expected[:3]


def test_a_new_workers_start_up_does_not_count_against_the_first_mail() -> None:
    raws = _corpus(3)
    preparer = Preparer(timeout=1, work=slow_first)
    try:
        results = [p.result() for p in preparer.batch(raws, OPTIONS)]
    finally:
        preparer.close()
    assert results == [prepare(raw, OPTIONS) for raw in raws]


def test_a_mail_that_kills_the_worker_twice_is_a_parse_error() -> None:
    raws = _corpus(6)
    raws[2] = _marked(raws[2], CRASH)
    preparer = Preparer(timeout=30, work=hang_or_crash)
    try:
        outcomes = [_outcome(p) for p in preparer.batch(raws, OPTIONS)]
        assert preparer.workers == 1  # the worker is fine: only that mail is set aside
    finally:
        preparer.close()
    assert outcomes[2] == ("ParseError", "reading the message made the parser crash")
    assert [o for i, o in enumerate(outcomes) if i != 2] == [
        prepare(raw, OPTIONS) for i, raw in enumerate(raws) if i != 2]


def test_workers_that_cannot_run_at_all_are_given_up_on() -> None:
    """When a fresh worker dies on a canary mail too, the fault is the worker's, not the
    mail's: the mail is parsed in process, and so is everything after it."""
    raws = _corpus(4)
    preparer = Preparer(timeout=30, work=no_worker_runs)
    try:
        results = [p.result() for p in preparer.batch(raws, OPTIONS)]
        assert preparer.workers == 0 and preparer._pool is None
    finally:
        preparer.close()
    assert results == [prepare(raw, OPTIONS) for raw in raws]


def test_worker_ends_when_the_robot_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed robot leaves no parse worker behind."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path[:0] = [{str(Path(__file__).resolve().parents[1])!r}]
        from mailbot.prepare import Options, Preparer
        options = Options(1_000_000, frozenset(), "nl")
        preparer = Preparer(workers=1)
        mail = b"From: burger@example.be\\r\\nSubject: x\\r\\n\\r\\nklacht\\r\\n"
        [p.result() for p in preparer.batch([mail] * 20, options)]
        print(*preparer._pool._processes, flush=True)
        time.sleep(60)
    """)
    assert _worker_left_after_robot_killed(script, within=20)


def test_a_stuck_worker_of_a_killed_robot_ends_by_itself(tmp_path: Path) -> None:
    """The robot SIGKILLed while its worker is stuck in C code that holds the GIL (so the
    worker's own watch thread cannot run): the worker's backstop alarm still ends it."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(Path(__file__).resolve().parents[1])!r}, {str(Path(__file__).resolve().parent)!r}]
        from mailbot.prepare import Options, Preparer
        from faulty_parsers import HOG, hog_the_interpreter
        preparer = Preparer(timeout=60, work=hog_the_interpreter)
        preparer.backstop = 3
        mail = b"From: burger@example.be\\r\\nSubject: x\\r\\n\\r\\nklacht\\r\\n"
        ahead = preparer.batch([mail, HOG + b"\\r\\n" + mail], Options(1_000_000, frozenset(), "nl"))
        ahead[0].result()
        print(*preparer._pool._processes, flush=True)
        time.sleep(60)
    """)
    assert _worker_left_after_robot_killed(script, within=30, settle=0.5)  # settle: into the backtracking


def _worker_left_after_robot_killed(script: str, *, within: float, settle: float = 0.0) -> bool:
    """Run `script` as the robot (it prints its worker's pid), SIGKILL it, and tell whether
    the worker is gone `within` seconds."""
    robot = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(robot.stdout.readline())
    time.sleep(settle)
    robot.kill()
    robot.wait()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    return not _alive(worker)


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


def test_a_mail_without_a_sender_is_unreadable_unless_automatic() -> None:
    """Binary garbage, a text without headers and a mail whose From was lost would open a
    case for nobody: they are unreadable, with the reason. A bounce without From is still
    read (it tells which address failed)."""
    garbage = bytes((n * 7919) % 251 for n in range(3000))
    with pytest.raises(ParseError, match="^unreadable message: no e-mail headers"):
        prepare(garbage, OPTIONS)
    with pytest.raises(ParseError, match="^unreadable message: no e-mail headers"):
        prepare(b"Geachte,\r\n\r\nik heb een klacht over de bus.\r\n", OPTIONS)
    with pytest.raises(ParseError, match="^unreadable message: no sender"):
        prepare(complaint().replace(b"From: Jan Peeters <jan.peeters@example.be>\r\n", b""), OPTIONS)
    bounce = (b"To: klachten@vlaamseombudsdienst.be\r\nSubject: Undelivered Mail Returned to Sender\r\n"
              b"Auto-Submitted: auto-replied\r\n\r\nThe mail could not be delivered.\r\n")
    assert prepare(bounce, OPTIONS)[1].is_automatic


@pytest.mark.dovecot
def test_poll_quarantines_a_mail_without_a_sender(make_app, dovecot, db_url) -> None:
    """Through the real poll, as through the import: no case for nobody, the mail in the
    quarantine folder with its reason, no reply."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
                   db_url=db_url)
    append_all(dovecot, [complaint(sender="burger@example.be"),
                         b"Geachte,\r\n\r\nik heb een klacht over de bus.\r\n\r\nJan\r\n"])
    report = app.poll_once()
    assert (report.processed, report.quarantined) == (1, 1)
    with app.sessions() as session:
        assert session.execute(select(Case.citizen_email)).scalars().all() == ["burger@example.be"]
        reason = session.execute(select(Message.quarantine_reason)
                                 .where(Message.quarantine_reason.is_not(None))).scalar_one()
    assert reason.startswith("unreadable message: no e-mail headers")
    assert counts(app)["outbox"] == 1 and folder_count(dovecot, "Quarantine") == 1


@pytest.mark.dovecot
def test_poll_sets_a_hanging_mail_aside(make_app, dovecot, smtp_sink, db_url) -> None:
    """Through the real poll: the mail whose reading hangs is quarantined with the reason
    after `limits.parse_timeout_seconds`, also when another mail's failure makes the batch
    be redone (it is not read again); every other complaint becomes a case, the inbox ends
    empty, and the next poll reads with a new worker."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username,
                         "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, limits={"parse_timeout_seconds": 2})
    app.intake.preparer.work = hang_or_crash
    mails = [complaint(sender=f"burger{i}@example.be", name=f"Burger {i}",
                       subject=f"Klacht {i} over mijn dossier {1000 + i}",
                       body=f"Geachte, mijn aanvraag {i} bij het agentschap blijft al maanden liggen.")
             for i in range(6)]
    mails[2] = _marked(mails[2], HANG)
    mails[4] = complaint(subject="BOOM", body="Deze mail laat de robot struikelen.")
    append_all(dovecot, mails)
    real = app.intake.matching.match_explained

    def breaking(session, mail, classification=None):  # the batch is redone message by message
        if mail.subject == "BOOM":
            raise RuntimeError("matching broke")
        return real(session, mail, classification)

    app.intake.matching.match_explained = breaking
    report = app.poll_once()
    assert (report.fetched, report.processed, report.quarantined) == (6, 4, 2)
    append_all(dovecot, [complaint(sender="later@example.be", subject="Nog een klacht",
                                   body="Mijn vraag bij de gemeente blijft onbeantwoord.")])
    assert app.poll_once().processed == 1
    with app.sessions() as session:
        assert len(session.execute(select(Case)).scalars().all()) == 5
        reasons = session.execute(select(Message.quarantine_reason)
                                  .where(Message.quarantine_reason.is_not(None))).scalars().all()
    assert sorted(reasons) == ["processing failed: RuntimeError: matching broke",
                               "reading the message took longer than 2 s"]
    assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "Quarantine") == 2


def test_closing_does_not_wait_on_a_worker_stuck_in_a_mail() -> None:
    """Ctrl-C during an import, SIGTERM during a poll: the robot closes the preparer while
    the worker may be stuck in a mail; it is killed after a short grace, not waited on."""
    preparer = Preparer(timeout=600, work=hang_or_crash)
    raws = _corpus(2)
    ahead = preparer.batch([raws[0], _marked(raws[1], HANG)], OPTIONS)
    ahead[0].result()
    [worker] = list(preparer._pool._processes)
    started = time.monotonic()
    preparer.close()
    assert time.monotonic() - started < 20 and not _alive(worker)


def test_a_stop_is_not_held_up_by_a_worker_stuck_in_a_mail() -> None:
    """SIGTERM while the batch waits for a mail whose reading hangs: the wait ends within a
    second, with `Stopped` (not a ParseError: the mail is not set aside), and the worker is
    killed, not left for the whole parse timeout."""
    import threading

    from mailbot.prepare import Stopped

    raws = _corpus(3)
    stop = threading.Event()
    preparer = Preparer(timeout=600, work=hang_or_crash)
    try:
        ahead = preparer.batch([raws[0], _marked(raws[1], HANG), raws[2]], OPTIONS, stop=stop)
        assert ahead[0].result() == prepare(raws[0], OPTIONS)
        [worker] = list(preparer._pool._processes)
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped):
            ahead[1].result()
        assert time.monotonic() - started < 3
        assert ahead[1].error is None and preparer._pool is None
        deadline = time.monotonic() + 5
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        preparer.close()
