"""Operators' CLI after the audit: an import decides only about the cases it opened, out-of-range
days and years are usage errors, a missing SQLite file is refused (not created) by the commands
that only read or edit records, retention's dry run abridges its list of cases and the erasure's
dry run names them, and the annual report counts imported cases apart from the reaction figures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Case, Event
from mailbot.imported_cases import IMPORTED
from mailbot.privacy import REFS_SHOWN
from test_digest_seed import Seeder, at
from test_import_audit import _rows, letter, mbox


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=url)), encoding="utf-8")
    return path


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={})


def _cases(config: Path) -> dict[str, tuple[str, str, datetime | None]]:
    """citizen address → (reference, status, closed_at)"""
    return {email: (ref, status, closed_at) for email, ref, status, closed_at
            in _rows(config, select(Case.citizen_email, Case.ref, Case.status, Case.closed_at))}


# -- 1. an import closes only the cases it opened -------------------------------------------------

def test_a_later_import_leaves_a_case_staff_reopened_open(tmp_path, db_url):
    """Before, every later import (even of mail imported already) closed it again, with its old
    closing date: retention's clock went back years."""
    config = _config(tmp_path, db_url)
    archive = mbox(tmp_path / "a.mbox", [letter(1), letter(2)])
    assert "2 imported cases closed" in _run(config, "import", str(archive)).output
    ref = _cases(config)["burger1@example.be"][0]
    assert _run(config, "case", "reopen", ref, "--by", "An Peeters").exit_code == 0

    again = _run(config, "import", str(archive))
    assert again.exit_code == 0 and "0 imported cases closed" in again.output, again.output
    other = _run(config, "import", str(mbox(tmp_path / "b.mbox", [letter(3)])))
    assert "1 imported cases closed" in other.output, other.output

    cases = _cases(config)
    assert cases["burger1@example.be"][1:] == ("open", None)
    assert cases["burger3@example.be"][1] == "closed"
    closings = _rows(config, select(Event.id).join(Case, Case.id == Event.case_id)
                     .where(Case.ref == ref, Event.type == "case_closed"))
    assert len(closings) == 1


def test_a_later_import_keeps_open_what_an_earlier_one_kept_open(tmp_path, db_url):
    """`--open-after` kept a 2016 case open; neither the same import run again with the default
    cut-off nor the import of another archive closes it."""
    config = _config(tmp_path, db_url)
    archive = mbox(tmp_path / "a.mbox", [letter(1), letter(2, when=datetime(2014, 5, 1, tzinfo=timezone.utc))])
    first = _run(config, "import", str(archive), "--open-after", "2015-01-01")
    assert "1 imported cases closed: their last message is from before 2015-01-01" in first.output
    assert "1 newer ones stay open" in first.output

    assert "0 imported cases closed" in _run(config, "import", str(archive)).output
    assert "1 imported cases closed" in _run(config, "import", str(mbox(tmp_path / "b.mbox", [letter(3)]))).output
    assert {email: status for email, (_, status, _) in _cases(config).items()} == {
        "burger1@example.be": "open", "burger2@example.be": "closed", "burger3@example.be": "closed"}


def test_the_run_completing_an_interrupted_import_decides_its_earlier_cases_too(tmp_path, monkeypatch):
    from mailbot import cli_import

    def interrupt(self, count: int, position: int) -> None:
        if count == 3:
            raise KeyboardInterrupt

    config = _config(tmp_path, f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    archive = mbox(tmp_path / "a.mbox", [letter(n) for n in range(5)])
    with monkeypatch.context() as patch:
        patch.setattr(cli_import.ProgressBar, "update", interrupt)
        assert _run(config, "import", str(archive), "--batch-size", "2").exit_code == 130
    assert len(_cases(config)) == 2  # the first batch was committed
    resumed = _run(config, "import", str(archive), "--batch-size", "2")
    assert "5 imported cases closed" in resumed.output, resumed.output
    assert {status for _, status, _ in _cases(config).values()} == {"closed"}


# -- 2. days and years out of range -------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("digest", "--print", "--date", "0001-01-01"),
    ("digest", "--print", "--date", "9999-12-31"),
    ("report", "--year", "0"),
    ("report", "--year", "99999"),
    ("case", "list", "--since", "0001-01-01"),
    ("case", "list", "--until", "9999-12-31"),
])
def test_a_day_or_year_out_of_range_is_a_usage_error(tmp_path, make_app, args):
    url = f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
    make_app(db_url=url)
    result = _run(_config(tmp_path, url), *args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"Invalid value for '{args[-2]}'" in result.output


def test_an_open_after_out_of_range_is_refused_before_anything_is_imported(tmp_path):
    """Before, the whole archive was imported, then closing its cases failed with a traceback."""
    database = tmp_path / "mailbot.sqlite3"
    config = _config(tmp_path, f"sqlite:///{database}")
    result = _run(config, "import", str(mbox(tmp_path / "a.mbox", [letter(1)])), "--open-after", "0001-01-01")
    assert result.exit_code == 2 and "Invalid value for '--open-after'" in result.output, result.output
    assert not database.exists()


# -- 3. a missing SQLite file ------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("status",),
    ("report", "--year", "2026"),
    ("privacy", "erase", "--email", "jan@example.be", "--dry-run"),
    ("digest", "--print", "--date", "2026-11-23"),
    ("retention", "--dry-run"),
    ("case", "list"),
    ("case", "show", "VO-2026-000001"),
    ("case", "close", "VO-2026-000001"),
    ("outbox", "list"),
])
@pytest.mark.parametrize("where", ["mailbot.sqlite3", "missing-folder/mailbot.sqlite3"])
def test_a_read_or_staff_command_refuses_a_missing_sqlite_file_and_creates_none(tmp_path, args, where):
    database = tmp_path / where
    result = _run(_config(tmp_path, f"sqlite:///{database}"), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"mailbot: database file {database} does not exist; check database.url "
                                          "in the configuration (only for a new installation: 'mailbot db upgrade' "
                                          "creates it)"]
    assert not database.exists() and not database.parent.joinpath(f"{database.name}-wal").exists()


