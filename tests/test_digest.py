"""The daily triage digest: golden files for a seeded day, one assertion per section, escaping,
the team filter and sending through the outbox. Set UPDATE_GOLDEN=1 to rewrite the golden files."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
import yaml
from sqlalchemy import select

from conftest import base_config, complaint
from mailbot import digest
from mailbot.cli import cli
from mailbot.db import Case
from mailbot.digest_data import SUBJECT_ONLY, collect
from mailbot.pipeline import process_files
from servers import IN_CI
from test_digest_seed import seed

GOLDEN = Path(__file__).parent / "golden"
DAY = date(2026, 11, 23)


@pytest.fixture
def app(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url, digest={"recipients": ["onthaal@vlaamseombudsdienst.be"],
                                              "teams": {"wonen": ["wonen@vlaamseombudsdienst.be"]}})
    with app.sessions.begin() as session:
        seed(session)
    return app


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        if IN_CI:  # rewriting the files it compares with would make the test pass whatever the output
            pytest.fail("UPDATE_GOLDEN is set under CI: rewrite the golden files locally and review the diff")
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def _section(data, key):
    return {s.key: s for s in data.decisions + data.info}[key]


def test_text_and_html_match_the_golden_files(app):
    """The rendered digest of the seeded day is exactly the reviewed text and HTML."""
    rendered = digest.build(app.sessions, app.settings, DAY)
    _golden("digest_2026-11-23.txt", rendered.text)
    _golden("digest_2026-11-23.html", rendered.html)
    assert rendered.subject == "Dagoverzicht klachtenpostbus 23-11-2026: 9 te beslissen, 4 nieuwe dossiers"


def test_sections_come_in_decision_order_with_counts(app):
    """Decisions come first in the promised order, then the informational sections; counts on top."""
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    assert [s.key for s in data.decisions] == ["needs_triage", "multi_addressed", "agency_in_cc", "contact_wishes",
                                               "quarantined", "undeliverable", "not_sent", "held", "staff_notices",
                                               "rules_failed", "overdue"]
    assert [s.key for s in data.info] == ["new_cases", "quick_service", "referrals", "agency_forwards",
                                          "solutions", "status_requests", "imported_open", "idle_open"]
    assert data.totals == {"received": 8, "new_cases": 4, "replies_sent": 1, "needs_decision": 9}
    text = digest.render(app.settings, data).text
    assert text.index("IN HET KORT") < text.index("== TE BESLISSEN ==") < text.index("== TER INFO ==")


def test_each_section_holds_the_seeded_item(app):
    """Every section lists the one seeded case or message with the detail staff need."""
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)

    def items(key):
        return [i for _, group in _section(data, key).groups for i in group]

    [triage] = items("needs_triage")
    assert triage.ref == "VO-2026-000001" and any("score 40" in e for e in triage.extras)
    assert any("VO-2026-000098" in e and "score 72" in e for e in triage.extras)
    [multi] = items("multi_addressed")
    assert "Federale Ombudsman" in multi.extras and "duplicaat van VO-2026-000001" in multi.extras
    assert items("agency_in_cc")[0].ref == "VO-2026-000003"
    assert items("contact_wishes")[0].detail == "anonymity_requested, prefers_phone"
    assert "exceeds the limit" in items("quarantined")[0].detail
    assert items("undeliverable")[0].detail.startswith("550 5.1.1")
    assert items("held")[0].ref == "VO-2026-000006" and items("held")[0].detail == "replies_per_case_per_day"
    assert "mailbot outbox release " in items("held")[0].extras[0]  # what staff can do about it
    assert "unknown key" in items("rules_failed")[0].title
    assert [i.ref for i in items("overdue")] == ["VO-2026-000007"]  # 000008: only 2 working days
    groups = dict(_section(data, "new_cases").groups)
    assert [i.ref for i in groups["onderwijs · An Peeters"]] == ["VO-2026-000001", "VO-2026-000003"]
    assert items("quick_service")[0].detail == ("doorverwezen naar de bevoegde ombudsdienst; "
                                                "geen antwoord verstuurd: neem zelf contact op")
    assert "onderwijs.vlaanderen.be" in items("agency_forwards")[0].who
    assert items("status_requests")[0].detail == "antwoord verstuurd"
    assert data.chart[-1].total == 8 and len(data.chart) == 30 and data.chart_max == 8


def test_every_value_is_html_escaped(app):
    """A <script> in a subject and in a citizen's name reaches the HTML only escaped."""
    html = digest.build(app.sessions, app.settings, DAY).html
    assert "<script" not in html
    assert "Jan &lt;script&gt;alert(1)&lt;/script&gt; Peeters" in html
    assert "Studietoelage &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_team_filter_keeps_only_that_teams_cases(app):
    """--team shows the team's cases only and leaves out intake-wide sections."""
    with app.sessions() as session:
        data = collect(session, app.settings, DAY, team="wonen")
    refs = {i.ref for s in data.decisions + data.info for _, g in s.groups for i in g}
    assert refs == {"VO-2026-000002"}
    assert _section(data, "quarantined").count == 0 and _section(data, "rules_failed").count == 0


