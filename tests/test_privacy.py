"""`mailbot privacy erase --email`: a data-subject request pseudonymises every trace of the
address, and its audit event holds no personal data."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from mailbot.db import Case, Event, Message, Outbox
from mailbot.cli import cli
from test_digest_seed import seed


def test_erase_pseudonymises_every_case_and_message_of_the_address(tmp_path, make_app, db_url):
    """Both of Jan's cases, his messages and the replies to him lose his data; others keep theirs;
    the audit event has counts only."""
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        seed(session)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url)))
    dry = CliRunner().invoke(cli, ["--config", str(config), "privacy", "erase", "--email", "Jan.Peeters@example.be",
                                   "--dry-run"], obj={}, catch_exceptions=False)
    assert dry.exit_code == 0 and "2 case(s)" in dry.output and "would be" in dry.output
    result = CliRunner().invoke(cli, ["--config", str(config), "privacy", "erase", "--email",
                                      "jan.peeters@example.be"], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        dump = json.dumps([[c.citizen_email, c.citizen_name, c.subject] for c in session.execute(select(Case)).scalars()]
                          + [[m.from_email, m.from_name, m.subject, m.body_text, m.original_sender or ""]
                             for m in session.execute(select(Message)).scalars()]
                          + [[o.recipient, o.mime.decode(errors="replace")] for o in session.execute(select(Outbox)).scalars()]
                          + [e.detail for e in session.execute(select(Event)).scalars()])
        assert "jan.peeters" not in dump.lower() and "Peeters" not in dump.replace("An Peeters", "")
        assert "marie.dubois@example.be" in dump  # somebody else's data stays
        [audit] = session.execute(select(Event).where(Event.type == "privacy_erase")).scalars()
    assert audit.detail["cases"] == 2 and audit.detail["messages"] >= 2
    assert "@" not in json.dumps(audit.detail) and "refs" not in audit.detail
