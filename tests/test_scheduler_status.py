"""`mailbot status [--json] [--check]`: last poll per mailbox, queues, quarantine, errors, health."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml
from click.testing import CliRunner

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Event, MailboxState
from mailbot.fetch import mailbox_name
from test_digest_seed import seed


def _status(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), "status", *args], obj={}, catch_exceptions=False)


def test_status_reports_queues_and_fails_the_check_without_a_recent_poll(tmp_path, make_app, sqlite_url):
    """Before any poll --check exits 1; after a fresh poll it exits 0; the JSON carries the outbox
    queue sizes, the quarantine count and the last errors."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
        session.add(Event(type="poll_failed", detail={"mailbox": "x", "error": "IMAP connection refused"}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=sqlite_url)))
    assert _status(config, "--check").exit_code == 1
    with app.sessions.begin() as session:
        session.add(MailboxState(mailbox=mailbox_name(app.settings.imap), last_poll_at=datetime.now(timezone.utc)))
    result = _status(config, "--json", "--check")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["healthy"] and data["mailboxes"][0]["age_seconds"] < 60
    assert data["outbox"] == {"pending": 0, "held": 1, "failed": 1}
    assert data["quarantined"] == 1
    assert data["last_errors"][0]["type"] == "poll_failed"
    text = _status(config).output
    assert "held" in text and "healthy" in text and "test-password" not in text


def test_status_shows_replies_waiting_on_an_unreachable_smtp_server(tmp_path, make_app, sqlite_url):
    """The README promises the last SMTP error in `mailbot status`: a reply that could not be
    handed over (nothing listens on the SMTP port) shows with its error and since when it waits."""
    from conftest import complaint
    from mailbot.pipeline import process_files

    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint()])
    app.send_outbox()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=sqlite_url)))
    sending = json.loads(_status(config, "--json").output)["sending"]
    assert sending["retrying"] == 1 and sending["oldest_pending_at"].endswith("+00:00")
    assert "SMTP" in sending["last_error"]
    text = _status(config).output
    assert "smtp: 1 to retry, the oldest waiting since" in text and sending["last_error"] in text
