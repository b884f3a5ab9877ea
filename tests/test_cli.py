"""The command line contract: db upgrade, poll --once, case list/show, rules explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import base_config, complaint
from helpers import append_all, folder_count, imap_config
from mailbot.cli import cli

DESIGN_CASE_FIELDS = {"ref", "status", "citizen_email", "investigator_email", "language", "created_at",
                      "flags", "also_sent_to", "duplicate_of", "messages"}
DESIGN_MESSAGE_FIELDS = {"message_id", "kind", "from", "subject", "received_at", "original_sender"}


def _config(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**overrides)))
    return path


def _run(config: Path, *args: str):
    result = CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, catch_exceptions=False)
    return result


@pytest.mark.dovecot
def test_poll_once_then_case_list_and_show_json(tmp_path, dovecot, smtp_sink, db_url):
    """`db upgrade`, `poll --once` and the JSON look-ups give the fields DESIGN.md promises."""
    config = _config(tmp_path, imap=imap_config(dovecot), smtp={"port": smtp_sink.port}, db_url=db_url)
    assert _run(config, "db", "upgrade").exit_code == 0
    append_all(dovecot, [complaint(message_id="<cli@mail.example.be>")])

    polled = _run(config, "poll", "--once")
    assert polled.exit_code == 0, polled.output
    assert "processed 1" in polled.output and "replies sent 1" in polled.output
    assert folder_count(dovecot, "INBOX") == 0 and len(smtp_sink.messages) == 1

    listed = _run(config, "case", "list", "--json")
    cases = json.loads(listed.output)
    assert len(cases) == 1 and DESIGN_CASE_FIELDS <= set(cases[0])
    ref = cases[0]["ref"]
    assert cases[0]["citizen_email"] == "jan.peeters@example.be"

    shown = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert shown["ref"] == ref
    assert [m["message_id"] for m in shown["messages"]][0] == "cli@mail.example.be"
    assert all(DESIGN_MESSAGE_FIELDS <= set(m) for m in shown["messages"])
    assert [m["kind"] for m in shown["messages"]] == ["new_complaint", "outgoing"]

    text = _run(config, "case", "show", ref)
    assert ref in text.output and "jan.peeters@example.be" in text.output


def test_case_show_unknown_reference_fails(tmp_path, sqlite_url):
    """Asking for a case that does not exist exits non-zero with a clear message."""
    config = _config(tmp_path, db_url=sqlite_url)
    _run(config, "db", "upgrade")
    result = _run(config, "case", "show", "VO-2026-999999")
    assert result.exit_code != 0 and "no case VO-2026-999999" in result.output


def test_invalid_config_is_one_clear_line(tmp_path):
    """A config error exits 2 and names the key, without a traceback."""
    path = tmp_path / "config.yaml"
    config = base_config()
    config["imap"]["hots"] = "x"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["--config", str(path), "case", "list"], obj={})
    assert result.exit_code == 2
    assert "imap.hots: unknown key" in result.output
    assert "Traceback" not in result.output


def test_rules_explain_has_no_side_effects(tmp_path, sqlite_url):
    """`rules explain` shows kind, rules and replies and writes nothing to the database."""
    db_file = Path(sqlite_url[len("sqlite:///"):])
    config = _config(tmp_path, db_url=sqlite_url)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(complaint())
    result = _run(config, "rules", "explain", str(mail), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["classification"]["kind"] == "new_complaint"
    assert data["decision"]["open_case"] is True
    assert data["rules"] and all({"name", "matched", "reason"} <= set(t) for t in data["rules"])
    assert data["replies"][0]["to"].endswith("jan.peeters@example.be>")
    assert not db_file.exists()

    _run(config, "db", "upgrade")
    before = _table_rows(sqlite_url)
    text = _run(config, "rules", "explain", str(mail))
    assert "kind:      new_complaint" in text.output and "reply:" in text.output
    after = _table_rows(sqlite_url)
    assert after == before and len(after) > 1
    assert all(rows == [] for table, rows in after.items() if table != "alembic_version")


def _table_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, to compare a database before and after a command."""
    import sqlalchemy as sa

    from mailbot.db_engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {table: sorted(tuple(map(repr, row)) for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')))
                    for table in sa.inspect(conn).get_table_names()}
    finally:
        engine.dispose()


def test_rules_explain_on_a_database_without_schema_says_what_to_do(tmp_path, sqlite_url):
    """A database file that exists but was never upgraded gives one clear line, exit 2."""
    Path(sqlite_url[len("sqlite:///"):]).touch()
    config = _config(tmp_path, db_url=sqlite_url)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(complaint())
    result = CliRunner().invoke(cli, ["--config", str(config), "rules", "explain", str(mail)], obj={})
    assert result.exit_code == 2 and "run `mailbot db upgrade` first" in result.output
