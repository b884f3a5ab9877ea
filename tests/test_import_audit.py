"""`mailbot import` after the audit: mbox separators by their shape, Maildir entries that
cannot be read, messages over the size limit, the cases an import opens, mail polled before
it is imported, and "mail" with no sender."""

from __future__ import annotations

import io
import os
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import append_all, counts, imap_config
from mailbot.db import Case, Event, Message, RawMail
from mailbot.digest_data import OVERDUE_LISTED, collect
from mailbot.import_sources import (
    HEAD_KEPT, SourceError, crlf, is_separator, maildir_items, maildir_uid, mbox_items,
)
from mailbot.imported_cases import IMPORTED
from mailbot.pipeline import process_files
from test_import import _config, _import

NOW = datetime.now(timezone.utc)


def dated(raw: bytes, when: datetime) -> bytes:
    return raw.replace(b"Mon, 23 Nov 2026 10:00:00 +0100", format_datetime(when).encode())


def letter(i: int, *, when: datetime = datetime(2016, 3, 1, 9, tzinfo=timezone.utc), body: str | None = None,
           message_id: str | None = None, headers: str = "") -> bytes:
    """Complaint `i` as IMAP delivers it (CRLF line ends), dated `when`."""
    return crlf(dated(complaint(sender=f"burger{i}@example.be", name=f"Burger {i}", subject=f"Klacht {i} over de bus",
                           body=body or f"Geachte,\n\nDe bus van lijn {i} stopt niet meer.\n\nBurger {i}",
                           message_id=message_id or f"<audit-{i}@example.be>", extra_headers=headers), when))


def mbox(path: Path, raws: list[bytes], *, blank_line: bool = True, escape: bool = True,
         separator: bytes = b"From burger@example.be Tue Mar  1 10:00:00 2016\n") -> Path:
    """An mbox as mutt or Python writes it (`blank_line`: the line before each separator)."""
    with path.open("wb") as out:
        for n, raw in enumerate(raws):
            body = raw.replace(b"\r\n", b"\n")
            if escape:  # mboxrd
                body = b"\n".join(b">" + line if line.lstrip(b">").startswith(b"From ") else line
                                  for line in body.split(b"\n"))
            out.write((b"\n" if n and blank_line else b"") + separator + body)
    return path


def _app(config: Path):
    from mailbot.app import create_app
    from mailbot.config import load_settings

    return create_app(load_settings(config))


def _rows(config: Path, query):
    app = _app(config)
    try:
        with app.sessions() as session:
            return list(session.execute(query).all())
    finally:
        app.close()


# -- 1. mbox: a separator is known by its shape ------------------------------------------------

@pytest.mark.parametrize("line", [
    b"From jan@example.be Tue Mar  1 10:00:00 2016\n",
    b"From - Tue Mar 01 10:00:00 2016\r\n",                     # Thunderbird, CRLF file
    b"From 1543256789012345678@xxx Tue Mar 01 10:00:00 +0000 2016\n",  # Gmail Takeout
    b"From MAILER-DAEMON Fri Jul  8 12:08:34 CEST 2011\n",
    b'From "jan peeters"@example.be Tue Mar  1 10:00 2016\n',
    b"From jan@example.be Tue Mar  1 10:00:00 2016 remote from gateway\n",
    b"From jan@example.be Tue, 01 Mar 2016 10:00:00 +0100\n",  # some exporters: a mail date
])
def test_separator_lines_as_mbox_writers_produce_them(line):
    assert is_separator(line)


@pytest.mark.parametrize("line", [
    b"From what my neighbours tell me, this started in September.\n",
    b"From: Jan Peeters <jan@example.be>\n",
    b"From the letter: 'uw dossier is volledig'.\n",
    b"From jan@example.be on Tuesday\n",
    b">From jan@example.be Tue Mar  1 10:00:00 2016\n",
    b"From jan@example.be Tue Mar  1 10:00:00 2016, staat er in de brief\n",
])
def test_body_lines_starting_with_from_are_no_separators(line):
    assert not is_separator(line)


