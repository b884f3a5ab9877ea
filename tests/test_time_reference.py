"""A case's reference carries the office's year: a complaint at 00:30 on 1 January in Brussels
(23:30 UTC on 31 December) is a case of the new year, as the annual report counts it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from conftest import complaint
from mailbot.db import Case
from mailbot.explain import explain
from mailbot.pipeline import process_files
from mailbot.report import build_report

NEW_YEAR = datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc)  # 00:30 on 1 January 2027 in Brussels


def test_rules_explain_names_the_reference_of_the_office_year(make_app, db_url):
    """`rules explain` on a new complaint at 00:30 on New Year's Day says the reply will carry
    VO-2027-000001 (it said VO-2026-…, the year in UTC)."""
    app = make_app(db_url=db_url)
    explained = json.dumps(explain(app, complaint(), now=NEW_YEAR), ensure_ascii=False)
    assert "VO-2027-000001" in explained and "VO-2026-" not in explained


def test_a_complaint_after_local_midnight_on_new_years_day_gets_the_new_years_reference(make_app, db_url):
    """The case opened at 00:30 on 1 January 2027 in Brussels is VO-2027-000001 and counts in the
    2027 report."""
    app = make_app(db_url=db_url, clock=lambda: NEW_YEAR)
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
        assert build_report(session, 2027, min_count=1)["cases"] == 1
    assert ref == "VO-2027-000001"
