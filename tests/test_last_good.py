"""The rules and templates in force are saved in the database (`last_good_rules`); when the
files are invalid at start, the robot starts on that set instead of not at all."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from conftest import REPO, base_config
from mailbot.app import create_app
from mailbot.cli_rules import rules_group
from mailbot.config import settings_from_mapping
from mailbot.db import Event, LastGoodRules
from mailbot.db_engine import make_engine
from mailbot.errors import RulesError
from mailbot.migrate import upgrade
from mailbot.template_vars import sample_context

# The audit's broken deploy: a backslash in a double-quoted YAML string.
BROKEN = 'rules:\n  - name: "broken \\A"\n'


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    return rules, templates


def _start(db_url: str, rules: Path, templates: Path):
    settings = settings_from_mapping(base_config(db_url=db_url, rules_dir=str(rules), templates_dir=str(templates)))
    engine = make_engine(settings.database.url)
    upgrade(engine)
    return create_app(settings, engine=engine)


def _break(rules: Path, templates: Path) -> None:
    routing = rules / "routing.yaml"
    routing.write_text(routing.read_text(encoding="utf-8").replace("rules:\n", BROKEN, 1), encoding="utf-8")
    ack = templates / "ack_investigation" / "nl.txt.j2"
    ack.write_text(ack.read_text(encoding="utf-8") + "{% if case_ref %}broken\n", encoding="utf-8")


def test_start_on_invalid_files_uses_the_last_good_set(files, db_url, caplog):
    """A deploy the running robot refused does not stop the next start: the robot starts on the
    saved rules and templates, logs one error line, records rules_reload_failed once, and takes
    the files again once they are fixed. `rules check` stays strict about the files."""
    rules, templates = files
    good_routing = (rules / "routing.yaml").read_text(encoding="utf-8")
    good_ack = (templates / "ack_investigation" / "nl.txt.j2").read_text(encoding="utf-8")
    app = _start(db_url, rules, templates)
    app.routing.reload_if_changed()  # every poll: saves the set in force once
    in_force = app.routing.fingerprint
    app.close()

    _break(rules, templates)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        app = _start(db_url, rules, templates)
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert "routing.yaml" in errors[0] and "started on the last good set" in errors[0]
        assert app.routing.fingerprint == in_force
        reply = app.renderer.render("ack_investigation", "nl", sample_context("ack_investigation"))
        assert "broken" not in reply.text and "VO-2026-000123" in reply.text

        app.routing.reload_if_changed()
        app.routing.reload_if_changed()
        with app.sessions() as session:
            [event] = session.execute(select(Event).where(Event.type == "rules_reload_failed")).scalars()
        assert "routing.yaml" in event.detail["error"] and "ack_investigation/nl.txt.j2" in event.detail["error"]

        result = CliRunner().invoke(rules_group, ["check", "--rules-dir", str(rules), "--templates-dir",
                                                  str(templates)], obj={"config_path": None})
        assert result.exit_code == 1 and "routing.yaml" in result.output

        (rules / "routing.yaml").write_text(good_routing.replace("rules:\n", "rules:\n# fixed\n", 1), encoding="utf-8")
        (templates / "ack_investigation" / "nl.txt.j2").write_text(good_ack, encoding="utf-8")
        assert not app.routing.reload_if_changed()  # taken when the next check reads the same
        assert app.routing.reload_if_changed() and app.routing.last_error is None
        with app.sessions() as session:
            saved = session.execute(select(LastGoodRules.fingerprint)).scalars().all()
        assert saved == [app.routing.fingerprint] != [in_force]  # the new set replaced the old one
    finally:
        app.close()


def test_first_start_on_invalid_files_still_fails(files, sqlite_url):
    """With no set saved (a first start), invalid files are refused with `file:line` as before."""
    rules, templates = files
    _break(rules, templates)
    with pytest.raises(RulesError, match=r"routing\.yaml:\d+: YAML syntax error") as caught:
        _start(sqlite_url, rules, templates)
    assert "ack_investigation/nl.txt.j2" in str(caught.value)


def test_missing_builtin_template_is_a_check_problem(files):
    """A template the robot sends itself (whatever the rules say) is required by the check."""
    from mailbot.render import Renderer

    _, templates = files
    shutil.rmtree(templates / "forward_added")
    assert Renderer(templates).check() == [
        "templates/forward_added/nl.txt.j2:1: file missing (template 'forward_added' is used by the robot itself)"]
