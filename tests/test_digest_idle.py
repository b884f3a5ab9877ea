"""Open cases nobody touched for `digest.idle_after_days`: the digest lists each on the day it
crosses the threshold and at every further multiple while it stays idle (local calendar days,
like every digest query), and `mailbot status` counts them all. Retention only counts from
closing, so an open case nobody closes keeps its personal data for ever unless staff hear of it."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import inspect, select

from conftest import base_config, complaint
from mailbot import digest
from mailbot.cli import cli
from mailbot.config import settings_from_mapping
from mailbot.db import Case
from mailbot.digest_data import collect
from mailbot.digest_items import INFO_LISTED
from mailbot.errors import ConfigError
from mailbot.pipeline import process_files

BXL = ZoneInfo("Europe/Brussels")
DAY = date(2026, 11, 23)


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), BXL).astimezone(timezone.utc)


def _case(session, ref: str, last: datetime, *, status: str = "open", team: str | None = "onderwijs",
          investigator: str | None = "An Peeters") -> None:
    """A case whose last activity (opened, mail in, closed or reopened) was at `last`."""
    session.add(Case(ref=ref, status=status, citizen_email=f"{ref.lower()}@example.be", citizen_name=f"Burger {ref[-3:]}",
                     subject=f"Klacht {ref}", team=team, investigator_name=investigator,
                     investigator_email="an.peeters@vlaamseombudsdienst.be" if investigator else None,
                     created_at=last - timedelta(days=3), updated_at=last,
                     closed_at=last if status == "closed" else None))


def _idle(app, day: date = DAY, team: str | None = None):
    with app.sessions() as session:
        data = collect(session, app.settings, day, team=team)
    [section] = [s for s in data.info if s.key == "idle_open"]
    return section, [i for _, group in section.groups for i in group]


@pytest.fixture
def app(make_app, db_url):
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        _case(session, "VO-2026-000090", _local(DAY - timedelta(days=90), 15))
        _case(session, "VO-2026-000089", _local(DAY - timedelta(days=89), 15))
        _case(session, "VO-2026-000091", _local(DAY - timedelta(days=91), 15))
        _case(session, "VO-2026-000180", _local(DAY - timedelta(days=180), 9), investigator=None)
        _case(session, "VO-2026-000270", _local(DAY - timedelta(days=270), 9), team="wonen")
        _case(session, "VO-2026-000900", _local(DAY - timedelta(days=90), 10), status="closed")
        # Local midnight is the day's edge, not UTC's: 00:30 in Brussels is still the day before in UTC.
        _case(session, "VO-2026-000001", _local(DAY - timedelta(days=90), 0, 30))
        _case(session, "VO-2026-000002", _local(DAY - timedelta(days=91), 23, 30))
    return app


def test_listed_on_the_day_it_crosses_and_at_every_multiple(app):
    section, items = _idle(app)
    assert [i.ref for i in items] == ["VO-2026-000270", "VO-2026-000180", "VO-2026-000001", "VO-2026-000090"]
    assert section.count == 4
    by_ref = {i.ref: i for i in items}
    assert by_ref["VO-2026-000090"].detail == (
        f"laatste activiteit {DAY - timedelta(days=90):%d-%m-%Y}, 90 dagen zonder activiteit")
    assert by_ref["VO-2026-000180"].detail.endswith("180 dagen zonder activiteit")
    assert by_ref["VO-2026-000090"].who == "Burger 090 <vo-2026-000090@example.be>"
    assert by_ref["VO-2026-000090"].extras == ("onderzoeker: An Peeters",
                                               "afgehandeld? mailbot case close VO-2026-000090")
    assert by_ref["VO-2026-000180"].extras[0] == "geen onderzoeker toegewezen"
    # The days before and after list the cases that cross then; none is listed twice.
    assert [i.ref for i in _idle(app, DAY - timedelta(days=1))[1]] == ["VO-2026-000091", "VO-2026-000002"]
    assert [i.ref for i in _idle(app, DAY + timedelta(days=1))[1]] == ["VO-2026-000089"]


def test_a_team_digest_lists_only_the_teams_idle_cases(app):
    _, items = _idle(app, team="wonen")
    assert [i.ref for i in items] == ["VO-2026-000270"]


def test_the_digest_says_what_to_do(app):
    rendered = digest.build(app.sessions, app.settings, DAY)
    for body in (rendered.text, rendered.html):
        assert "Open dossiers al 90 dagen (of een veelvoud daarvan) zonder activiteit (4)" in body
        assert "sluit het dan af met mailbot case close REF" in body
        assert "mailbot case close VO-2026-000090" in body and "onderzoeker: An Peeters" in body
    assert "    Open dossiers al 90 dagen (of een veelvoud daarvan) zonder activiteit: 4" in rendered.text


def test_mail_on_the_case_starts_the_count_again(make_app, sqlite_url):
    """Through the pipeline: the citizen's follow-up 30 days after the complaint is activity; the
    case is listed 90 days after the follow-up, not 90 days after the complaint."""
    app = make_app(db_url=sqlite_url)
    opened, followed = _local(date(2026, 3, 2), 10), _local(date(2026, 4, 1), 10)
    app.intake.clock = app.intake.matching.clock = lambda: opened
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    app.intake.clock = app.intake.matching.clock = lambda: followed
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", body=f"Nog geen nieuws over {ref}?")])
    assert _idle(app, date(2026, 3, 2) + timedelta(days=90))[1] == []
    assert [i.ref for i in _idle(app, date(2026, 4, 1) + timedelta(days=90))[1]] == [ref]


def test_the_list_is_capped_and_counts_them_all(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        for n in range(INFO_LISTED + 5):
            _case(session, f"VO-2026-{n + 1:06d}", _local(DAY - timedelta(days=90), 8, n))
    section, items = _idle(app)
    assert section.count == INFO_LISTED + 5 and len(items) == INFO_LISTED
    assert section.groups[-1] == ("… en nog 5", [])


def test_a_weekly_threshold_over_cases_open_for_decades_still_builds(make_app, db_url):
    """Every multiple of 7 days back to 1990 is its own day range (1,900 of them): more than
    one SQL expression may hold on SQLite, so they are asked in groups."""
    app = make_app(db_url=db_url, digest={"idle_after_days": 7})
    with app.sessions.begin() as session:
        _case(session, "VO-1990-000001", _local(DAY - timedelta(days=7 * 1900), 9))
        _case(session, "VO-2000-000001", _local(DAY - timedelta(days=7 * 1400), 9))
        _case(session, "VO-2000-000002", _local(DAY - timedelta(days=7 * 1400 + 1), 9))
        _case(session, "VO-2026-000007", _local(DAY - timedelta(days=7), 9))
    section, items = _idle(app)
    assert [i.ref for i in items] == ["VO-1990-000001", "VO-2000-000001", "VO-2026-000007"]
    assert section.count == 3


def test_zero_turns_the_section_off(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url, digest={"idle_after_days": 0})
    with app.sessions.begin() as session:
        _case(session, "VO-2026-000090", _local(DAY - timedelta(days=90), 15))
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    assert "idle_open" not in [s.key for s in data.info]
    assert "zonder activiteit" not in digest.render(app.settings, data).text


def test_zero_or_a_week_to_ten_years_is_accepted():
    for days in (0, 7, 90, 3650):
        assert settings_from_mapping(base_config(digest={"idle_after_days": days})).digest.idle_after_days == days
    assert settings_from_mapping(base_config()).digest.idle_after_days == 90


@pytest.mark.parametrize("days", [1, 6, 3651])
def test_a_threshold_under_a_week_or_over_ten_years_is_refused(days):
    with pytest.raises(ConfigError, match="idle_after_days"):
        settings_from_mapping(base_config(digest={"idle_after_days": days}))


def test_status_counts_every_idle_open_case(make_app, db_url, tmp_path):
    """Also the ones between two multiples, whose day in the digest is past: text and --json."""
    app = make_app(db_url=db_url)
    today = datetime.now(BXL).date()
    with app.sessions.begin() as session:
        # A day away from the threshold either side: the same count should the CLI run after midnight.
        _case(session, "VO-2026-000001", _local(today - timedelta(days=91), 12))
        _case(session, "VO-2026-000002", _local(today - timedelta(days=95), 12))
        _case(session, "VO-2026-000003", _local(today - timedelta(days=400), 12))
        _case(session, "VO-2026-000004", _local(today - timedelta(days=88), 12))
        _case(session, "VO-2026-000005", _local(today - timedelta(days=400), 12), status="closed")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url)))

    def status(*args: str):
        return CliRunner().invoke(cli, ["--config", str(config), "status", *args], obj={}, catch_exceptions=False)

    data = json.loads(status("--json").output)
    assert (data["idle_open_cases"], data["idle_after_days"]) == (3, 90)
    assert ("idle open cases (no activity for 90 days or more): 3 (close finished ones: mailbot case close REF)"
            in status().output.splitlines())


def test_the_migration_indexes_open_cases_by_last_activity(make_app, db_url):
    """The digest and status read ranges of (status, updated_at): an index, not a scan of every case."""
    app = make_app(db_url=db_url)
    indexes = {i["name"]: i["column_names"] for i in inspect(app.engine).get_indexes("case")}
    assert indexes["ix_case_status_updated"] == ["status", "updated_at"]