def test_an_mbox_without_blank_lines_and_with_unescaped_from_lines_splits_right(tmp_path):
    """Every message is found when the exporter wrote no blank line before the separators
    (before: the three mails were read as one), and an unescaped body line "From what…"
    after a blank line stays in its mail (before: it became a mail of its own, a case for nobody)."""
    config = _config(tmp_path)
    neighbours = "Geachte,\n\nDe bus stopt niet meer.\n\nFrom what my neighbours tell me, it started in May.\n\nTom"
    raws = [letter(1, body=neighbours), letter(2), letter(3)]
    tight = mbox(tmp_path / "tight.mbox", raws, blank_line=False, escape=False)
    result = _import(config, str(tight))
    assert result.exit_code == 0, result.output
    assert "3 messages read" in result.output and "3 new cases" in result.output
    citizens = sorted(email for (email,) in _rows(config, select(Case.citizen_email)))
    assert citizens == ["burger1@example.be", "burger2@example.be", "burger3@example.be"]
    (text,) = _rows(config, select(Message.body_text).where(Message.from_email == "burger1@example.be"))[0]
    assert "From what my neighbours tell me" in text and text.rstrip().endswith("Tom")


def test_a_file_that_is_no_mbox_nor_a_mail_is_refused_in_one_line(tmp_path):
    """A file whose first line is no separator is refused before anything is written (before,
    its text up to the first "From " line was silently dropped and the rest imported)."""
    config = _config(tmp_path)
    notes = tmp_path / "notities.txt"
    notes.write_bytes(b"Notities van het onthaal\n\nFrom now on we log every call.\n"
                      + letter(1).replace(b"\r\n", b"\n"))
    result = _import(config, str(notes))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {notes}: neither an mbox file (its first line is no 'From <sender> <date>' separator) "
        "nor one e-mail message (header lines, then a blank line): nothing imported"]
    assert not (tmp_path / "mailbot.sqlite3").exists()


def test_a_file_holding_one_mail_is_imported_as_that_mail(tmp_path):
    """A saved .eml (headers first) is one message, read whole: a body line "From …" does not cut it."""
    config = _config(tmp_path)
    eml = tmp_path / "klacht.eml"
    eml.write_bytes(letter(1, body="Geachte,\n\nIn de brief:\nFrom jan@example.be Tue Mar  1 10:00:00 2016\n"
                                   "staat er in de brief.\n\nJan"))
    result = _import(config, str(eml))
    assert result.exit_code == 0, result.output
    assert "1 messages read" in result.output and "1 new cases" in result.output
    (text,) = _rows(config, select(Message.body_text))[0]
    assert "staat er in de brief" in text


def test_an_mbox_without_its_first_separator_is_refused():
    """Headers first, then further down a blank line and a separator: an mbox that lost its
    first separator line, not one mail with the others in its body."""
    raw = letter(1).replace(b"\r\n", b"\n") + b"\nFrom x@example.be Tue Mar  1 10:00:00 2016\n" + letter(2)
    items = mbox_items(io.BytesIO(raw), max_bytes=2**20)
    with pytest.raises(SourceError, match="without the separator line"):
        list(items)


def test_mbox_status_headers_and_lf_line_ends_are_not_part_of_the_mail():
    """A mail client's Status/X-Status/X-Mozilla-Status headers and the mbox's LF line ends
    are dropped: the message is the one IMAP delivered, byte for byte."""
    raw = letter(1)
    with_status = raw.replace(b"MIME-Version:", b"Status: RO\r\nX-Status: A\r\nX-Mozilla-Status: 0001\r\n"
                                                b"MIME-Version:", 1)
    stream = io.BytesIO(b"From x Tue Mar  1 10:00:00 2016\n" + with_status.replace(b"\r\n", b"\n") + b"\n\n")
    (item,) = list(mbox_items(stream, max_bytes=2**20))
    assert item.raw == raw


# -- 2. Maildir: unreadable entries, dot-files, delivery order --------------------------------

def _maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    return path


