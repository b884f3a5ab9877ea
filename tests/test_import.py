"""`mailbot import`: backfill from mbox, Maildir or an IMAP folder; quiet, resumable, streaming."""

from __future__ import annotations

import io
import mailbox
import os
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import base_config, complaint
from faulty_parsers import HANG, hang_or_crash
from helpers import append_all, counts, imap_config
from mailbot import cli_import, locks
from mailbot.cli import cli
from mailbot.db import Event, Message, Receipt
from mailbot.import_sources import Item, content_uid, mbox_items
from mailbot.importer import ImportClock, Importer

TOPICS = ("studietoelage", "huurpremie", "groeipakket", "bus 58 van De Lijn", "VDAB-opleiding", "rioolheffing")
# The 10,000-message import takes minutes (the full pipeline runs per message): CI runs it.
FULL_SIZE = bool(os.environ.get("CI") or os.environ.get("MAILBOT_SLOW_TESTS"))


def old_mail(i: int, citizens: int = 300) -> bytes:
    """Message `i` of a generated archive: citizens write several times about their topic."""
    who = i % citizens
    topic = TOPICS[who % len(TOPICS)]
    body = (f"Geachte,\n\nIk heb een probleem met mijn {topic}. Ik heb hen al gemaild zonder antwoord.\n"
            f"From now on I expect an answer (bericht {i}).\n\nMet vriendelijke groeten,\nBurger {who}")
    return complaint(sender=f"burger{who}@example.be", name=f"Burger {who}", subject=f"Klacht over {topic}",
                     body=body, message_id=f"<archief-{i}@example.be>").replace(
        b"Mon, 23 Nov 2026 10:00:00 +0100", f"Tue, {1 + i % 28} Mar 2016 10:00:00 +0100".encode())


def write_mbox(path: Path, n: int, *, extra: tuple[bytes, ...] = ()) -> Path:
    """An mboxrd file of `n` generated messages (plus `extra` ones at the end), written streaming."""
    with path.open("wb") as out:
        for raw in [*(old_mail(i) for i in range(n)), *extra]:
            out.write(b"From archive@example.be Tue Mar  1 10:00:00 2016\n")
            body = raw.replace(b"\r\n", b"\n")
            out.write(b"\n".join(b">" + line if line.lstrip(b">").startswith(b"From ") else line
                                 for line in body.split(b"\n")))
            out.write(b"\n\n")
    return path


def _config(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "config.yaml"
    config = base_config(db_url=f"sqlite:///{tmp_path / 'mailbot.sqlite3'}", **overrides)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _import(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), "import", *args], obj={})


def _db_counts(config: Path) -> dict[str, int]:
    from mailbot.app import create_app
    from mailbot.config import load_settings

    app = create_app(load_settings(config))
    try:
        with app.sessions() as session:
            found = counts(app)
            found["receipts"] = session.execute(select(func.count()).select_from(Receipt)).scalar_one()
            found["suppressed"] = session.execute(select(func.count()).select_from(Event)
                                                  .where(Event.type == "replies_suppressed")).scalar_one()
            found["distinct_ids"] = session.execute(select(func.count(func.distinct(Message.message_id)))
                                                    .where(Message.direction == "in")).scalar_one()
            return found
    finally:
        app.close()


def test_mbox_is_streamed_one_message_at_a_time():
    """The mbox reader yields the first message after reading little more than it; `>From `
    is unescaped; the message comes as IMAP delivers it (CRLF)."""
    raw = b"".join(b"From a@b Tue Mar  1 10:00:00 2016\nSubject: m%d\n\n>From the start\nbody\n\n" % i
                   for i in range(10_000))

    class Counting(io.BytesIO):
        lines = 0

        def readline(self, size: int | None = -1) -> bytes:
            Counting.lines += 1
            return super().readline(size)

    messages = mbox_items(Counting(raw), max_bytes=2**20)
    uid, first, _, size = next(messages)[:4]
    assert first == b"Subject: m0\r\n\r\nFrom the start\r\nbody\r\n" and size == len(first)
    assert uid == content_uid(b"Subject: m0\n\nFrom the start\nbody\n")  # as read: resumable across versions
    assert Counting.lines < 10
    assert sum(1 for _ in messages) == 9_999