def test_scheduled_digest_is_sent_once_through_the_outbox(make_app, sqlite_url, smtp_sink):
    """send_digest queues one mail per recipient (and per team) and sends it; a second call
    for the same day (another worker, a restart) queues nothing."""
    app = make_app(db_url=sqlite_url, smtp={"port": smtp_sink.port},
                   digest={"recipients": ["onthaal@vlaamseombudsdienst.be"],
                           "teams": {"wonen": ["wonen@vlaamseombudsdienst.be"]}})
    with app.sessions.begin() as session:
        seed(session)
    assert app.send_digest(DAY) == 2
    assert app.send_digest(DAY) == 0
    mails = {m["To"]: m for m in smtp_sink.parsed()}
    assert set(mails) == {"onthaal@vlaamseombudsdienst.be", "wonen@vlaamseombudsdienst.be"}
    full = mails["onthaal@vlaamseombudsdienst.be"]
    assert full["Auto-Submitted"] == "auto-generated" and "23-11-2026" in full["Subject"]
    assert "VO-2026-000007" in full.get_body(("plain",)).get_content()
    assert "<table" in full.get_body(("html",)).get_content()
    assert "VO-2026-000007" not in mails["wonen@vlaamseombudsdienst.be"].get_body(("plain",)).get_content()


def test_cli_print_and_html(tmp_path, app):
    """`mailbot digest --date D --print --html FILE` prints the text and writes the HTML."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=str(app.settings.database.url))))
    out = tmp_path / "digest.html"
    result = CliRunner().invoke(cli, ["--config", str(config), "digest", "--date", "2026-11-23", "--print",
                                      "--html", str(out)], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Dagoverzicht klachtenpostbus" in result.output and "VO-2026-000001" in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_working_days_skip_weekends_belgian_holidays_and_closing_days():
    """Armistice (11 November) and a configured closing day do not count as working days."""
    from mailbot.holidays_be import subtract_working_days, working_days_after

    assert working_days_after(date(2026, 11, 10), date(2026, 11, 13)) == 2  # Wed 11/11 is a holiday
    assert working_days_after(date(2026, 11, 13), date(2026, 11, 16)) == 1  # the weekend
    assert working_days_after(date(2026, 7, 10), date(2026, 7, 13), [date(2026, 7, 13)]) == 0
    assert subtract_working_days(date(2026, 11, 13), 3) == date(2026, 11, 9)


def test_mail_silenced_on_its_subject_alone_is_listed_for_staff(make_app, sqlite_url):
    """Unmatched mail found automatic by its subject only is in 'Te beoordelen'; header-proven
    automatic mail, and a subject-only auto-reply that joined its case, are not."""
    app = make_app(db_url=sqlite_url)
    app.intake.clock = app.intake.matching.clock = lambda: datetime(2026, 11, 23, 10, tzinfo=timezone.utc)
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    process_files(app.intake, [
        complaint(sender="els.maes@example.be", name="Els Maes",
                  subject="Automatisch antwoord: boete lage-emissiezone"),
        complaint(sender="robot@example.be", subject="Automatisch antwoord: x",
                  extra_headers="Auto-Submitted: auto-replied\r\n"),
        complaint(subject=f"Automatisch antwoord: Uw klacht [{ref}]", body="Ik ben afwezig tot 1 december."),
    ])
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
        team = collect(session, app.settings, DAY, team="onderwijs-cultuur")
    [item] = [i for _, group in _section(data, "needs_triage").groups for i in group]
    assert (item.ref, item.title, item.who, item.detail) == (
        "", "Automatisch antwoord: boete lage-emissiezone", "Els Maes <els.maes@example.be>", "automatic")
    assert item.extras == (SUBJECT_ONLY,)
    assert _section(team, "needs_triage").count == 0  # intake-wide only: it has no team
    text = digest.render(app.settings, data).text
    assert "Els Maes <els.maes@example.be>" in text and SUBJECT_ONLY in text
