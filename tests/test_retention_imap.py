"""Retention reaches the IMAP folders (audit C, finding 1): the mail of purged cases leaves the
processed folder, old quarantined mail the quarantine folder, and the copies of purged replies
and old digests the sent folder; other mail stays. An unreachable server fails loudly and the
next run catches up; the switch `retention.imap_folders` turns it off."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import SettableClock, append_all, imap_config
from mailbot.db import Case
from mailbot.fetch import ImapFolders, connect_imap

pytestmark = pytest.mark.dovecot

START = datetime.now(timezone.utc).replace(microsecond=0)  # INTERNALDATE is the real day of delivery
LATER = START + timedelta(days=400)  # past closed_case_days (30 after closing) and quarantine_days (90)
DIGEST = ("From: klachten@vlaamseombudsdienst.be\r\nSubject: Dagoverzicht {day}\r\n"
          "Message-ID: <digest.{day}.0123abcd@vlaamseombudsdienst.be>\r\n\r\nJan Peeters, An Oud\r\n")
OTHER = b"From: collega@vlaamseombudsdienst.be\r\nSubject: notitie\r\nMessage-ID: <mens@example.org>\r\n\r\nhallo\r\n"


def _app(make_app, dovecot, smtp_sink, db_url, retention=None, **overrides):
    clock = SettableClock(START)
    app = make_app(db_url=db_url, imap=imap_config(dovecot) | {"sent_folder": "Sent"},
                   smtp={"port": smtp_sink.port}, digest={"recipients": ["onthaal@vlaamseombudsdienst.be"]},
                   retention={"closed_case_days": 30, "quarantine_days": 90, "digest_days": 30} | (retention or {}),
                   clock=clock,
                   **overrides)
    app.intake.clock = app.intake.matching.clock = clock
    return app, clock


def _without_id(raw: bytes) -> bytes:
    return b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"Message-ID:"))


def _subjects(dovecot, folder: str) -> list[str]:
    client = dovecot.client()
    try:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        data = client.fetch(client.search(["NOT", "DELETED"]), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return sorted(bytes(d[b"BODY[HEADER.FIELDS (SUBJECT)]"]).decode().strip().removeprefix("Subject: ")
                      for d in data.values())
    finally:
        client.logout()


def _fill(app, clock, dovecot):
    """Two citizens' cases by mail (one without a Message-ID), a third that stays open, an
    empty mail quarantined, the replies sent and copied to Sent; in Sent also a digest copy
    of START's eve and one of LATER's; then the first two cases closed on START. Mail the robot
    does not know sits in Processed and Sent."""
    append_all(dovecot, [complaint(sender="an.oud@example.be", name="An Oud", subject="Oud dossier"),
                         _without_id(complaint(sender="bo.zonder@example.be", name="Bo Zonder",
                                               subject="Zonder Message-ID")),
                         complaint(sender="cis.open@example.be", name="Cis Open", subject="Nog open"),
                         b"\r\n"])
    app.poll_once()
    app.send_outbox()
    append_all(dovecot, [OTHER], "Processed")
    append_all(dovecot, [OTHER] + [DIGEST.format(day=(day - timedelta(days=1)).date()).encode()
                                   for day in (START, LATER)], "Sent")
    with app.sessions.begin() as session:
        for case in session.execute(select(Case)).scalars():
            if case.citizen_email != "cis.open@example.be":
                case.status, case.closed_at = "closed", START
    clock.now = LATER


def test_retention_deletes_the_mail_of_what_it_purges_from_every_folder(make_app, dovecot, smtp_sink, db_url):
    """After retention Processed keeps only the open case's mail and the unknown one, Quarantine
    is empty, Sent keeps the open case's reply, the recent digest and the unknown mail; the dry
    run counted exactly that, and a second run finds nothing left."""
    app, clock = _app(make_app, dovecot, smtp_sink, db_url)
    _fill(app, clock, dovecot)
    assert _subjects(dovecot, "Processed") == ["Nog open", "Oud dossier", "Zonder Message-ID", "notitie"]
    assert len(_subjects(dovecot, "Quarantine")) == 1
    sent_before = _subjects(dovecot, "Sent")
    assert len(sent_before) == 6  # three acknowledgements, two digests, the unknown mail

    dry = app.run_retention(dry_run=True)
    assert _subjects(dovecot, "Processed") == ["Nog open", "Oud dossier", "Zonder Message-ID", "notitie"]
    report = app.run_retention()
    assert report.folders.as_dict() == {**dry.folders.as_dict()}
    assert report.folders.processed == 2 and report.folders.quarantine == 1 and not report.folders.errors
    assert _subjects(dovecot, "Processed") == ["Nog open", "notitie"]
    assert _subjects(dovecot, "Quarantine") == []
    sent = _subjects(dovecot, "Sent")
    assert report.folders.sent == 3 and len(sent) == 3
    assert "notitie" in sent and f"Dagoverzicht {(LATER - timedelta(days=1)).date()}" in sent
    assert not any("Oud dossier" in s or "Zonder" in s for s in sent) and any("Nog open" in s for s in sent)
    again = app.run_retention()
    assert (again.folders.processed, again.folders.quarantine, again.folders.sent) == (0, 0, 0)


def test_an_unreachable_server_fails_loudly_and_the_next_run_catches_up(make_app, dovecot, smtp_sink, sqlite_url):
    """With Dovecot down the database is purged all the same, the report, the log and
    `mailbot status` tell the failure; the next run, with the server back, deletes the mail
    of the cases the first run purged, and status shows the failure ended."""
    app, clock = _app(make_app, dovecot, smtp_sink, sqlite_url)
    _fill(app, clock, dovecot)
    dovecot.stop()
    try:
        first = app.run_retention()
    finally:
        dovecot.restart()
    assert first.closed_cases.cases == 2 and first.folders.errors
    assert any("FAILED" in line for line in first.lines())
    [error] = [e for e in app.status()["last_errors"] if e["type"] == "retention_failed"]
    assert "IMAP" in error["error"] and error["recovered_at"] is None
    assert _subjects(dovecot, "Processed") == ["Nog open", "Oud dossier", "Zonder Message-ID", "notitie"]

    second = app.run_retention()
    assert second.closed_cases.cases == 0 and not second.folders.errors
    assert _subjects(dovecot, "Processed") == ["Nog open", "notitie"]
    assert _subjects(dovecot, "Quarantine") == []
    [error] = [e for e in app.status()["last_errors"] if e["type"] == "retention_failed"]
    assert error["recovered_at"] is not None


def test_every_mailbox_is_cleaned_and_a_missing_folder_is_no_error(make_app, dovecot, smtp_sink, sqlite_url):
    """With two mailboxes the second one's processed folder is cleaned too; a quarantine folder
    that does not exist is skipped without an error."""
    box = imap_config(dovecot) | {"host": "127.0.0.1", "security": "none", "sent_folder": "Sent"}
    app, clock = _app(make_app, dovecot, smtp_sink, sqlite_url, mailboxes=[
        box, box | {"folder": "Plaintes", "processed_folder": "Traitees", "quarantine_folder": "Nulle-part"}])
    client = connect_imap(app.settings.mailboxes[1])
    try:
        client.create_folder("Plaintes")
        _fill(app, clock, dovecot)
        client.delete_folder("Nulle-part")  # the poller created it; an administrator removed it
        client.select_folder("Processed", readonly=True)
        client.copy(client.search(["SUBJECT", "Oud dossier"]), "Traitees")  # also delivered to the second address
    finally:
        client.logout()
    report = app.run_retention()
    assert not report.folders.errors
    assert _subjects(dovecot, "Traitees") == [] and _subjects(dovecot, "Processed") == ["Nog open", "notitie"]
    assert report.folders.processed == 3


def test_the_switch_leaves_the_folders_alone(make_app, dovecot, smtp_sink, sqlite_url):
    """retention.imap_folders: false purges the database only; the folders are not opened."""
    app, clock = _app(make_app, dovecot, smtp_sink, sqlite_url, retention={"imap_folders": False})
    _fill(app, clock, dovecot)
    report = app.run_retention()
    assert report.closed_cases.cases == 2 and report.folders.disabled
    assert any("not touched" in line for line in report.lines())
    assert _subjects(dovecot, "Processed") == ["Nog open", "Oud dossier", "Zonder Message-ID", "notitie"]


def test_a_dry_run_opens_the_folders_read_only(dovecot):
    """ImapFolders in a dry run deletes nothing, whatever it is asked."""
    from mailbot.config import ImapSettings

    client = dovecot.client()
    client.create_folder("Processed")
    client.logout()
    append_all(dovecot, [OTHER], "Processed")
    folders = ImapFolders(ImapSettings(host="127.0.0.1", security="none", **imap_config(dovecot)), readonly=True)
    try:
        assert folders.select("Processed") and not folders.select("Nowhere")
        folders.select("Processed")
        folders.delete(folders.uids())
    finally:
        folders.close()
    assert _subjects(dovecot, "Processed") == ["notitie"]
