"""The last good rules and templates, kept in the database (`last_good_rules`).

The rule files and templates in force are saved as one set, one set at most; when the files
on disk are invalid at start, `routing_stage` starts on the saved set instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

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
            files = {name: None if row.rules.get(name) is None else str(row.rules[name]).encode()
                     for name in FILES}
            templates = TemplateSet({str(k): str(v).encode() for k, v in row.templates["files"].items()},
                                    frozenset(str(f) for f in row.templates["folders"]))
            return row.fingerprint, row.saved_at, files, templates
    except SQLAlchemyError as db_err:
        log.error("the last good rules could not be read from the database: %s", describe_error(db_err))
        return None


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