def test_a_maildir_import_goes_on_past_what_cannot_be_read_and_keeps_delivery_order(tmp_path):
    """A broken link is named and skipped, a .DS_Store and tmp/ are no mail, and numbered files
    go in number order: the reply in 10.eml joins the complaint in 9.eml (before: the
    broken link stopped the import, .DS_Store became a case for nobody, and 10.eml came first)."""
    config = _config(tmp_path)
    box = _maildir(tmp_path / "Maildir")
    original = letter(1, message_id="<orig@example.be>")
    reply = dated(complaint(sender="burger1@example.be", name="Burger 1", subject="Re: Klacht 1 over de bus",
                            body="Nog een aanvulling: vandaag kreeg ik een brief.", message_id="<reply@example.be>",
                            extra_headers="In-Reply-To: <orig@example.be>\r\nReferences: <orig@example.be>\r\n"),
                  datetime(2016, 3, 15, 9, tzinfo=timezone.utc))
    (box / "cur" / "9.eml:2,S").write_bytes(original)
    (box / "cur" / "10.eml:2,S").write_bytes(reply)
    (box / "cur" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(range(200)))
    (box / "tmp" / "1456822800.M1P1.host").write_bytes(letter(2))
    (box / "new" / "subdir").mkdir()
    os.symlink(box / "nowhere", box / "new" / "1456822801.M2P2.host")
    result = _import(config, str(box))
    assert result.exit_code == 0, result.output
    assert "3 messages read" in result.output and "2 recorded" in result.output
    assert "1 could not be opened, skipped" in result.output and "new/1456822801.M2P2.host" in result.output
    rows = _rows(config, select(Message.kind, Case.ref).join(Case, Message.case_id == Case.id).order_by(Message.id))
    assert [kind for kind, _ in rows] == ["new_complaint", "follow_up"] and len({ref for _, ref in rows}) == 1
    again = _import(config, str(box))  # the rest is done; the broken entry is tried again
    assert "2 already imported" in again.output and "1 could not be opened" in again.output


def test_maildir_order_is_the_delivery_time_in_the_name_else_the_mtime(tmp_path):
    box = _maildir(tmp_path / "Maildir")
    for name in ("1000000001.M2P2.host:2,S", "999999999.M1P1.host:2,S"):
        (box / "cur" / name).write_bytes(b"From: a@example.be\n\nx\n")
    for name, mtime in (("a-later", 2_000_000_000), ("b-earlier", 1_500_000_000)):
        (box / "new" / name).write_bytes(b"From: a@example.be\n\nx\n")
        os.utime(box / "new" / name, (mtime, mtime))
    _, items = maildir_items(box, max_bytes=2**20)
    order = [item.uid for item in items]
    assert order == [maildir_uid(n) for n in ("999999999.M1P1.host", "1000000001.M2P2.host", "b-earlier", "a-later")]


def test_a_maildir_file_expunged_during_the_import_is_reported_not_fatal(tmp_path):
    box = _maildir(tmp_path / "Maildir")
    for n in range(3):
        (box / "cur" / f"{1456822800 + n}.M{n}.host:2,S").write_bytes(letter(n))
    count, items = maildir_items(box, max_bytes=2**20)
    (box / "cur" / "1456822801.M1.host:2,S").unlink()  # a mail client expunged it meanwhile
    found = list(items)
    assert count == 3 and [bool(item.problem) for item in found] == [False, True, False]
    assert found[1].problem.startswith("cur/1456822801.M1.host:2,S: ")


# -- 3. a message over the size limit is not held whole -----------------------------------------

