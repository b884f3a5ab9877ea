"""Moments in the database: stored as UTC whatever zone they come in (SQLite keeps a datetime's
wall time and drops its offset), and a mail's Date the database could not give back is not kept."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml
from alembic import command
from click.testing import CliRunner
from sqlalchemy import select, text

from conftest import base_config, complaint
from mailbot.cli import cli
from mailbot.db import Case, Message, as_utc
from mailbot.digest_data import collect
from mailbot.migrate import alembic_config
from mailbot.pipeline import process_files

LIMIT = 4096  # limits.max_message_bytes: a longer complaint is quarantined
DATE = b"Date: Mon, 23 Nov 2026 10:00:00 +0100"  # the Date `complaint()` writes


def _cli(tmp_path: Path, db_url: str, **config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=db_url, **config)))

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(path), *args], obj={}, catch_exceptions=False)
    return run


def test_quarantine_list_since_starts_at_the_office_midnight(make_app, db_url, tmp_path):
    """`quarantine list --since 2026-11-24` lists mail quarantined at 00:30 that day in Brussels
    (23:30 UTC the day before), not the one at 23:59 on the 23rd. On SQLite the local midnight
    was compared as if it were UTC: mail of the day's first hour was left out."""
    app = make_app(db_url=db_url, limits={"max_message_bytes": LIMIT})
    for sender, at in (("late@example.be", datetime(2026, 11, 23, 22, 59, tzinfo=timezone.utc)),
                       ("early@example.be", datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc))):
        app.intake.clock = lambda at=at: at
        process_files(app.intake, [complaint(sender=sender, body="x" * 2 * LIMIT)])
    run = _cli(tmp_path, db_url, limits={"max_message_bytes": LIMIT})
    result = run("quarantine", "list", "--json", "--since", "2026-11-24")
    assert result.exit_code == 0, result.output
    assert [row["from_email"] for row in json.loads(result.output)] == ["early@example.be"]


def test_a_mail_date_in_another_zone_is_stored_as_its_moment(make_app, db_url):
    """A Date of 10:00 +0100 is 09:00 UTC, also read back from SQLite (which kept 10:00 and
    gave it back as UTC: an hour off, two in summer)."""
    app = make_app(db_url=db_url)
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        sent_at = session.execute(select(Message.sent_at).where(Message.direction == "in")).scalar_one()
    assert as_utc(sent_at) == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def test_a_date_after_the_year_9999_in_utc_leaves_the_case_readable(make_app, db_url, tmp_path):
    """Date: 31 Dec 9999 23:59:59 -1200 is a moment of the year 10000 in UTC. PostgreSQL stored
    it, and every query loading the message failed (psycopg: "timestamp too large"): the case,
    `case list --json` and the digest of the day. Such a Date is kept as none, like an
    unreadable one; the mail is recorded as usual."""
    now = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    app = make_app(db_url=db_url, clock=lambda: now)
    process_files(app.intake, [complaint().replace(DATE, b"Date: Fri, 31 Dec 9999 23:59:59 -1200")])
    with app.sessions() as session:
        [message] = session.execute(select(Message).where(Message.direction == "in")).scalars()
        assert message.sent_at is None and as_utc(message.received_at) == now
        assert session.execute(select(Case.ref)).scalar_one().startswith("VO-2026-")
        assert collect(session, app.settings, date(2026, 11, 23)).totals["received"] == 1
    listed = _cli(tmp_path, db_url)("case", "list", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == 1, listed.output


def test_a_forwarded_messages_date_is_stored_as_its_moment(make_app, db_url):
    """The agency's date in a forward the citizen sends on ("Verzonden: 30 november 2026 09:15",
    Brussels time, no zone) is 08:15 UTC in the database, also on SQLite."""
    app = make_app(db_url=db_url)
    body = ("Zie hieronder het antwoord van de dienst.\n\n"
            "-----Oorspronkelijk bericht-----\n"
            "Van: Departement Onderwijs <info@onderwijs.vlaanderen.be>\n"
            "Verzonden: maandag 30 november 2026 09:15\n"
            "Aan: Jan Peeters <jan.peeters@example.be>\n"
            "Onderwerp: Uw aanvraag studietoelage\n\n"
            "Geachte, uw aanvraag is in behandeling.\n")
    process_files(app.intake, [complaint(subject="Fw: Uw aanvraag studietoelage", body=body)])
    with app.sessions() as session:
        original = session.execute(select(Message.original_date).where(Message.direction == "in")).scalar_one()
    assert original is not None
    assert as_utc(original) == datetime(2026, 11, 30, 8, 15, tzinfo=timezone.utc)


def test_a_forwarded_date_after_the_year_9999_in_utc_is_kept_as_none(make_app, db_url):
    """The same for the date of a forwarded agency message: the forward is threaded and
    readable, without its date."""
    app = make_app(db_url=db_url)
    body = ("Zie hieronder.\n\n-----Original Message-----\n"
            "From: Departement Onderwijs <info@onderwijs.vlaanderen.be>\n"
            "Sent: Fri, 31 Dec 9999 23:59:59 -1200\n"
            "To: Jan Peeters <jan.peeters@example.be>\n"
            "Subject: Uw aanvraag studietoelage\n\nGeachte, uw aanvraag is in behandeling.\n")
    process_files(app.intake, [complaint(subject="Fw: Uw aanvraag studietoelage", body=body)])
    with app.sessions() as session:
        [message] = session.execute(select(Message).where(Message.direction == "in")).scalars()
        assert message.original_sender and message.original_date is None


@pytest.mark.postgres
def test_a_far_date_stored_by_an_older_release_is_cleared_by_the_upgrade(make_app, pg_url):
    """A message whose Date the older release stored in the year 10000 (PostgreSQL) made every
    digest fail; migration 0010 clears such dates and the digest is built again."""
    app = make_app(db_url=pg_url)
    process_files(app.intake, [complaint()])
    url = app.engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url), "0009")
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE message SET sent_at = '10000-01-01 11:59:59+00', "
                          "original_date = '10000-01-01 11:59:59+00'"))
    command.upgrade(alembic_config(url), "head")
    with app.sessions() as session:
        [message] = session.execute(select(Message).where(Message.direction == "in")).scalars()
        assert message.sent_at is None and message.original_date is None
        collect(session, app.settings, datetime.now(timezone.utc).date())
