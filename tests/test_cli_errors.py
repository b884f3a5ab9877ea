"""What an operator sees when something around the robot is wrong: one line and exit 2, never
a Python traceback, and never the password."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import base_config
from mailbot.cli import cli

PASSWORD = "Geheim-Wachtwoord-17"
ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *args: str, **overrides):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**overrides)))
    return CliRunner().invoke(cli, ["--config", str(path), *args], obj={})


@pytest.mark.parametrize("command", [("case", "list"), ("db", "upgrade"), ("status",),
                                     ("digest", "--print", "--date", "2026-11-02")])
def test_an_unreachable_database_is_one_line(tmp_path, command):
    result = _run(tmp_path, *command, db_url=f"postgresql://mailbot:{PASSWORD}@127.0.0.1:1/mailbot")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("mailbot: database: OperationalError: connection failed")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert PASSWORD not in result.output


def test_a_database_without_its_schema_says_to_upgrade(tmp_path):
    sqlite3.connect(tmp_path / "new.sqlite3").close()  # an empty database file, no tables
    result = _run(tmp_path, "case", "list", db_url=f"sqlite:///{tmp_path / 'new.sqlite3'}")
    assert result.exit_code == 2
    assert result.output == ("mailbot: database: OperationalError: no such table: case "
                             "(run 'mailbot db upgrade' first)\n")


@pytest.mark.parametrize("url", [f"postgresql://mailbot:{PASSWORD}@db.internal:54x2/mailbot",
                                 f"postgresql//mailbot:{PASSWORD}@db.internal/mailbot"])
def test_an_unusable_database_url_names_the_key(tmp_path, url):
    result = _run(tmp_path, "case", "list", db_url=url)
    assert result.exit_code == 2
    assert result.output.startswith("mailbot: invalid configuration: database.url: ")
    assert "not a database URL" in result.output
    assert PASSWORD not in result.output


@pytest.mark.postgres
def test_the_short_postgres_scheme_is_accepted(tmp_path, pg_url):
    short = pg_url.replace("postgresql://", "postgres://", 1)
    assert _run(tmp_path, "db", "upgrade", db_url=short).exit_code == 0
    assert json.loads(_run(tmp_path, "case", "list", "--json", db_url=short).output) == []


def test_db_upgrade_does_not_narrate_alembic_without_verbose(tmp_path, sqlite_url, caplog):
    result = _run(tmp_path, "db", "upgrade", db_url=sqlite_url)
    assert result.exit_code == 0
    assert not [r for r in caplog.records if r.name.startswith("alembic") and r.levelname == "INFO"]


def test_case_json_times_carry_their_offset(tmp_path, make_app, sqlite_url):
    from test_digest_seed import seed

    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    cases = json.loads(_run(tmp_path, "case", "list", "--json", db_url=sqlite_url).output)
    assert cases and all(case["created_at"].endswith("+00:00") for case in cases)


def test_digest_html_into_a_missing_folder_is_one_line(tmp_path, make_app, sqlite_url):
    make_app(db_url=sqlite_url)
    result = _run(tmp_path, "digest", "--html", str(tmp_path / "nowhere" / "d.html"), db_url=sqlite_url)
    assert result.exit_code == 1
    assert "cannot write" in result.output and "No such file or directory" in result.output
    assert "Traceback" not in result.output


# -- rules check covers the digest templates too ----------------------------------------------

def _trees(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path / "rules", tmp_path / "templates"


def _check(*args: str):
    return CliRunner().invoke(cli, ["rules", "check", *args], obj={})


def test_rules_check_finds_a_broken_digest_template(tmp_path):
    rules, templates = _trees(tmp_path)
    digest = templates / "_digest" / "nl.txt.j2"
    lines = digest.read_text(encoding="utf-8").count("\n")
    digest.write_text(digest.read_text(encoding="utf-8") + "{% if d %}\n", encoding="utf-8")
    result = _check("--rules-dir", str(rules), "--templates-dir", str(templates))
    assert result.exit_code == 1
    assert result.output.startswith(f"{templates}/_digest/nl.txt.j2:{lines + 1}: Unexpected end of template")


def test_rules_check_names_a_missing_digest_template(tmp_path):
    rules, templates = _trees(tmp_path)
    (templates / "_digest" / "nl.subject.j2").unlink()
    result = _check("--rules-dir", str(rules), "--templates-dir", str(templates))
    assert result.exit_code == 1 and "templates/_digest/nl.subject.j2:1: file missing" in result.output


def test_rules_check_without_templates_says_they_were_not_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.yaml here to name a templates folder
    shutil.copytree(ROOT / "rules", tmp_path / "alone" / "rules")
    result = _check("--rules-dir", str(tmp_path / "alone" / "rules"))
    assert result.exit_code == 0
    assert "templates not checked" in result.output


def test_staff_commands_work_while_no_rules_can_be_used_and_polling_refuses(tmp_path):
    """Rules refused on disk and no last good set saved (a new installation, or a set an
    older release saved that this one refuses): staff can still look up cases and read the
    digest, with a warning; only the commands that route mail stop."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "rules" / "routing.yaml").write_text("")
    db_url = f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
    dirs = {"rules_dir": str(tmp_path / "rules"), "templates_dir": str(tmp_path / "templates")}
    assert _run(tmp_path, "db", "upgrade", db_url=db_url, **dirs).exit_code == 0
    for command in (("case", "list"), ("status",), ("digest", "--print", "--date", "2026-11-23")):
        result = _run(tmp_path, *command, db_url=db_url, **dirs)
        assert result.exit_code == 0, (command, result.output)
    polled = _run(tmp_path, "poll", "--once", db_url=db_url, **dirs)
    assert polled.exit_code == 2 and "routing.yaml:1: the file is empty" in polled.output