def test_import_still_creates_the_database(tmp_path):
    database = tmp_path / "mailbot.sqlite3"
    result = _run(_config(tmp_path, f"sqlite:///{database}"), "import", str(mbox(tmp_path / "a.mbox", [letter(1)])))
    assert result.exit_code == 0 and database.exists(), result.output


# -- 4. dry runs that name cases -----------------------------------------------------------------

def test_retention_dry_run_names_the_first_cases_and_counts_the_rest(tmp_path):
    """Before, every reference went on one line (100,000 characters after a decade's import)."""
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    total = REFS_SHOWN + 3
    assert _run(config, "import", str(mbox(tmp_path / "a.mbox", [letter(n) for n in range(total)]))).exit_code == 0
    refs = sorted(ref for ref, _, _ in _cases(config).values())

    first = _run(config, "retention", "--dry-run").stdout.splitlines()[0]
    assert first == (f"closed cases pseudonymised: {total} would be ({', '.join(refs[:REFS_SHOWN])} … and 3 more) "
                     "(--json lists every one)")
    listed = json.loads(_run(config, "retention", "--dry-run", "--json").stdout)
    assert listed["closed_cases"]["refs"] == refs


def test_erasure_dry_run_lists_the_cases_of_the_address_and_changes_nothing(tmp_path, make_app, db_url):
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        seed = Seeder(session)
        for number in (7, 8):
            seed.case(number, name="Jan Peeters", email="jan.peeters@example.be", subject=f"Klacht {number}",
                      created=at(2, 9))
        seed.case(9, name="Els Maes", email="els.maes@example.be", subject="Klacht 9", created=at(2, 9))
    result = _run(_config(tmp_path, db_url), "privacy", "erase", "--email", "Jan.Peeters@example.be", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["case(s) that would be pseudonymised (2):",
                                              "  VO-2026-000007, VO-2026-000008"]
    with app.sessions() as session:
        assert session.execute(select(Case.citizen_email).where(Case.ref == "VO-2026-000007")).scalar_one() \
            == "jan.peeters@example.be"


# -- 5. the annual report and imported cases ------------------------------------------------------

def _seed_report(session, *, live: int, imported: int) -> None:
    """`live` cases with a first reaction `n` + 1 hours after they came in, and `imported` ones
    an import opened (never a reaction: the office answered them outside mailbot)."""
    seed = Seeder(session)
    for n in range(live + imported):
        created = at(2 + n % 20, 9)
        case = seed.case(100 + n, name=f"Burger {n}", email=f"burger{n}@example.be", subject=f"Klacht {n}",
                         created=created, first_reaction_at=created + timedelta(hours=n + 1) if n < live else None)
        if n >= live:
            session.add(Event(type=IMPORTED, case_id=case.id, detail={}, created_at=created))


def _report(tmp_path: Path, url: str) -> dict:
    result = _run(_config(tmp_path, url), "report", "--year", "2026")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_report_counts_imported_cases_apart_from_the_reaction_figures(tmp_path, make_app, db_url):
    """Before: `without_reaction` 7 (every imported case), `imported` absent."""
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        _seed_report(session, live=6, imported=7)
    data = _report(tmp_path, db_url)
    assert data["cases"] == 13
    assert data["first_reaction"] == {"reacted": 6, "without_reaction": 0, "imported": 7, "median_hours": 3.5,
                                      "mean_hours": 3.5, "p90_hours": 6.0, "within_1_day_pct": 100.0,
                                      "within_3_days_pct": 100.0}


def test_a_small_number_of_imported_cases_is_hidden_like_any_small_cell(tmp_path, make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        _seed_report(session, live=12, imported=2)
    data = _report(tmp_path, sqlite_url)
    assert data["first_reaction"]["imported"] is None and data["first_reaction"]["without_reaction"] == 0
    assert data["suppressed"]["cells"]["first_reaction"] == {"imported": "<5", "reacted": "x"}
