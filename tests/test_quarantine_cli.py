"""`mailbot quarantine list` and `retry`: staff see quarantined mail and move it back to the inbox
once the cause is fixed; the next poll reads it as new mail, its sender is not told twice."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config, complaint
from helpers import append_all, counts, folder_count, imap_config
from mailbot.cli import cli
from mailbot.db import Event, Message, Outbox
from mailbot.fetch import mailbox_name
from mailbot.pipeline import process_files
from mailbot.quarantine_admin import EMPTIED, QUARANTINED, RESOLVED, RETRIED, searchable_message_id, state_of
from mailbot.record import Source
from mailbot.retention import expire_quarantined

LIMIT = 4096  # limits.max_message_bytes before the operator raises it
RAISED = 2**20
BIG = 10_000  # bytes of body: over LIMIT, under RAISED
T0 = datetime(2026, 11, 23, 10, tzinfo=timezone.utc)  # 11:00 in Brussels


def _no_message_id(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.lower().startswith(b"message-id:"))


def _cli(tmp_path: Path, **config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**config)))

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(path), *args], obj={}, catch_exceptions=False)
    return run


def _listed(run, *args: str) -> list[dict]:
    result = run("quarantine", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _events(app, type_: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.execute(select(Event).where(Event.type == type_)).scalars())


def _templates(app) -> list[str]:
    with app.sessions() as session:
        return list(session.execute(select(Outbox.template).order_by(Outbox.id)).scalars())


# -- pure ------------------------------------------------------------------------------------

def test_the_state_of_a_quarantined_mail():
    """Read again wins over everything; emptied bytes next; a retry counts until a poll
    quarantines the mail again. Pure."""
    later = T0 + timedelta(minutes=5)
    assert state_of(raw_kept=True, resolved=False, retried_at=None, last_quarantined_at=T0) == QUARANTINED
    assert state_of(raw_kept=True, resolved=False, retried_at=later, last_quarantined_at=T0) == RETRIED
    assert state_of(raw_kept=True, resolved=False, retried_at=T0, last_quarantined_at=later) == QUARANTINED
    assert state_of(raw_kept=False, resolved=False, retried_at=later, last_quarantined_at=T0) == EMPTIED
    assert state_of(raw_kept=False, resolved=True, retried_at=None, last_quarantined_at=T0) == RESOLVED


def test_the_message_id_searched_for_is_the_bare_header_value():
    """An IMAP SEARCH gets the Message-ID without brackets, only from the header block, and
    none it could not take as it is (then the copy is found by its size). Pure."""
    assert searchable_message_id(b"From: a@b.be\r\nMessage-ID: <x.1@mail.be>\r\n\r\nbody") == "x.1@mail.be"
    assert searchable_message_id(b"From: a@b.be\r\n\r\nMessage-ID: <in@body.be>\r\n") is None
    assert searchable_message_id(b'Message-ID: <a"b@c.be>\r\n\r\n') is None
    assert searchable_message_id("Message-ID: <é@c.be>\r\n\r\n".encode()) is None


# -- end to end --------------------------------------------------------------------------------

@pytest.mark.dovecot
def test_an_oversize_complaint_retried_after_the_limit_is_raised_becomes_a_case(make_app, dovecot, smtp_sink,
                                                                                db_url, tmp_path):
    """GIVEN a complaint over the size limit, quarantined by a poll and its sender told,
    WHEN the operator raises the limit and runs `quarantine retry ID`,
    THEN the mail is back in the inbox, the next poll opens a case and acknowledges it, the
    sender gets no second notice, and `quarantine list` shows it resolved on that case."""
    imap = imap_config(dovecot)
    small = make_app(imap=imap, smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": LIMIT})
    raw = complaint(subject="Klacht met bijlage", body="x" * BIG, message_id="<groot@mail.example.be>")
    append_all(dovecot, [raw])
    assert small.poll_once().quarantined == 1 and small.send_outbox().sent == 1
    assert _templates(small) == ["undeliverable"]
    run = _cli(tmp_path, imap=imap, smtp={"port": smtp_sink.port}, db_url=db_url,
               limits={"max_message_bytes": RAISED})

    status = json.loads(run("status", "--json").output)
    assert (status["quarantined"], status["quarantine_unresolved"]) == (1, 1)
    [listed] = _listed(run)
    assert (listed["state"], listed["size"], listed["from_email"], listed["subject"]) == (
        QUARANTINED, len(raw), "jan.peeters@example.be", "Klacht met bijlage")
    assert "exceeds the limit of 4096" in listed["reason"] and listed["case_ref"] is None
    assert listed["mailbox"] == mailbox_name(small.settings.imap) and listed["received_at"].endswith("+00:00")
    text = run("quarantine", "list").output
    assert f"{listed['id']:>7}  " in text and "quarantined" in text and "Jan Peeters <jan.peeters@example.be>" in text

    retried = run("quarantine", "retry", str(listed["id"]), "--by", "els")
    assert retried.exit_code == 0 and "moved 1 copy from 'Quarantine'" in retried.output
    assert (folder_count(dovecot, "Quarantine"), folder_count(dovecot, "INBOX")) == (0, 1)
    [event] = _events(small, "quarantine_retried")
    assert event.message_pk == listed["id"] and event.detail["by"] == "els"
    assert [(r["state"], r["retried_by"]) for r in _listed(run)] == [(RETRIED, "els")]

    raised = make_app(imap=imap, smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": RAISED})
    report = raised.poll_once()
    assert (report.processed, report.quarantined, report.duplicates) == (1, 0, 0)
    assert raised.send_outbox().sent == 1
    assert _templates(raised) == ["undeliverable", "ack_investigation"]  # no second notice
    [_, ack] = smtp_sink.parsed()
    assert smtp_sink.messages[1].rcpt_tos == ["jan.peeters@example.be"] and "VO-" in ack["Subject"]
    assert counts(raised)["cases"] == 1 and folder_count(dovecot, "Processed") == 1

    [after] = _listed(run)
    assert after["state"] == RESOLVED and after["resolved_case_ref"] in ack["Subject"]
    assert after["reason"] == listed["reason"]  # the quarantine row stays as the record
    assert f"resolved (message {after['resolved_message_id']}, case {after['resolved_case_ref']})" in run(
        "quarantine", "list").output
    again = run("quarantine", "retry", str(listed["id"]))
    assert again.exit_code == 1 and f"quarantined mail {listed['id']}: already read again" in again.stderr
    status = json.loads(run("status", "--json").output)
    assert (status["quarantined"], status["quarantine_unresolved"]) == (1, 0)  # the record stays, resolved
    assert "quarantined: 0 not read since (1 in all" in run("status").output


@pytest.mark.dovecot
def test_retry_refuses_mail_whose_copy_is_gone_or_emptied_and_moves_the_rest(make_app, dovecot, smtp_sink,
                                                                             sqlite_url, tmp_path):
    """One line on stderr per mail that cannot be moved back (its copy deleted by hand, its
    bytes emptied by retention, an unknown id), exit 1; the others are moved all the same."""
    imap = imap_config(dovecot)
    app = make_app(imap=imap, smtp={"port": smtp_sink.port}, db_url=sqlite_url, limits={"max_message_bytes": LIMIT})
    gone, emptied, kept = (complaint(sender=f"{who}@example.be", body=who * BIG) for who in ("a", "b", "c"))
    append_all(dovecot, [gone, emptied, kept])
    assert app.poll_once().quarantined == 3
    ids = {m.from_email[0]: m.id for m in _rows(app)}
    client = dovecot.client()
    client.select_folder("Quarantine")
    [uid] = client.search(["FROM", "a@example.be"])
    client.delete_messages([uid])
    client.expunge()
    client.logout()
    with app.sessions.begin() as session:  # b's was quarantined long ago: retention empties it
        session.execute(Message.__table__.update().where(Message.id == ids["b"])
                        .values(received_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
        expire_quarantined(session, datetime(2021, 1, 1, tzinfo=timezone.utc))
    run = _cli(tmp_path, imap=imap, db_url=sqlite_url)
    assert {r["id"]: r["state"] for r in _listed(run)}[ids["b"]] == EMPTIED

    result = run("quarantine", "retry", str(ids["a"]), str(ids["b"]), str(ids["c"]), "999999")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: quarantined mail {ids['a']}: no copy with its content in 'Quarantine' of "
        f"{mailbox_name(app.settings.imap)} (moved or deleted by hand?)",
        f"Error: quarantined mail {ids['b']}: its bytes were emptied by retention (retention.quarantine_days): "
        "there is no copy to recognise it by",
        "Error: no quarantined mail 999999"]
    assert result.stdout.startswith(f"{ids['c']}: moved 1 copy")
    assert (folder_count(dovecot, "Quarantine"), folder_count(dovecot, "INBOX")) == (1, 1)  # b's stays
    assert [e.message_pk for e in _events(app, "quarantine_retried")] == [ids["c"]]


def _rows(app) -> list[Message]:
    with app.sessions() as session:
        return list(session.execute(select(Message).where(Message.quarantine_reason.is_not(None))
                                    .order_by(Message.id)).scalars())


@pytest.mark.dovecot
def test_a_dry_run_finds_the_copies_and_changes_nothing(make_app, dovecot, smtp_sink, sqlite_url, tmp_path):
    """`retry --all --dry-run` says what it would move and where; the mail stays in the
    quarantine folder, unseen, and no event is recorded."""
    imap = imap_config(dovecot)
    app = make_app(imap=imap, smtp={"port": smtp_sink.port}, db_url=sqlite_url, limits={"max_message_bytes": LIMIT})
    append_all(dovecot, [complaint(body="x" * BIG), complaint(sender="els@example.be", body="y" * BIG)])
    assert app.poll_once().quarantined == 2
    run = _cli(tmp_path, imap=imap, db_url=sqlite_url)

    result = run("quarantine", "retry", "--all", "--dry-run")
    assert result.exit_code == 0 and result.output.count("would move 1 copy from 'Quarantine'") == 2
    assert (folder_count(dovecot, "Quarantine"), folder_count(dovecot, "INBOX")) == (2, 0)
    assert _events(app, "quarantine_retried") == [] and {r["state"] for r in _listed(run)} == {QUARANTINED}
    client = dovecot.client()
    client.select_folder("Quarantine", readonly=True)
    assert client.search(["SEEN"]) == []
    client.logout()
    assert run("quarantine", "retry", "--all").exit_code == 0
    assert (folder_count(dovecot, "Quarantine"), folder_count(dovecot, "INBOX")) == (0, 2)
    nothing = run("quarantine", "retry", "--all")
    assert nothing.exit_code == 0 and nothing.output == "no quarantined mail to retry\n"


@pytest.mark.dovecot
def test_two_mailboxes_each_mail_goes_back_to_its_own_inbox_and_no_other_mail_moves(make_app, dovecot, smtp_sink,
                                                                                    db_url, tmp_path):
    """A mail quarantined in each of two mailboxes goes back to its own inbox. A mail with the
    same Message-ID but other content, and a mail of the same size without Message-ID, also in
    the quarantine folders, stay there. The mail without Message-ID is read after the retry
    (its quarantine row held the identity it is recorded under)."""
    first = imap_config(dovecot) | {"host": "127.0.0.1", "security": "none"}
    second = first | {"folder": "Plaintes", "processed_folder": "PlaintesDone",
                      "quarantine_folder": "PlaintesQuarantine"}
    config = {"mailboxes": [first, second], "smtp": {"port": smtp_sink.port}, "db_url": db_url}
    app = make_app(limits={"max_message_bytes": LIMIT}, **config)
    client = dovecot.client()
    client.create_folder("Plaintes")
    client.logout()
    with_id = complaint(body="x" * BIG, message_id="<tweemaal@mail.example.be>")
    without_id = _no_message_id(complaint(sender="marie@example.be", name="Marie Dubois", body="y" * BIG))
    append_all(dovecot, [with_id])
    append_all(dovecot, [without_id], folder="Plaintes")
    assert app.poll_once().quarantined == 2 and app.send_outbox().sent == 2
    decoys = [complaint(body="z" * BIG, message_id="<tweemaal@mail.example.be>"),
              without_id.replace(b"y" * 10, b"w" * 10, 1)]
    append_all(dovecot, decoys[:1], folder="Quarantine")
    append_all(dovecot, decoys[1:], folder="PlaintesQuarantine")
    run = _cli(tmp_path, **config)
    listed = {r["from_email"]: r for r in _listed(run)}
    assert listed["marie@example.be"]["mailbox"] == mailbox_name(app.settings.all_mailboxes[1])

    result = run("quarantine", "retry", *(str(r["id"]) for r in listed.values()))
    assert result.exit_code == 0 and "'PlaintesQuarantine'" in result.output and "'Plaintes'" in result.output
    assert [folder_count(dovecot, f) for f in ("INBOX", "Plaintes", "Quarantine", "PlaintesQuarantine")] == [1, 1, 1, 1]

    raised = make_app(limits={"max_message_bytes": RAISED}, **config)
    report = raised.poll_once()
    assert (report.processed, report.quarantined, report.duplicates) == (2, 0, 0)
    assert raised.send_outbox().sent == 2 and counts(raised)["cases"] == 2
    assert sorted(_templates(raised)) == ["ack_investigation"] * 2 + ["undeliverable"] * 2
    assert {r["from_email"]: r["state"] for r in _listed(run)} == {
        "jan.peeters@example.be": RESOLVED, "marie@example.be": RESOLVED}


# -- listing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_list_filters_by_day_and_reason_newest_first(make_app, db_url, tmp_path):
    """`--since` is a local day, `--reason` a part of the reason in any case, `--limit` caps
    the list; newest first; the text shows local times with their offset, the JSON UTC."""
    app = make_app(db_url=db_url, limits={"max_message_bytes": LIMIT})
    for days, sender in ((0, "old"), (1, "mid"), (2, "new")):
        app.intake.clock = lambda days=days: T0 + timedelta(days=days)
        process_files(app.intake, [complaint(sender=f"{sender}@example.be", body=sender * BIG)])
    app.intake.clock = lambda: T0 + timedelta(days=3)
    process_files(app.intake, [b"\r\n"])  # an empty message: another reason
    run = _cli(tmp_path, db_url=db_url)

    assert [r["from_email"] for r in _listed(run, "--reason", "EXCEEDS")] == [
        "new@example.be", "mid@example.be", "old@example.be"]
    assert [r["from_email"] for r in _listed(run, "--reason", "exceeds", "--since", "2026-11-24")] == [
        "new@example.be", "mid@example.be"]
    [newest] = _listed(run, "--limit", "1")
    assert newest["reason"] == "empty message" and newest["received_at"] == "2026-11-26T10:00:00+00:00"
    assert newest["mailbox"] is None and newest["state"] == QUARANTINED
    assert "2026-11-26 11:00 +01:00" in run("quarantine", "list", "--limit", "1").output
    refused = run("quarantine", "retry", str(newest["id"]))
    assert refused.exit_code == 1 and "did not come from a mailbox" in refused.stderr


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_retried_mail_without_message_id_is_read_once_and_its_copy_after_that_is_a_duplicate(make_app, db_url):
    """The quarantine row of a mail without Message-ID held the identity its reading is
    recorded under: before, the reading failed on the unique identity and the mail went back
    to quarantine for good. A third copy is a duplicate of the reading, not read again."""
    raw = _no_message_id(complaint(body="x" * BIG))
    small = make_app(db_url=db_url, limits={"max_message_bytes": LIMIT})
    with small.sessions.begin() as session:
        assert small.intake.process(session, raw, Source("box", 1, 1)).disposition == "quarantined"
    raised = make_app(db_url=db_url, limits={"max_message_bytes": RAISED})
    with raised.sessions.begin() as session:
        outcome = raised.intake.process(session, raw, Source("box", 1, 2))
    assert outcome.disposition == "processed" and outcome.case_ref is not None
    with raised.sessions.begin() as session:
        assert raised.intake.process(session, raw, Source("box", 1, 3)).disposition == "duplicate"
    [quarantined] = _rows(raised)
    assert quarantined.kind == "unreadable" and "exceeds" in (quarantined.quarantine_reason or "")
    assert counts(raised)["cases"] == 1 and counts(raised)["incoming"] == 2
