"""`mailbot report --year Y` hides small cells (audit C, item 8): a count of 1 to 4 can point to a
person, and a total minus the shown cells must not give one back."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta


from mailbot.report import MIN_COUNT, PARTITIONS
from test_digest_seed import Seeder, at
from test_report import _report


def _seed_year(session) -> None:
    """29 cases: teams 15/12/2, outcomes 28/1, languages 20/6/3, one anonymity request (flag and
    tag), 6 phone preferences, 2 without reaction; 7 agency forwards, 6 from a known service."""
    s = Seeder(session)
    teams = ["onderwijs"] * 15 + ["wonen"] * 12 + ["mobiliteit"] * 2
    languages = ["nl"] * 20 + ["fr"] * 6 + ["en"] * 3
    for i in range(29):
        created = at(2 + i % 20, 9 + i % 8)
        case = s.case(100 + i, name=f"Burger {i}", email=f"burger{i}@example.be", subject=f"Klacht {i}",
                      created=created, team=teams[i], language=languages[i],
                      outcome="refer_ombudsman" if i == 7 else "investigation",
                      flags=(["anonymity_requested"] if i == 3 else []) + (["prefers_phone"] if i % 5 == 0 else []),
                      tags=["anonimiteit"] if i == 3 else [],
                      first_reaction_at=None if i in (5, 6) else created + timedelta(hours=1 + i))
        s.message(case, kind="new_complaint", received=created, subject=case.subject, sender=case.citizen_email)
        if i < 7:
            s.message(case, kind="agency_forward", received=created + timedelta(hours=2), subject="Fwd: dossier",
                      sender=case.citizen_email, original_sender="onbekend-kantoor@example.org" if i == 0
                      else "Departement Onderwijs <info@onderwijs.vlaanderen.be>")


def test_small_cells_are_null_and_listed(tmp_path, make_app, db_url):
    """Cells of 1 to 4 are null in JSON and listed as "<5"; in a partition the smallest other cell
    is hidden too ("x"); large cells and the totals stay as they are."""
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        _seed_year(session)
    data = json.loads(_report(tmp_path, db_url, "json"))
    assert data["cases"] == 29 and data["messages"] == 36
    assert data["cases_by_team"] == {"onderwijs": 15, "wonen": None, "mobiliteit": None}
    assert data["cases_by_language"] == {"nl": 20, "fr": None, "en": None}
    assert data["cases_by_flag"] == {"prefers_phone": 6, "anonymity_requested": None}
    assert data["cases_by_tag"] == {"anonimiteit": None}
    assert data["cases_by_outcome"] == {"investigation": None, "refer_ombudsman": None}
    assert data["messages_by_kind"] == {"new_complaint": 29, "agency_forward": 7}
    assert data["first_reaction"]["reacted"] is None and data["first_reaction"]["without_reaction"] is None
    assert data["first_reaction"]["median_hours"] == 16.0  # 1..29 hours without 6 and 7
    cells = data["suppressed"]["cells"]
    assert data["suppressed"]["min_count"] == MIN_COUNT == 5
    assert cells["cases_by_team"] == {"mobiliteit": "<5", "wonen": "x"}
    assert cells["cases_by_language"] == {"en": "<5", "fr": "x"}
    assert cells["cases_by_flag"] == {"anonymity_requested": "<5"} and cells["cases_by_tag"] == {"anonimiteit": "<5"}
    assert sorted(cells["agency_forwards_by_service"].values()) == ["<5", "x"]  # 1 and 6: all hidden
    assert cells["agency_forwards_by_service"]["onbekend"] == "<5"
    assert cells["first_reaction"] == {"without_reaction": "<5", "reacted": "x"}


def test_no_small_count_can_be_read_or_computed(tmp_path, make_app, sqlite_url):
    """No shown count is 1 to 4, and in a partition the total minus the shown cells is 0, at
    least 2 * MIN_COUNT - 1, or the whole total (all hidden): no small cell can be computed back."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        _seed_year(session)
    data = json.loads(_report(tmp_path, sqlite_url, "json"))
    for section, value in data.items():
        if isinstance(value, dict) and section != "suppressed":
            for key, number in value.items():
                if key.endswith(("_hours", "_pct")) or number is None:
                    continue
                assert not 0 < number < MIN_COUNT, (section, key, number)
    totals = {"messages": data["messages"], "cases": data["cases"]}
    for section in PARTITIONS:
        total = data["messages_by_kind"].get("agency_forward") if section == "agency_forwards_by_service" \
            else totals["messages" if section.startswith("messages") else "cases"]
        if total is None:
            continue
        shown = [n for n in data[section].values() if n is not None]
        rest = total - sum(shown)
        assert rest == 0 or rest >= 2 * MIN_COUNT - 1 or not shown, (section, rest)


def test_csv_marks_hidden_cells(tmp_path, make_app, sqlite_url):
    """The CSV shows "<5" for a small cell, "x" for its complement, and the threshold in a row."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        _seed_year(session)
    rows = list(csv.reader(io.StringIO(_report(tmp_path, sqlite_url, "csv"))))
    assert ["cases", "", "29"] in rows and ["cases_by_team", "onderwijs", "15"] in rows
    assert ["cases_by_team", "mobiliteit", "<5"] in rows and ["cases_by_team", "wonen", "x"] in rows
    assert ["cases_by_flag", "anonymity_requested", "<5"] in rows and ["cases_by_flag", "prefers_phone", "6"] in rows
    assert ["cases_by_tag", "anonimiteit", "<5"] in rows
    assert ["suppressed", "min_count", "5"] in rows
    assert not any(row[2] in ("1", "2", "3", "4") for row in rows[1:] if row[0] != "year"), rows


def test_reaction_times_of_a_few_cases_are_hidden(tmp_path, make_app, sqlite_url):
    """With fewer than 5 cases reacted to, their times (a median of one is that case's) are hidden."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        for i in range(3):
            s.case(200 + i, name=f"Burger {i}", email=f"b{i}@example.be", subject="Klacht", created=at(3 + i, 10))
    data = json.loads(_report(tmp_path, sqlite_url, "json"))
    assert data["cases"] == 3
    reaction = data["first_reaction"]
    assert reaction["reacted"] is None and reaction["median_hours"] is None and reaction["p90_hours"] is None
    assert data["suppressed"]["cells"]["first_reaction"]["reacted"] == "<5"
