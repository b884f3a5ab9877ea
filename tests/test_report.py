"""`mailbot report --year Y`: anonymous statistics, with no personal data from the seeded cases."""

from __future__ import annotations

import csv
import io
import json

import yaml
from click.testing import CliRunner

from conftest import base_config
from mailbot.cli import cli
from test_digest_seed import PERSONAL, seed


def _report(tmp_path, url, fmt):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=url)))
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--year", "2026", "--format", fmt],
                                obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_report_counts_without_personal_data(tmp_path, make_app, db_url):
    """The JSON report counts kinds, outcomes, languages, flags and reaction times, and contains
    no address, name, phone number or subject from the seeded data."""
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        seed(session)
    output = _report(tmp_path, db_url, "json")
    data = json.loads(output)
    assert data["cases"] == 8 and data["messages"] == 12
    # The seeded day is small: its cells of 1 to 4 (and their complements) are hidden, totals are not.
    assert data["messages_by_kind"]["new_complaint"] is None and "new_complaint" in data["suppressed"]["cells"]["messages_by_kind"]
    assert data["cases_by_outcome"] == {"investigation": None, "refer_ombudsman": None}
    assert data["suppressed"]["cells"]["cases_by_outcome"] == {"refer_ombudsman": "<5", "investigation": "x"}
    assert data["cases_by_flag"]["multi_addressed"] is None
    assert data["first_reaction"]["reacted"] is None and data["first_reaction"]["without_reaction"] is None
    assert data["first_reaction"]["median_hours"] == round(1 / 60, 1)
    for value in PERSONAL + ["@", "example.be", "<script"]:
        assert value.lower() not in output.lower(), value


def test_csv_report_has_the_same_figures(tmp_path, make_app, sqlite_url):
    """The CSV form is section,key,value rows with the same numbers and no personal data."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    output = _report(tmp_path, sqlite_url, "csv")
    rows = list(csv.reader(io.StringIO(output)))
    assert rows[0] == ["section", "key", "value"]
    assert ["cases", "", "8"] in rows and ["cases_by_language", "nl", "8"] in rows
    for value in PERSONAL + ["@"]:
        assert value.lower() not in output.lower(), value
