"""Rules and templates are reloaded between batches of the running poll loop (once two
consecutive checks read the same files: a deploy caught half-way is not taken); a bad edit
changes nothing, and a template that fails at reply time never makes the mail unreadable."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import REPO, complaint
from helpers import append_all, imap_config
from mailbot.db import Case, Event, Message, Outbox
from mailbot.digest_data import collect

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
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    append_all(dovecot, [complaint(sender="twee@example.be")])
    app.poll_once()
    assert app.routing.last_error is None

    (rules / "routing.yaml").write_text(routing.replace("rules:\n", URGENT_RULE.replace("priority:", "priorty:"), 1))
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    append_all(dovecot, [complaint(sender="drie@example.be")])
    app.poll_once()

    with app.sessions() as session:
        cases = {c.citizen_email: c for c in session.execute(select(Case)).scalars()}
    assert cases["een@example.be"].priority == "normal" and "hot-reloaded" not in cases["een@example.be"].tags
    assert cases["twee@example.be"].priority == "urgent" and "hot-reloaded" in cases["twee@example.be"].tags
    # The bad edit was refused: the last good rules (with the urgent rule) still apply.
    assert cases["drie@example.be"].priority == "urgent"
    assert "routing.yaml" in app.routing.last_error and "priorty" in app.routing.last_error


HOT_RULE = """rules:
  - name: hot-added
    description: a rule with a template added while the robot runs
    when: {subject_regex: HOTRULE}
    then: {template: hot_tpl}
"""
ACK = "Wij hebben uw klacht goed ontvangen"


def _app(tmp_path: Path, make_app, dovecot, smtp_sink, sqlite_url, **config):
    """An app on copies of the shipped rules and templates, which the test then edits."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port}, db_url=sqlite_url,
                   rules_dir=str(rules), templates_dir=str(templates), **config)
    return app, rules, templates


def _poll(app, dovecot, *raws: bytes):
    append_all(dovecot, list(raws))
    return app.poll_once()


def _replies(app) -> dict[str, tuple[str, str]]:
    """recipient → (template, plain text) of every queued reply."""
    with app.sessions() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        return {row.recipient: (row.template, email.message_from_bytes(row.mime, policy=email.policy.default)
                                .get_body(("plain",)).get_content()) for row in rows}


def _events(app, type_: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.execute(select(Event).where(Event.type == type_)).scalars())


def test_broken_template_keeps_the_last_good_one(tmp_path, make_app, dovecot, smtp_sink, sqlite_url):
    """A syntax error deployed in a template is refused at the next poll: complaints still get
    their case and an acknowledgment rendered from the last good template (nothing is
    quarantined), the refusal is recorded once; the fixed template is used from the next poll."""
    app, _, templates = _app(tmp_path, make_app, dovecot, smtp_sink, sqlite_url)
    ack = templates / "ack_investigation" / "nl.txt.j2"
    good = ack.read_text(encoding="utf-8")
    ack.write_text(good + "{% if case_ref %}broken\n", encoding="utf-8")

    first = _poll(app, dovecot, complaint(sender="een@example.be"))
    second = _poll(app, dovecot, complaint(sender="twee@example.be"))
    assert (first.processed, first.quarantined, second.processed, second.quarantined) == (1, 0, 1, 0)
    assert "ack_investigation/nl.txt.j2" in (app.routing.last_error or "")
    [failed] = _events(app, "rules_reload_failed")  # once, not once per poll
    assert "ack_investigation/nl.txt.j2" in failed.detail["error"]

    ack.write_text(good.replace(ACK, "Wij hebben uw klacht GOED ontvangen"), encoding="utf-8")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    _poll(app, dovecot, complaint(sender="drie@example.be"))
    assert app.routing.last_error is None
    replies = _replies(app)
    for sender in ("een@example.be", "twee@example.be"):
        assert replies[sender][0] == "ack_investigation" and ACK in replies[sender][1]
        assert "broken" not in replies[sender][1]
    assert "Wij hebben uw klacht GOED ontvangen" in replies["drie@example.be"][1]
    with app.sessions() as session:
        assert session.execute(select(Message).where(Message.kind == "unreadable")).first() is None
        assert len(session.execute(select(Case)).all()) == 3


