"""Upgrading an installation: what an office kept from an older release must not stop the
robot nor cost staff their morning digest.

- The rules in force, saved in the database by the older release, are started on when the
  files on disk fail this release's stricter checks: an ombudsman service without
  `competent:` (required now) is read as it was then, competent.
- An older templates/_digest/labels.j2 has no title for a section added since (idle open
  cases); the digest then fails only on a day that section lists a case, so it is rendered
  with mailbot's own digest templates, with a note saying why."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from conftest import REPO, base_config
from mailbot import digest
from mailbot.config import settings_from_mapping
from mailbot.app import create_app
from mailbot.db_engine import make_engine
from mailbot.last_good import save_last_good
from mailbot.migrate import upgrade
from mailbot.render import read_templates
from mailbot.rules import read_rule_files

NOTE = "Let op: de eigen sjablonen van dit dagoverzicht (templates/_digest) gaven een fout"
IDLE_TITLE = "Open dossiers al 90 dagen (of een veelvoud daarvan) zonder activiteit"


def _office_templates(tmp_path: Path) -> Path:
    """The shipped templates with the labels.j2 of a release before idle open cases: no
    `idle_open` entry (the office copied its templates then and kept them)."""
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    labels = folder / "_digest" / "labels.j2"
    older = re.sub(r'(?m)^\s*"idle_open": .*\n', "", labels.read_text(encoding="utf-8"))
    labels.write_text(older, encoding="utf-8")
    return folder


def _idle_day():
    """A digest whose idle-cases section lists a case (`sample_digests` lists every section)."""
    data = digest.sample_digests()[0]
    assert any(s.key == "idle_open" and s.count for s in data.info)
    return data


@pytest.mark.parametrize("in_force", [False, True], ids=["from-disk", "set-in-force"])
def test_an_older_labels_file_still_gives_a_digest(tmp_path: Path, in_force: bool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    folder = _office_templates(tmp_path)
    settings = settings_from_mapping(base_config(templates_dir=str(folder)))
    templates = read_templates(folder) if in_force else None
    with caplog.at_level(logging.ERROR, logger="mailbot.digest"):
        rendered = digest.render(settings, _idle_day(), templates=templates)
    assert rendered.text.startswith(NOTE)
    assert "idle_open" in rendered.text  # the error itself, for the administrator
    assert IDLE_TITLE in rendered.text  # the new section, titled by the shipped labels
    assert "VO-2026-000123" in rendered.text
    body = rendered.html.index("<body")
    assert body < rendered.html.index(NOTE) < rendered.html.index("<h1")
    assert rendered.subject
    assert any("rules check" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_rules_check_still_names_the_older_labels_file(tmp_path: Path) -> None:
    """The fallback keeps staff informed; the administrator is still told what to fix."""
    problems = digest.check_templates(_office_templates(tmp_path))
    assert any("idle_open" in p and "labels.j2" in p for p in problems)


def test_working_digest_templates_get_no_note(tmp_path: Path) -> None:
    settings = settings_from_mapping(base_config(templates_dir=str(REPO / "templates")))
    rendered = digest.render(settings, _idle_day())
    assert NOTE not in rendered.text and NOTE not in rendered.html
    assert IDLE_TITLE in rendered.text


def test_digest_templates_the_fallback_cannot_mend_still_fail(tmp_path: Path) -> None:
    """Nothing to fall back on (mailbot's own digest templates fail too): the office's error."""
    folder = _office_templates(tmp_path)
    settings = settings_from_mapping(base_config(templates_dir=str(folder)))
    broken = dataclasses.replace(digest.sample_digests()[0], totals=None)  # type: ignore[arg-type]
    with pytest.raises(digest.RulesError, match="digest template"):
        digest.render(settings, broken)


# An office's own ombudsman service as an older release took it: no `competent:`.
OWN_OMBUDSMAN = """  - id: ombudsdienst-leuven
    name: Ombudsdienst Stad Leuven
    kind: ombudsman
    aliases: [ombudsdienst leuven]
    domains: [leuven.be]
    contact: https://www.leuven.be/ombudsdienst

"""


def test_the_rules_an_older_release_ran_on_still_start_the_robot(tmp_path: Path, db_url: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    services = rules / "services.yaml"
    text = services.read_text(encoding="utf-8")
    services.write_text(text.replace("services:\n", "services:\n" + OWN_OMBUDSMAN, 1), encoding="utf-8")
    settings = settings_from_mapping(base_config(db_url=db_url, rules_dir=str(rules), templates_dir=str(templates)))
    engine = make_engine(settings.database.url)
    upgrade(engine)
    with Session(engine) as session, session.begin():  # what the older release saved while it ran
        save_last_good(session, "saved-by-an-older-release", read_rule_files(rules), read_templates(templates))
    with caplog.at_level(logging.WARNING, logger="mailbot.rules"):
        app = create_app(settings, engine=engine)
    try:
        [leuven] = [s for s in app.routing.ruleset.services if s.id == "ombudsdienst-leuven"]
        assert leuven.competent  # as the older release read it: nothing changes until the office says
        assert "competent" in (app.routing.last_error or "")  # the files on disk are still refused
        told = " ".join(r.getMessage() for r in caplog.records)
        assert "ombudsdienst-leuven" in told and "rules/services.yaml" in told
    finally:
        app.close()
