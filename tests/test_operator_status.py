"""What an operator reads in `mailbot status` and `mailbot outbox list` during and after an
SMTP or IMAP outage: the truth of now, not the first error of the outage."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import yaml
from click.testing import CliRunner
from sqlalchemy import select, update

from conftest import base_config, complaint
from mailbot.cli import cli
from mailbot.cli_outbox import clip
from mailbot.db import Event, MailboxState, Outbox
from mailbot.fetch import mailbox_name
from mailbot.operational_status import max_reply_wait
from mailbot.pipeline import process_files
from mailbot.views import local_time

BRUSSELS = ZoneInfo("Europe/Brussels")  # schedule.timezone's default: text output's times


def _cli(tmp_path, db_url, smtp_port=1):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(smtp={"port": smtp_port}, db_url=db_url)))

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, catch_exceptions=False)
    return run


def _polled_now(app) -> None:
    with app.sessions.begin() as session:
        session.merge(MailboxState(mailbox=mailbox_name(app.settings.imap), last_poll_at=datetime.now(timezone.utc)))


def _queued_minutes_ago(app, minutes: int) -> None:
    """The waiting replies were queued `minutes` ago (the outage began then)."""
    with app.sessions.begin() as session:
        session.execute(update(Outbox).where(Outbox.status == "pending")
                        .values(created_at=datetime.now(timezone.utc) - timedelta(minutes=minutes)))


def test_check_fails_when_replies_wait_on_an_unreachable_smtp_server(make_app, sqlite_url, tmp_path):
    """The mailbox is polled in time, but nothing listens on the SMTP port: while the reply has
    waited 5 minutes `status --check` passes; after 13 minutes it fails (exit 1) and says why."""
    app = make_app(db_url=sqlite_url)  # smtp port 1: connection refused
    process_files(app.intake, [complaint()])
    assert app.send_outbox().retried == 1
    _polled_now(app)
    run = _cli(tmp_path, sqlite_url)
    _queued_minutes_ago(app, 5)
    assert run("status", "--check").exit_code == 0
    _queued_minutes_ago(app, 13)
    result = run("status", "--check")
    assert result.exit_code == 1
    assert "UNHEALTHY: a reply has waited 13 min to be sent (more than 10 min)" in result.output
    data = json.loads(run("status", "--json").output)
    assert data["healthy"] is False and data["max_reply_wait_seconds"] == 600
    assert data["problems"] == ["a reply has waited 13 min to be sent (more than 10 min)"]
    assert 13 * 60 <= data["sending"]["oldest_pending_seconds"] < 14 * 60


def test_status_shows_when_a_waiting_reply_is_tried_next(make_app, sqlite_url, tmp_path):
    """SMTP is down: status shows the waiting reply's next try (local time in the text, UTC in
    the JSON) and the error that holds it."""
    down = make_app(db_url=sqlite_url)  # smtp port 1: connection refused
    process_files(down.intake, [complaint()])
    down.send_outbox()
    with down.sessions() as session:
        next_try = session.execute(select(Outbox.next_attempt_at).where(Outbox.status == "pending")).scalar_one()
    run = _cli(tmp_path, sqlite_url)
    sending = json.loads(run("status", "--json").output)["sending"]
    assert sending["next_attempt_at"] == next_try.replace(tzinfo=timezone.utc).isoformat()
    assert sending["last_error"] and sending["last_sent_at"] is None
    assert f"its next try at {local_time(next_try, BRUSSELS)}" in run("status").output


def test_when_the_server_answers_again_the_waiting_replies_go_at_once(make_app, smtp_sink, sqlite_url, tmp_path):
    """SMTP was down for the first reply and is back for the second: the first does not wait out
    its back-off but goes in the same round, and status no longer shows the outage's error."""
    down = make_app(db_url=sqlite_url)
    process_files(down.intake, [complaint()])
    down.send_outbox()
    up = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    process_files(up.intake, [complaint(sender="an.peeters@example.be", name="An Peeters")])
    report = up.send_outbox()
    assert (report.sent, report.woken) == (2, 1) and len(smtp_sink.messages) == 2
    with up.sessions() as session:
        assert session.execute(select(Outbox.status, Outbox.last_error)).all() == [("sent", None)] * 2
    run = _cli(tmp_path, sqlite_url)
    sending = json.loads(run("status", "--json").output)["sending"]
    assert sending["last_error"] is None and sending["last_sent_at"] is not None
    last_sent = local_time(datetime.fromisoformat(sending["last_sent_at"]), BRUSSELS)
    assert f"smtp: last reply accepted by the server at {last_sent}" in run("status").output


