"""Rules are reloaded between batches of the running poll loop; a bad edit changes nothing."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from conftest import REPO, complaint
from helpers import append_all, imap_config
from mailbot.db import Case

pytestmark = pytest.mark.dovecot

URGENT_RULE = """rules:
  - name: everything-urgent
    description: test rule added while the robot runs
    then:
      priority: urgent
      tags: [hot-reloaded]
    continue: true
"""


def test_good_edit_applies_and_bad_edit_is_refused(tmp_path, make_app, dovecot, smtp_sink, sqlite_url):
    """An edit takes effect at the next poll without a restart; a typo keeps the last good rules."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port}, db_url=sqlite_url,
                   rules_dir=str(rules))

    append_all(dovecot, [complaint(sender="een@example.be")])
    app.poll_once()

    routing = (rules / "routing.yaml").read_text()
    (rules / "routing.yaml").write_text(routing.replace("rules:\n", URGENT_RULE, 1))
    append_all(dovecot, [complaint(sender="twee@example.be")])
    app.poll_once()
    assert app.routing.last_error is None

    (rules / "routing.yaml").write_text(routing.replace("rules:\n", URGENT_RULE.replace("priority:", "priorty:"), 1))
    append_all(dovecot, [complaint(sender="drie@example.be")])
    app.poll_once()

    with app.sessions() as session:
        cases = {c.citizen_email: c for c in session.execute(select(Case)).scalars()}
    assert cases["een@example.be"].priority == "normal" and "hot-reloaded" not in cases["een@example.be"].tags
    assert cases["twee@example.be"].priority == "urgent" and "hot-reloaded" in cases["twee@example.be"].tags
    # The bad edit was refused: the last good rules (with the urgent rule) still apply.
    assert cases["drie@example.be"].priority == "urgent"
    assert "routing.yaml" in app.routing.last_error and "priorty" in app.routing.last_error
