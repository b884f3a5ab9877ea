"""The last good rules and templates, kept in the database (`last_good_rules`).

The rule files and templates in force are saved as one set, one set at most; when the files
on disk are invalid at start, `routing_stage` starts on the saved set instead.

A set saved by an older release is read with the meaning it had then (`as_saved`): the robot
starts on the rules it ran on the day before an upgrade, even where this release's checks ask
the files on disk for more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import yaml
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .db import LastGoodRules, utcnow
from .db_engine import describe_error
from .render import TemplateSet
from .rules import FILES

log = logging.getLogger("mailbot.rules")

RuleFiles = Mapping[str, bytes | None]


def load_last_good(sessions: sessionmaker) -> tuple[str, datetime, RuleFiles, TemplateSet] | None:
    """The saved set: (fingerprint, saved at, rule files, templates); None when there is none
    or the database cannot be read (logged)."""
    try:
        with sessions() as session:
            row = session.execute(select(LastGoodRules).order_by(LastGoodRules.saved_at.desc())
                                  .limit(1)).scalar_one_or_none()
            if row is None:
                return None
            files = as_saved(_rule_files(row.rules))
            templates = TemplateSet({str(k): str(v).encode() for k, v in row.templates["files"].items()},
                                    frozenset(str(f) for f in row.templates["folders"]))
            return row.fingerprint, row.saved_at, files, templates
    except SQLAlchemyError as db_err:
        log.error("the last good rules could not be read from the database: %s", describe_error(db_err))
        return None


def saved_rule_files(session: Session) -> RuleFiles | None:
    """The rule files of the saved set, as this release reads them (`as_saved`); None
    without one. For what only needs the rules in force (the digest's service names)."""
    rules = session.execute(select(LastGoodRules.rules).order_by(LastGoodRules.saved_at.desc())
                            .limit(1)).scalar_one_or_none()
    return None if rules is None else as_saved(_rule_files(rules))


def _rule_files(saved: Mapping) -> RuleFiles:
    return {name: None if saved.get(name) is None else str(saved[name]).encode() for name in FILES}


def as_saved(files: RuleFiles) -> RuleFiles:
    """`files` of a saved set with what an older release meant by them written out, so that
    this release's checks take them: an ombudsman service without `competent:` was competent
    (the default then; now required, as the default referred nothing). The administrator is
    told to say it in rules/services.yaml; the files on disk stay strict."""
    text = files.get("services.yaml")
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return files  # refused by the check as it is, with its line
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, list):
        return files
    implicit = [s for s in services if isinstance(s, dict) and s.get("kind") == "ombudsman" and "competent" not in s]
    if not implicit:
        return files
    for service in implicit:
        service["competent"] = True
    log.warning("the last good rules were saved by an older release: ombudsman service(s) %s have no 'competent:' "
                "and are read as competent, as then; write competent: false (usually) or true for them in "
                "rules/services.yaml", ", ".join(repr(s.get("id")) for s in implicit))
    return {**files, "services.yaml": yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()}


def save_last_good(session: Session, fingerprint: str, files: RuleFiles, templates: TemplateSet) -> None:
    """Keep `fingerprint`'s set as the only saved one (texts: a few hundred kB at most)."""
    session.execute(delete(LastGoodRules).where(LastGoodRules.fingerprint != fingerprint))
    row = session.get(LastGoodRules, fingerprint)
    if row is not None:
        row.saved_at = utcnow()
        return
    session.add(LastGoodRules(
        fingerprint=fingerprint, saved_at=utcnow(),
        rules={name: None if files.get(name) is None else (files[name] or b"").decode("utf-8", "replace")
               for name in FILES},
        templates={"files": {path: data.decode("utf-8", "replace") for path, data in templates.files.items()},
                   "folders": sorted(templates.folders)}))
