"""Dates the digest shows staff are the office's calendar days, also for mail an import brings in."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from conftest import base_config
from mailbot.app import create_app
from mailbot.config import load_settings
from mailbot.digest_data import collect
from test_import import _import
from test_import_audit import letter, mbox

BRUSSELS = ZoneInfo("Europe/Brussels")


def test_an_imported_case_received_after_local_midnight_shows_the_office_day(db_url, tmp_path: Path):
    """A mail dated 23:30 UTC ten days ago came in at 00:30 the next day in Brussels: the digest
    of the import's day lists the case it opened as received that next day (it showed the UTC
    day, one day early, on SQLite)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url)), encoding="utf-8")
    today = datetime.now(BRUSSELS).date()
    sent = datetime.combine(today - timedelta(days=10), time(23, 30), timezone.utc)
    result = _import(config, str(mbox(tmp_path / "archief.mbox", [letter(1, when=sent)])))
    assert result.exit_code == 0, result.output
    app = create_app(load_settings(config))
    try:
        with app.sessions() as session:
            data = collect(session, app.settings, today)
    finally:
        app.close()
    section = next(s for s in data.info if s.key == "imported_open")
    [item] = [item for _, items in section.groups for item in items]
    assert f"ontvangen {sent.astimezone(BRUSSELS):%d-%m-%Y}," in str(item.detail)
    assert sent.astimezone(BRUSSELS).date() == sent.date() + timedelta(days=1)