def test_import_mbox_builds_cases_and_threads_without_replying(tmp_path):
    """An archive import records every message in cases and threads, queues no reply, and reports its rate."""
    config = _config(tmp_path)
    mbox = write_mbox(tmp_path / "archief.mbox", 600)
    started = time.monotonic()
    result = _import(config, str(mbox))
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "600 messages read" in result.output and "600 recorded" in result.output
    assert "msg/s" in result.output and "no reply was sent" in result.output
    found = _db_counts(config)
    assert found["incoming"] == found["distinct_ids"] == found["receipts"] == 600
    assert found["outbox"] == 0 and found["suppressed"] >= found["cases"] > 0
    assert found["cases"] <= 300  # citizens' later mails joined their first case
    print(f"\nimport of 600 messages: {seconds:.1f} s, {600 / seconds:.0f} msg/s")


def test_second_run_skips_everything_already_imported(tmp_path):
    """Running the same import again reads the archive but records nothing twice."""
    config = _config(tmp_path)
    mbox = write_mbox(tmp_path / "archief.mbox", 150)
    assert _import(config, str(mbox)).exit_code == 0
    again = _import(config, str(mbox))
    assert again.exit_code == 0
    assert "150 already imported" in again.output and "0 recorded" in again.output
    assert _db_counts(config)["incoming"] == 150


def test_an_mbox_changed_between_two_runs_loses_nothing(tmp_path):
    """A mail client compacted the archive (one mail deleted) and new mail was appended: the
    second run records the new mail. Before, it skipped by position and lost the new mail."""
    config = _config(tmp_path)
    mails = [old_mail(i) for i in range(60)]
    write_mbox(tmp_path / "archief.mbox", 0, extra=tuple(mails))
    assert _import(config, str(tmp_path / "archief.mbox")).exit_code == 0
    write_mbox(tmp_path / "archief.mbox", 0, extra=(*mails[1:], old_mail(1000), old_mail(1001), mails[5]))
    again = _import(config, str(tmp_path / "archief.mbox"))
    assert again.exit_code == 0, again.output
    assert "60 already imported" in again.output and "2 recorded" in again.output
    assert _db_counts(config)["incoming"] == 62


def test_interrupted_import_resumes_without_duplicates(tmp_path, monkeypatch):
    """Ctrl-C in the middle keeps the committed batches; the next run imports exactly the rest."""
    config = _config(tmp_path)
    mbox = write_mbox(tmp_path / "archief.mbox", 500)
    original = cli_import.ProgressBar.update

    def interrupt(self, count: int, position: int) -> None:
        if count == 250:
            raise KeyboardInterrupt
        original(self, count, position)

    monkeypatch.setattr(cli_import.ProgressBar, "update", interrupt)
    first = _import(config, str(mbox), "--batch-size", "100")
    assert first.exit_code == 130
    assert "interrupted" in first.output and "run the same command again" in first.output
    assert _db_counts(config)["incoming"] == 200  # two committed batches; the third rolled back

    monkeypatch.setattr(cli_import.ProgressBar, "update", original)
    second = _import(config, str(mbox), "--batch-size", "100")
    assert second.exit_code == 0, second.output
    assert "200 already imported" in second.output and "300 recorded" in second.output
    found = _db_counts(config)
    assert found["incoming"] == found["distinct_ids"] == found["receipts"] == 500
    assert found["outbox"] == 0


def test_unreadable_messages_are_quarantined_and_reported(tmp_path):
    """Oversize and garbage messages are quarantined, counted with their reasons, and the import goes on."""
    config = _config(tmp_path, limits={"max_message_bytes": 4096})
    oversize = complaint(body="x" * 8000, message_id="<groot@example.be>")
    mbox = write_mbox(tmp_path / "archief.mbox", 20, extra=(oversize, b"\x00\x01\x02 not a mail \xff\xfe"))
    result = _import(config, str(mbox))
    assert result.exit_code == 0, result.output
    assert "22 messages read" in result.output
    assert "could not read (quarantined" in result.output and "exceeds the limit" in result.output
    found = _db_counts(config)
    assert found["receipts"] == 22 and found["outbox"] == 0