def test_a_poll_failure_shows_its_recovery(make_app, db_url, tmp_path):
    """A poll failure is listed with the moment it ended: the scheduler's recovery event, or,
    for `poll --once` (no event), any successful poll of that mailbox since."""
    app = make_app(db_url=db_url)
    name = mailbox_name(app.settings.imap)
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    with app.sessions.begin() as session:
        session.add_all([
            Event(type="poll_failed", detail={"mailbox": name, "error": "certificate verify failed"}, created_at=t0),
            Event(type="poll_recovered", detail={"mailbox": "other@host:993/INBOX"},
                  created_at=t0 + timedelta(minutes=1)),
            Event(type="poll_recovered", detail={"mailbox": name}, created_at=t0 + timedelta(minutes=5)),
            Event(type="poll_failed", detail={"mailbox": name, "error": "Connection refused"},
                  created_at=t0 + timedelta(minutes=10)),
        ])
    run = _cli(tmp_path, db_url)
    later, earlier = json.loads(run("status", "--json").output)["last_errors"]
    assert earlier["recovered_at"] == (t0 + timedelta(minutes=5)).isoformat()
    assert later["error"] == "Connection refused" and later["recovered_at"] is None
    polled = t0 + timedelta(minutes=20)
    with app.sessions.begin() as session:
        session.add(MailboxState(mailbox=name, last_poll_at=polled))
    later = json.loads(run("status", "--json").output)["last_errors"][0]
    assert later["recovered_at"] == polled.isoformat()
    assert f"poll_failed: Connection refused (recovered at {local_time(polled, BRUSSELS)})" in run("status").output


def test_max_reply_wait_follows_a_slow_outbox():
    """Ten minutes, or three outbox runs and a minute when the outbox runs less often."""
    assert max_reply_wait(30) == 600 and max_reply_wait(600) == 1860


def test_outbox_list_gives_zoned_times_and_cuts_errors_between_words(make_app, sqlite_url, tmp_path):
    """`outbox list --json` gives created_at and the next try with their time zone; the table
    shows the next try in local time and cuts a long SMTP error at a word boundary, marked with
    an ellipsis."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint()])
    app.send_outbox()
    long_error = ("SMTP delivery failed: SMTPConnectError: Error connecting to 127.0.0.1 on port 1: "
                  "Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 1)")
    with app.sessions.begin() as session:
        session.execute(update(Outbox).values(last_error=long_error))
    run = _cli(tmp_path, sqlite_url)
    [row] = json.loads(run("outbox", "list", "--status", "pending", "--json").output)
    assert datetime.fromisoformat(row["created_at"]).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(row["next_attempt_at"]).utcoffset() == timedelta(0)
    line = run("outbox", "list", "--status", "pending").output.strip()
    shown = line.split(") ", 1)[1]
    assert shown.endswith("…") and long_error.startswith(shown[:-1])
    assert long_error[len(shown) - 1] == " "  # the cut falls between two words
    assert f"next try {local_time(datetime.fromisoformat(row['next_attempt_at']), BRUSSELS)})" in line


def test_clip_keeps_short_text_and_cuts_long_text_at_a_word():
    """Short text is kept whole (on one line); a long one loses its last partial word."""
    assert clip("connection\nrefused", 40) == "connection refused"
    assert clip("Connect call failed to the server", 12) == "Connect call…"
    assert clip("Connect call failed", 13) == "Connect call…"
    assert clip("Aaaaaaaaaaaaaaaaaaaa", 8) == "Aaaaaaaa…"


def test_a_failed_poll_once_is_told_by_status(make_app, sqlite_url, tmp_path):
    """`poll --once` from cron against an IMAP server that does not answer: the run fails with
    one line, and `mailbot status` lists the failure, as it does for `mailbot run`."""
    app = make_app(db_url=sqlite_url)  # imap port 1: connection refused
    run = _cli(tmp_path, sqlite_url)
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "poll", "--once"], obj={})
    assert result.exit_code != 0
    [error] = json.loads(run("status", "--json").output)["last_errors"]
    assert error["type"] == "poll_failed" and error["recovered_at"] is None
    assert "refused" in error["error"].lower() or "connect" in error["error"].lower()
    with app.sessions() as session:
        [event] = session.execute(select(Event).where(Event.type == "poll_failed")).scalars()
        assert event.detail["mailbox"] == mailbox_name(app.settings.imap)
