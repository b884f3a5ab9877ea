"""`mailbot digest --send` is the morning job (staff and teams, once a day; --force sends
again), and one bad digest recipient never keeps the digest from the others (audit
findings 9 and 7)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from mailbot import digest
from mailbot.cli import cli
from mailbot.db import Event, Outbox
from test_digest_seed import seed

DAY = date(2026, 11, 23)
STAFF = ["onthaal@vlaamseombudsdienst.be", "directie@vlaamseombudsdienst.be"]
TEAMS = {"wonen": ["wonen@vlaamseombudsdienst.be"], "onderwijs": ["onderwijs@vlaamseombudsdienst.be"]}


@pytest.fixture
def config(tmp_path, make_app, sqlite_url, smtp_sink) -> Path:
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=sqlite_url, smtp_port=smtp_sink.port,
                                               digest={"recipients": STAFF, "teams": TEAMS})))
    return path


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), "digest", *args], obj={}, catch_exceptions=False)


def _received(smtp_sink) -> list[str]:
    return sorted(m["To"] for m in smtp_sink.parsed())


def test_send_goes_to_staff_and_every_team_once_a_day(config, smtp_sink):
    """`digest --send` sends what `mailbot run` sends: every recipient and every team's
    digest; run again for the same day it sends nothing and says so."""
    first = _run(config, "--date", "2026-11-23", "--send")
    assert first.exit_code == 0, first.output
    assert "queued for 4 recipient(s); sent 4" in first.output
    assert _received(smtp_sink) == sorted(STAFF + TEAMS["wonen"] + TEAMS["onderwijs"])
    subjects = {m["To"]: m["Subject"] for m in smtp_sink.parsed()}
    assert "team wonen" in subjects["wonen@vlaamseombudsdienst.be"]

    second = _run(config, "--date", "2026-11-23", "--send")
    assert second.exit_code == 0
    assert "already sent" in second.output and "--force" in second.output
    assert len(smtp_sink.parsed()) == 4


def test_send_after_the_scheduled_job_sends_nothing(config, smtp_sink, make_app):
    """The scheduled job and `--send` share the day's Message-IDs: no duplicate."""
    from mailbot.config import load_settings

    app = make_app(db_url=load_settings(config).database.url, smtp={"port": smtp_sink.port},
                   digest={"recipients": STAFF, "teams": TEAMS})
    assert app.send_digest(DAY) == 4
    assert "already sent" in _run(config, "--date", "2026-11-23", "--send").output
    assert len(smtp_sink.parsed()) == 4


def test_force_sends_again_on_purpose(config, smtp_sink):
    """`--send --force` sends the day's digest again to everyone; --force alone is refused."""
    _run(config, "--date", "2026-11-23", "--send")
    forced = _run(config, "--date", "2026-11-23", "--send", "--force")
    assert forced.exit_code == 0 and "queued for 4 recipient(s); sent 4" in forced.output
    mails = smtp_sink.parsed()
    assert len(mails) == 8 and len({m["Message-ID"] for m in mails}) == 8
    alone = _run(config, "--date", "2026-11-23", "--force", "--print")
    assert alone.exit_code == 2 and "--force goes with --send" in alone.output


def test_send_for_one_team_only(config, smtp_sink):
    """`--send --team T` sends that team's digest only, once; an unknown team is a usage error."""
    assert "queued for 1 recipient(s); sent 1" in _run(config, "--date", "2026-11-23", "--send",
                                                         "--team", "wonen").output
    assert _received(smtp_sink) == ["wonen@vlaamseombudsdienst.be"]
    assert "already sent" in _run(config, "--date", "2026-11-23", "--send", "--team", "wonen").output
    unknown = _run(config, "--date", "2026-11-23", "--send", "--team", "sport")
    assert unknown.exit_code == 2 and "'sport' is no team of digest.teams or of the rules" in unknown.output
    # The full run afterwards still reaches everyone else, and wonen not twice.
    _run(config, "--date", "2026-11-23", "--send")
    assert _received(smtp_sink) == sorted(STAFF + TEAMS["wonen"] + TEAMS["onderwijs"])


def test_a_bad_recipient_skips_only_that_recipient(make_app, sqlite_url, caplog):
    """Should an address that cannot go in To: get past the config check, queue() leaves
    out that one recipient (logged, a digest_failed event) and queues the others."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    bad = "Onthaal <onthaal@vlaamseombudsdienst.be>"
    settings = app.settings.model_copy(update={"digest": app.settings.digest.model_copy(
        update={"recipients": [bad, "directie@vlaamseombudsdienst.be"]})})  # not validated
    now = datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc)
    with caplog.at_level(logging.ERROR, logger="mailbot.digest"):
        assert digest.queue(app.sessions, settings, DAY, now) == 1
    with app.sessions() as session:
        rows = session.execute(select(Outbox.recipient).where(Outbox.template == "digest")).scalars()
        assert list(rows) == ["directie@vlaamseombudsdienst.be"]
        [event] = session.execute(select(Event).where(Event.type == "digest_failed")).scalars()
    assert event.detail["recipient"] == bad and event.detail["day"] == "2026-11-23"
    assert "unsupported local part" in event.detail["error"]
    assert bad in caplog.text