def test_broken_digest_template_keeps_the_last_good_digest(tmp_path, make_app, dovecot, smtp_sink, sqlite_url):
    """The digest renders from the set in force too: a syntax error deployed in the digest
    template is refused at the next poll, and the morning digest still goes out."""
    app, _, templates = _app(tmp_path, make_app, dovecot, smtp_sink, sqlite_url,
                             digest={"recipients": ["onthaal@vlaamseombudsdienst.be"]})
    _poll(app, dovecot, complaint(sender="een@example.be"))
    digest_text = templates / "_digest" / "nl.txt.j2"
    digest_text.write_text(digest_text.read_text(encoding="utf-8") + "{% if d %}\n", encoding="utf-8")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    _poll(app, dovecot, complaint(sender="twee@example.be"))
    assert "_digest/nl.txt.j2" in (app.routing.last_error or "")
    assert app.send_digest(app.local_today()) == 1
    assert len(smtp_sink.messages) == 3  # two acknowledgments and the digest


def test_deleted_template_keeps_the_last_good_copy(tmp_path, make_app, dovecot, smtp_sink, sqlite_url):
    """A template folder deleted while the robot needs it is refused; replies keep coming from
    the copy in memory."""
    app, _, templates = _app(tmp_path, make_app, dovecot, smtp_sink, sqlite_url)
    shutil.rmtree(templates / "ack_investigation")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    report = _poll(app, dovecot, complaint(sender="een@example.be"))
    assert (report.processed, report.quarantined) == (1, 0)
    assert "ack_investigation" in (app.routing.last_error or "")
    template, text = _replies(app)["een@example.be"]
    assert template == "ack_investigation" and ACK in text


def test_rule_waiting_for_its_template_is_taken_when_the_template_arrives(tmp_path, make_app, dovecot,
                                                                            smtp_sink, sqlite_url):
    """A rule naming a template that is not there yet is refused; when the template is deployed
    (the rule files unchanged) the rule is tried again and applies from that poll on."""
    app, rules, templates = _app(tmp_path, make_app, dovecot, smtp_sink, sqlite_url)
    routing = rules / "routing.yaml"
    routing.write_text(routing.read_text(encoding="utf-8").replace("rules:\n", HOT_RULE, 1), encoding="utf-8")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    _poll(app, dovecot, complaint(sender="een@example.be", subject="HOTRULE studietoelage"))
    assert "unknown template 'hot_tpl'" in (app.routing.last_error or "")

    shutil.copytree(templates / "status_neutral", templates / "hot_tpl")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    _poll(app, dovecot, complaint(sender="twee@example.be", subject="HOTRULE studietoelage"))
    assert app.routing.last_error is None and "hot_tpl" in app.routing.template_names
    replies = _replies(app)
    assert replies["een@example.be"][0] == "ack_investigation"  # the rules in force then
    assert replies["twee@example.be"][0] == "hot_tpl"


# Fails only on the first case's reference (…000001), which no sample of `rules check` has.
CRASHING_GREETING = '{{ 1 // (case_ref[-1:] != "1") }}\n'


def test_template_failing_at_reply_time_does_not_make_the_mail_unreadable(tmp_path, make_app, dovecot,
                                                                           smtp_sink, sqlite_url):
    """A template that renders for `rules check` but fails on a real mail (here: the first
    case's reference): the mail is recorded and its case opened, the reply is skipped with a
    `reply_skipped` event, the case flagged needs_triage, and the digest lists it with the reason."""
    clock = lambda: datetime(2026, 11, 23, 10, tzinfo=timezone.utc)  # noqa: E731
    app, _, templates = _app(tmp_path, make_app, dovecot, smtp_sink, sqlite_url, clock=clock)
    ack = templates / "ack_investigation" / "nl.txt.j2"
    ack.write_text(ack.read_text(encoding="utf-8").replace("{% block body %}\n",
                                                           "{% block body %}\n" + CRASHING_GREETING, 1),
                   encoding="utf-8")
    app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    report = _poll(app, dovecot, complaint(sender="anoniem@example.be", name=""),
                   complaint(sender="jan@example.be", name="Jan Peeters"))
    assert app.routing.last_error is None  # the edit passed the check and is in force
    assert (report.processed, report.quarantined) == (2, 0)

    with app.sessions() as session:
        cases = {c.citizen_email: c for c in session.execute(select(Case)).scalars()}
        assert "needs_triage" in cases["anoniem@example.be"].flags
        assert cases["anoniem@example.be"].first_reaction_at is None
        [skipped] = session.execute(select(Event).where(Event.type == "reply_skipped")).scalars()
        assert skipped.case_id == cases["anoniem@example.be"].id and skipped.message_pk is not None
        assert "ack_investigation/nl.txt.j2" in skipped.detail["reason"]
        data = collect(session, app.settings, date(2026, 11, 23))
    assert set(_replies(app)) == {"jan@example.be"}
    [triage] = [s for s in data.decisions if s.key == "needs_triage"]
    [item] = [i for _, items in triage.groups for i in items]
    assert item.ref == cases["anoniem@example.be"].ref
    assert any("ack_investigation/nl.txt.j2" in extra for extra in item.extras)
