"""Retention: closed cases past the period are pseudonymised and their raw mail deleted;
old quarantined raw mail goes too; --dry-run reports exactly that and changes nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Case, Event, Message, RawMail
from test_digest_seed import seed

NOW = datetime(2031, 12, 1, tzinfo=timezone.utc)


def _seeded(make_app, db_url):
    app = make_app(db_url=db_url, retention={"closed_case_days": 365, "quarantine_days": 90})
    with app.sessions.begin() as session:
        cases = seed(session)
        for role in ("multi", "cc"):
            case = session.get(Case, cases[role].id)
            case.status, case.closed_at = "closed", datetime(2029, 1, 1, tzinfo=timezone.utc)
        recent = session.get(Case, cases["anon"].id)
        recent.status, recent.closed_at = "closed", datetime(2031, 6, 1, tzinfo=timezone.utc)
    app.clock = lambda: NOW
    return app


def _snapshot(app):
    with app.sessions() as session:
        return {
            "raw": session.execute(select(func.count()).select_from(RawMail)).scalar_one(),
            "cases": sorted((c.ref, c.citizen_email, c.citizen_name, c.subject)
                            for c in session.execute(select(Case)).scalars()),
            "bodies": sorted(m.body_text for m in session.execute(select(Message)).scalars()),
        }


def test_dry_run_reports_and_changes_nothing(make_app, db_url):
    """--dry-run names the cases that would be pseudonymised and leaves every row as it was."""
    app = _seeded(make_app, db_url)
    before = _snapshot(app)
    report = app.run_retention(dry_run=True)
    assert report.closed_cases.refs == ["VO-2026-000002", "VO-2026-000003"]
    assert report.closed_cases.messages == 3 and report.closed_cases.raw_mails == 3
    assert report.quarantined == 1
    assert _snapshot(app) == before


def test_real_run_does_what_the_dry_run_said(make_app, db_url):
    """The real run has the dry run's counts, pseudonymises only the old closed cases, deletes
    their raw mail, records an audit event, and a second run finds nothing left."""
    app = _seeded(make_app, db_url)
    dry = app.run_retention(dry_run=True).as_dict()
    real = app.run_retention().as_dict()
    assert {**real, "dry_run": True} == dry
    with app.sessions() as session:
        cases = {c.ref: c for c in session.execute(select(Case)).scalars()}
        old = cases["VO-2026-000002"]
        assert old.citizen_email.endswith("@pseudonymised.invalid") and old.citizen_name == "" and old.subject == ""
        assert old.flags and old.outcome == "investigation"  # statistics survive
        assert cases["VO-2026-000004"].citizen_email == "sofie.maes@example.be"  # closed too recently
        texts = [m.body_text + m.from_email for m in session.execute(
            select(Message).where(Message.case_id == old.id)).scalars()]
        assert texts and all(t == "" for t in texts)
        assert session.execute(select(func.count()).select_from(Event).where(Event.type == "retention_run")).scalar_one() == 1
    assert app.run_retention().closed_cases.cases == 0


def test_cli_dry_run(tmp_path, make_app, sqlite_url):
    """`mailbot retention --dry-run` prints what would go."""
    make_app(db_url=sqlite_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=sqlite_url)))
    result = CliRunner().invoke(cli, ["--config", str(config), "retention", "--dry-run"], obj={},
                                catch_exceptions=False)
    assert result.exit_code == 0 and "would be" in result.output