def test_import_maildir(tmp_path):
    """A Maildir (cur/ and new/) is imported like an mbox, and resumable by file name."""
    config = _config(tmp_path)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for i in range(40):
        box.add(old_mail(i))
    result = _import(config, str(tmp_path / "Maildir"))
    assert result.exit_code == 0, result.output
    assert "Maildir" in result.output and "40 recorded" in result.output
    box.add(old_mail(40))
    again = _import(config, str(tmp_path / "Maildir"))
    assert "40 already imported" in again.output and "1 recorded" in again.output


def test_import_needs_exactly_one_source(tmp_path):
    """PATH and --imap-folder are alternatives: neither or both is a usage error."""
    config = _config(tmp_path)
    assert _import(config).exit_code == 2
    mbox = write_mbox(tmp_path / "a.mbox", 1)
    assert _import(config, str(mbox), "--imap-folder", "Archief").exit_code == 2


def test_import_clock_uses_the_mails_date():
    """Imported mail keeps its own date (within reason), so old cases are dated in the past."""
    clock = ImportClock()
    clock.set_from(b"Subject: x\r\nDate: Tue, 1 Mar 2016 10:00:00 +0100\r\n\r\nbody")
    assert clock().year == 2016 and clock().hour == 9
    clock.set_from(b"Subject: x\r\nDate: Sat, 1 Jan 2199 10:00:00 +0000\r\n\r\nbody")
    assert clock().year < 2199  # a date in the future is not believed
    clock.set_from(b"Subject: no date\r\n\r\nDate: Tue, 1 Mar 2016 10:00:00 +0100")
    assert clock().year > 2016  # only the header counts


@pytest.mark.dovecot
def test_import_imap_folder_read_only(tmp_path, dovecot):
    """`--imap-folder` imports an IMAP folder without moving or flagging anything there."""
    config = _config(tmp_path, imap=imap_config(dovecot))
    client = dovecot.client()
    try:
        client.create_folder("Archief")
    finally:
        client.logout()
    append_all(dovecot, [old_mail(i) for i in range(30)], folder="Archief")
    result = _import(config, "--imap-folder", "Archief")
    assert result.exit_code == 0, result.output
    assert "30 recorded" in result.output
    client = dovecot.client()
    try:
        client.select_folder("Archief", readonly=True)
        assert len(client.search(["ALL"])) == 30 and client.search(["SEEN"]) == []
    finally:
        client.logout()
    assert "30 already imported" in _import(config, "--imap-folder", "Archief").output


@pytest.mark.skipif(not FULL_SIZE, reason="10,000-message import takes minutes: set CI=true or MAILBOT_SLOW_TESTS=1")
@pytest.mark.timeout(1800)
def test_import_ten_thousand_message_mbox(tmp_path):
    """A generated 10,000-message mbox imports completely, once, without a reply."""
    config = _config(tmp_path)
    mbox = write_mbox(tmp_path / "archief.mbox", 10_000)
    started = time.monotonic()
    result = _import(config, str(mbox))
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "10000 recorded" in result.output
    found = _db_counts(config)
    assert found["incoming"] == found["receipts"] == 10_000 and found["outbox"] == 0
    print(f"\nimport of 10,000 messages: {seconds:.0f} s, {10_000 / seconds:.0f} msg/s")