def test_a_message_over_the_limit_is_quarantined_from_its_head_alone(tmp_path):
    """An mbox with a 3 MB mail under a 64 KB limit: only its head is held and kept, it is
    quarantined with its true size, and the mails after it are imported (before, the whole
    mail was held, in several copies: 382 MB took 2.3 GB)."""
    config = _config(tmp_path, limits={"max_message_bytes": 65536})
    scan = letter(2, body="Zie bijlage.\n" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n" * 80_000)
    path = mbox(tmp_path / "archief.mbox", [letter(1), scan, letter(3)])
    big = list(mbox_items(path.open("rb"), max_bytes=65536))[1]
    assert len(big.raw) <= HEAD_KEPT and big.size > 2_900_000
    result = _import(config, str(path))
    assert result.exit_code == 0, result.output
    assert "2 recorded" in result.output and "1 could not be read" in result.output
    assert "message of N bytes exceeds the limit of N" in result.output
    (reason, size, sha, received), = _rows(config, select(Message.quarantine_reason, Message.size, Message.sha256,
                                                          Message.received_at)
                                           .where(Message.quarantine_reason.is_not(None)))
    assert reason == f"message of {big.size} bytes exceeds the limit of 65536" and size == big.size
    assert received.date() == datetime.now(timezone.utc).date()  # in the next digest, not on its 2016 day
    (kept,), = _rows(config, select(RawMail.data).where(RawMail.sha256 == sha))
    assert kept == big.raw and kept.startswith(b"From: Burger 2")
    again = _import(config, str(path))  # resumable: the quarantined one has its receipt
    assert "3 already imported" in again.output and "0 recorded" in again.output


def test_a_maildir_file_over_the_limit_is_read_no_further_than_its_head(tmp_path):
    box = _maildir(tmp_path / "Maildir")
    (box / "cur" / "1456822800.M1.host:2,S").write_bytes(letter(1, body="x" * 2_000_000))
    _, items = maildir_items(box, max_bytes=65536)
    (item,) = list(items)
    assert len(item.raw) == HEAD_KEPT and item.size > 2_000_000


@pytest.mark.dovecot
def test_an_imap_message_over_the_limit_is_fetched_no_further_than_its_head(tmp_path, dovecot):
    config = _config(tmp_path, imap=imap_config(dovecot), limits={"max_message_bytes": 65536})
    client = dovecot.client()
    try:
        client.create_folder("Archief")
    finally:
        client.logout()
    append_all(dovecot, [letter(1), letter(2, body="y" * 600_000), letter(3)], folder="Archief")
    result = _import(config, "--imap-folder", "Archief")
    assert result.exit_code == 0, result.output
    assert "2 recorded" in result.output and "1 could not be read" in result.output
    (size, data), = _rows(config, select(Message.size, RawMail.data).join(RawMail, RawMail.sha256 == Message.sha256)
                          .where(Message.quarantine_reason.is_not(None)))
    assert size > 600_000 and len(data) == HEAD_KEPT


# -- 4. the cases an import opens ------------------------------------------------------------

def _section(config: Path, key: str, day: date | None = None):
    """The digest section `key` of `day` (default: today, the office's time)."""
    app = _app(config)
    try:
        with app.sessions() as session:
            day = day or datetime.now(ZoneInfo(app.settings.schedule.timezone)).date()
            data = collect(session, app.settings, day)
            return next(s for s in data.decisions + data.info if s.key == key)
    finally:
        app.close()


def _overdue(config: Path, day: date):
    return _section(config, "overdue", day)


def test_old_imported_cases_are_closed_recent_ones_stay_open_and_none_is_overdue(tmp_path):
    """An archive of old complaints and one of three weeks ago: the old case is closed by the
    import, as of its last message (retention counts from then: before, from the import, which
    kept a 2016 case until 2031), the recent one stays open, and the digest lists neither as
    waiting for a first reaction (before, every imported case was: 300 of 300)."""
    config = _config(tmp_path)
    recent = NOW - timedelta(days=21)
    path = mbox(tmp_path / "archief.mbox", [letter(1), letter(2), letter(3, when=recent)])
    result = _import(config, str(path))
    assert result.exit_code == 0, result.output
    assert "2 imported cases closed: their last message is from before" in result.output
    cases = {email: (status, closed_at) for email, status, closed_at
             in _rows(config, select(Case.citizen_email, Case.status, Case.closed_at))}
    assert cases["burger3@example.be"] == ("open", None)
    for old in ("burger1@example.be", "burger2@example.be"):
        status, closed_at = cases[old]
        assert status == "closed" and closed_at.replace(tzinfo=timezone.utc) == datetime(2016, 3, 1, 9, tzinfo=timezone.utc)
    events = _rows(config, select(Event.type, Event.detail).where(Event.type.in_([IMPORTED, "case_closed"])))
    assert sorted(t for t, _ in events) == ["case_closed", "case_closed", IMPORTED, IMPORTED, IMPORTED]
    assert {d["by"] for t, d in events if t == "case_closed"} == {"import"}
    assert _overdue(config, NOW.date()).count == 0


def test_open_after_keeps_older_imported_cases_open(tmp_path):
    config = _config(tmp_path)
    path = mbox(tmp_path / "archief.mbox", [letter(1), letter(2, when=datetime(2014, 5, 1, tzinfo=timezone.utc))])
    result = _import(config, str(path), "--open-after", "2015-01-01")
    assert result.exit_code == 0, result.output
    assert "1 imported cases closed: their last message is from before 2015-01-01" in result.output
    status = dict(_rows(config, select(Case.citizen_email, Case.status)))
    assert status == {"burger1@example.be": "open", "burger2@example.be": "closed"}


def test_later_mail_on_a_case_the_import_closed_is_flagged(tmp_path):
    config = _config(tmp_path)
    assert _import(config, str(mbox(tmp_path / "a.mbox", [letter(1, message_id="<oud@example.be>")]))).exit_code == 0
    app = _app(config)
    try:
        follow_up = complaint(sender="burger1@example.be", name="Burger 1", subject="Re: Klacht 1 over de bus",
                              body="Is er al nieuws?", extra_headers="In-Reply-To: <oud@example.be>\r\n")
        (outcome,) = process_files(app.intake, [follow_up])
        with app.sessions() as session:
            case = session.execute(select(Case)).scalar_one()
        assert outcome.case_ref == case.ref and case.status == "closed" and "on_closed_case" in case.flags
    finally:
        app.close()


def test_an_interrupted_import_closes_nothing(tmp_path, monkeypatch):
    """Later messages may still join an old case: cases are closed once the import is complete."""
    from mailbot import cli_import

    def interrupt(self, count: int, position: int) -> None:
        if count == 5:
            raise KeyboardInterrupt

    config = _config(tmp_path)
    monkeypatch.setattr(cli_import.ProgressBar, "update", interrupt)
    result = _import(config, str(mbox(tmp_path / "archief.mbox", [letter(n) for n in range(5)])), "--batch-size", "2")
    assert result.exit_code == 130 and "cases closed" not in result.output
    assert {status for (status,) in _rows(config, select(Case.status))} == {"open"}


def test_the_overdue_section_lists_the_oldest_and_counts_all(tmp_path, make_app):
    """Cases without a first reaction beyond what one digest should list: the oldest
    OVERDUE_LISTED are listed, a last line says how many more, the count is of all (before,
    it listed every one: 100,000 after a decade's import)."""
    app = make_app(db_url=f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    with app.sessions.begin() as session:
        for n in range(OVERDUE_LISTED + 20):
            when = datetime(2026, 1, 5, tzinfo=timezone.utc) + timedelta(minutes=n)
            session.add(Case(ref=f"VO-2026-{n + 1:06d}", status="open", citizen_email=f"b{n}@example.be",
                             subject=f"Klacht {n}", created_at=when, updated_at=when))
    with app.sessions() as session:
        section = next(s for s in collect(session, app.settings, date(2026, 3, 2)).decisions if s.key == "overdue")
    (_, items), (more, none) = section.groups
    assert section.count == OVERDUE_LISTED + 20 and len(items) == OVERDUE_LISTED and none == []
    assert items[0].ref == "VO-2026-000001" and more.startswith("… en nog 20 dossiers")


# -- 6. mail polled before, imported now ----------------------------------------------------

@pytest.mark.dovecot
def test_mail_polled_before_is_a_duplicate_when_imported_from_an_mbox(tmp_path, dovecot, make_app):
    """Mail without Message-ID, polled (CRLF, as IMAP delivers it) and later imported from the
    office's mbox (LF, with the mail client's Status headers): known by its content, not
    recorded twice (before: a second message on the case)."""
    app = make_app(db_url=f"sqlite:///{tmp_path / 'mailbot.sqlite3'}", imap=imap_config(dovecot))
    no_id = letter(1, when=NOW - timedelta(days=2)).replace(b"Message-ID:", b"X-Old-Message-ID:")
    with_id = letter(2, when=NOW - timedelta(days=2))
    append_all(dovecot, [no_id, with_id])
    assert app.poll_once().processed == 2
    archived = [raw.replace(b"MIME-Version:", b"Status: RO\r\nX-Status: \r\nMIME-Version:", 1)
                for raw in (no_id, with_id)]
    result = _import(_config(tmp_path, imap=imap_config(dovecot)), str(mbox(tmp_path / "archief.mbox", archived)))
    assert result.exit_code == 0, result.output
    assert "0 recorded, 2 duplicates" in result.output
    assert counts(app)["incoming"] == 2


# -- 7. "mail" with no sender -----------------------------------------------------------------

def test_garbage_and_headerless_text_in_an_mbox_are_quarantined_not_cases(tmp_path):
    config = _config(tmp_path)
    garbage = bytes((n * 7919) % 251 for n in range(3000)).replace(b"\nFrom ", b"\nXrom ")
    headerless = b"Geachte,\n\nik heb een klacht over de bus.\n\nJan\n"
    path = mbox(tmp_path / "archief.mbox", [letter(1), garbage, headerless])
    result = _import(config, str(path))
    assert result.exit_code == 0, result.output
    assert "1 new cases" in result.output and "2 could not be read" in result.output
    reasons = sorted(r for (r,) in _rows(config, select(Message.quarantine_reason)
                                         .where(Message.quarantine_reason.is_not(None))))
    assert all(r.startswith("unreadable message: no ") for r in reasons) and len(reasons) == 2
    assert [email for (email,) in _rows(config, select(Case.citizen_email))] == ["burger1@example.be"]


def test_old_mail_the_pipeline_quarantines_is_dated_by_the_import_and_listed_in_its_digest(tmp_path):
    """Mail from 2016 with no sender is quarantined by the pipeline under the import's clock,
    which dated it 2016: the digest never listed it (the import report says it does) and
    retention emptied it at its next run. It is now dated by the import, like mail too large
    to read."""
    config = _config(tmp_path)
    no_sender = b"\r\n".join(line for line in letter(2).split(b"\r\n") if not line.startswith(b"From:"))
    result = _import(config, str(mbox(tmp_path / "archief.mbox", [letter(1), no_sender])))
    assert result.exit_code == 0 and "1 could not be read" in result.output, result.output
    (received,) = [r for (r,) in _rows(config, select(Message.received_at)
                                       .where(Message.quarantine_reason.is_not(None)))]
    assert abs(received.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=5)
    section = _section(config, "quarantined")
    assert [item.detail for _, items in section.groups for item in items] == ["unreadable message: no sender (no From address)"]


def test_the_import_day_digest_lists_the_imported_cases_left_open(tmp_path):
    """Recent mail an import brings in is dated by its own Date, so it fell in digests already
    sent, and the import sends no reply: nobody saw it (audit D, finding 11). The digest of the
    import's day lists the imported cases it left open; the old, closed ones are not listed."""
    config = _config(tmp_path)
    recent = NOW - timedelta(days=21)
    path = mbox(tmp_path / "archief.mbox", [letter(1), letter(3, when=recent)])
    assert _import(config, str(path)).exit_code == 0
    section = _section(config, "imported_open")
    [item] = [item for _, items in section.groups for item in items]
    assert item.title == "Klacht 3 over de bus" and "burger3@example.be" in item.who
    assert f"ontvangen {recent:%d-%m-%Y}" in item.detail