def test_importer_skips_receipts_without_parsing(tmp_path, make_app):
    """Resuming checks receipts up front: done messages are not parsed again."""
    app = make_app(db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    importer = Importer(app, ImportClock(), batch_size=10)
    items = [Item(i, old_mail(i), i, len(old_mail(i))) for i in range(25)]
    assert importer.run("import:test", 0, iter(items)).outcomes["processed"] == 25
    garbage = [Item(i, b"would fail to parse", i, 19) for i in range(25)]
    report = importer.run("import:test", 0, iter(garbage))
    assert report.skipped == 25 and sum(report.outcomes.values()) == 0


def test_killed_import_resumes_without_duplicates(tmp_path):
    """An import killed with SIGKILL mid-way loses only its open batch; the re-run completes it exactly."""
    import signal
    import sqlite3
    import subprocess
    import sys

    config = _config(tmp_path)
    mbox = write_mbox(tmp_path / "archief.mbox", 400)
    command = [sys.executable, "-m", "mailbot", "--config", str(config), "import", str(mbox), "--batch-size", "50"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = tmp_path / "mailbot.sqlite3"
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(db_path, timeout=5) as db:
                done = db.execute("SELECT count(*) FROM receipt").fetchone()[0]
        except sqlite3.OperationalError:
            continue  # the schema is still being created
        if done >= 100:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 100 <= done < 400
    result = _import(config, str(mbox), "--batch-size", "50")
    assert result.exit_code == 0, result.output
    found = _db_counts(config)
    assert found["incoming"] == found["distinct_ids"] == found["receipts"] == 400


def test_a_failing_or_hanging_mail_is_quarantined_and_the_import_goes_on(tmp_path):
    """A batch is one transaction; a message that breaks processing (here: matching raises)
    sends the batch round again with a savepoint per message, so only it is quarantined.
    Import parses ahead in the worker, so the watchdog covers it: the mail whose reading
    hangs is quarantined after `limits.parse_timeout_seconds`, and not read again in the redo."""
    from mailbot.app import create_app
    from mailbot.config import load_settings
    from mailbot.migrate import upgrade

    app = create_app(load_settings(_config(tmp_path, limits={"parse_timeout_seconds": 2})))
    upgrade(app.engine)
    app.intake.preparer.work = hang_or_crash
    real = app.intake.matching.match_explained

    def breaking(session, mail, classification=None):
        if mail.subject == "BOOM":
            raise RuntimeError("matching broke")
        return real(session, mail, classification)

    app.intake.matching.match_explained = breaking
    boom = complaint(subject="BOOM", body="Deze mail laat de robot struikelen.", message_id="<boom@example.be>")
    raws = [HANG + b"\r\n" + old_mail(i) if i == 5 else boom if i == 7 else old_mail(i) for i in range(12)]
    try:
        report = Importer(app, ImportClock(), batch_size=10).run("import:test", 1,
                                                                 iter([Item(i, raw, i + 1, len(raw)) for i, raw in enumerate(raws)]))
        found = counts(app)
        with app.sessions() as session:
            receipts = session.execute(select(func.count()).select_from(Receipt)).scalar_one()
    finally:
        app.close()
    assert report.outcomes["quarantined"] == 2 and report.outcomes["processed"] == 10
    assert sorted(report.problems) == ["processing failed: RuntimeError: matching broke",
                                       "reading the message took longer than N s"]  # numbers abridged
    assert found["incoming"] == receipts == 12 and found["outbox"] == 0


@pytest.mark.postgres
def test_an_import_beside_the_robot_waits_out_the_robots_locks(make_app, pg_url):
    """A batch of the running robot holds the case-opening lock longer than the import may
    wait for it (`lock_timeout`, here 0.5 s): the import's batch is rolled back and recorded
    again a moment later, instead of stopping the import."""
    app = make_app(db_url=pg_url.replace("options=", "options=-clock_timeout%3D500%20", 1))
    robot = Session(app.engine)
    robot.begin()
    locks.lock_case_opening(robot)
    release = threading.Timer(1.5, robot.rollback)
    release.start()
    try:
        items = [Item(i, old_mail(i), i + 1, len(old_mail(i))) for i in range(3)]
        report = Importer(app, ImportClock(), batch_size=10).run("import:test", 1, iter(items))
    finally:
        release.join()
        robot.close()
    assert report.outcomes["processed"] == 3
    assert counts(app)["incoming"] == 3
