"""Retention: closed cases past the period are pseudonymised and their raw mail deleted;
old quarantined raw mail goes too; --dry-run reports exactly that and changes nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Case, Event, Message, RawMail
from test_digest_seed import seed

NOW = datetime(2031, 12, 1, tzinfo=timezone.utc)


def _seeded(make_app, db_url):
    app = make_app(db_url=db_url, retention={"closed_case_days": 365, "quarantine_days": 90})
    with app.sessions.begin() as session:
        cases = seed(session)
        for role in ("multi", "cc"):
            case = session.get(Case, cases[role].id)
            case.status, case.closed_at = "closed", datetime(2029, 1, 1, tzinfo=timezone.utc)
        recent = session.get(Case, cases["anon"].id)
        recent.status, recent.closed_at = "closed", datetime(2031, 6, 1, tzinfo=timezone.utc)
    app.clock = lambda: NOW
    return app


def _snapshot(app):
    with app.sessions() as session:
        return {
            "raw": session.execute(select(func.count()).select_from(RawMail)).scalar_one(),
            "cases": sorted((c.ref, c.citizen_email, c.citizen_name, c.subject)
                            for c in session.execute(select(Case)).scalars()),
            "bodies": sorted(m.body_text for m in session.execute(select(Message)).scalars()),
        }


def test_dry_run_reports_and_changes_nothing(make_app, db_url):
    """--dry-run names the cases that would be pseudonymised and leaves every row as it was."""
    app = _seeded(make_app, db_url)
    before = _snapshot(app)
    report = app.run_retention(dry_run=True)
    assert report.closed_cases.refs == ["VO-2026-000002", "VO-2026-000003"]
    assert report.closed_cases.messages == 3 and report.closed_cases.raw_mails == 3
    assert report.quarantined == 1
    assert _snapshot(app) == before


def test_real_run_does_what_the_dry_run_said(make_app, db_url):
    """The real run has the dry run's counts, pseudonymises only the old closed cases, deletes
    their raw mail, records an audit event, and a second run finds nothing left."""
    app = _seeded(make_app, db_url)
    dry = app.run_retention(dry_run=True).as_dict()
    real = app.run_retention().as_dict()
    assert {**real, "dry_run": True} == dry
    with app.sessions() as session:
        cases = {c.ref: c for c in session.execute(select(Case)).scalars()}
        old = cases["VO-2026-000002"]
        assert old.citizen_email.endswith("@pseudonymised.invalid") and old.citizen_name == "" and old.subject == ""
        assert old.flags and old.outcome == "investigation"  # statistics survive
        assert cases["VO-2026-000004"].citizen_email == "sofie.maes@example.be"  # closed too recently
        texts = [m.body_text + m.from_email for m in session.execute(
            select(Message).where(Message.case_id == old.id)).scalars()]
        assert texts and all(t == "" for t in texts)
        assert session.execute(select(func.count()).select_from(Event).where(Event.type == "retention_run")).scalar_one() == 1
        marked = session.execute(select(Event.case_id, Event.detail).where(Event.type == "case_pseudonymised")).all()
        assert [(case_id, detail) for case_id, detail in marked if case_id == old.id] == [(old.id, {"why": "retention"})]
    assert app.run_retention().closed_cases.cases == 0


def test_cli_dry_run(tmp_path, make_app, sqlite_url):
    """`mailbot retention --dry-run` prints what would go."""
    make_app(db_url=sqlite_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=sqlite_url, retention={"imap_folders": False})))
    result = CliRunner().invoke(cli, ["--config", str(config), "retention", "--dry-run"], obj={},
                                catch_exceptions=False)
    assert result.exit_code == 0 and "would be" in result.output


def test_cli_exits_1_when_the_imap_folders_could_not_be_purged(tmp_path, make_app, sqlite_url):
    """The database part is done and reported; the folders' failure makes the exit status 1, so
    cron mails the operator (before: exit 0 with FAILED in one line of the output)."""
    make_app(db_url=sqlite_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=sqlite_url)))  # IMAP on a closed port
    result = CliRunner().invoke(cli, ["--config", str(config), "retention"], obj={}, catch_exceptions=False)
    assert result.exit_code == 1 and "FAILED" in result.output and "closed cases" in result.output


# ---- the audit's finding 4: personal data that belongs to no case ----------------------------

import hashlib  # noqa: E402

import pytest  # noqa: E402

from mailbot.config import settings_from_mapping  # noqa: E402
from mailbot.db import AddressStatus, Outbox  # noqa: E402
from mailbot.errors import ConfigError  # noqa: E402
from personal_scan import dump, scan  # noqa: E402
from test_digest_seed import Seeder, at  # noqa: E402

LATER = datetime(2027, 1, 5, tzinfo=timezone.utc)  # caseless_days 30: the limit is 6 December 2026
YOUNG = datetime(2027, 1, 2, tzinfo=timezone.utc)
REFUSED = "550 5.1.1 <scanner@example.be>: Recipient address rejected"


def _caseless_bed(make_app, db_url):
    """The seeded day (its caseless mail is old) plus an old undeliverable notice with its
    events and bounce memory, an old held reply, young caseless mail and events, and
    address_status rows of every kind."""
    app = make_app(db_url=db_url, retention={"closed_case_days": 365, "quarantine_days": 90, "caseless_days": 30})
    with app.sessions.begin() as session:
        cases = seed(session)
        s = Seeder(session)
        s.n = 100
        closed = session.get(Case, cases["multi"].id)
        closed.status, closed.closed_at = "closed", datetime(2026, 12, 1, tzinfo=timezone.utc)
        s.message(None, kind="automatic", received=YOUNG, subject="Afwezig", sender="young@example.be", name="Jong")
        for key, to, status in (("notice", "scanner@example.be", "failed"), ("held", "held@example.be", "held")):
            sent = Message(case_id=None, direction="out", kind="outgoing", message_id=f"{key}@vlaamseombudsdienst.be",
                           from_email="klachten@vlaamseombudsdienst.be", to_addrs=[to], subject="Uw bericht",
                           body_text=f"Beste {to}", sha256=hashlib.sha256(key.encode()).hexdigest(),
                           size=10, received_at=at(20, 9), sent_at=at(20, 9))
            session.add(sent)
            session.flush()
            session.add(Outbox(case_id=None, message_pk=sent.id, template="undeliverable", recipient=to,
                               message_id=f"{key}@vlaamseombudsdienst.be", mime=f"To: {to}\r\n\r\nx".encode(),
                               status=status, attempts=1, next_attempt_at=at(20, 9), created_at=at(20, 9),
                               last_error=REFUSED if status == "failed" else "replies_per_address_per_day"))
        session.add_all([
            Event(type="reply_failed", created_at=at(20, 10),
                  detail={"template": "undeliverable", "outbox_id": 1, "permanent": True, "reason": REFUSED}),
            Event(type="reply_released", created_at=YOUNG, detail={"outbox_id": 2, "recipient": "held@example.be"}),
            Event(type="privacy_erase", created_at=at(20, 11), detail={"request": "ab12", "cases": 1, "messages": 2}),
            *(AddressStatus(email=email, source="smtp", reason=f"550 <{email}>", created_at=when, updated_at=when)
              for email, when in (("scanner@example.be", at(20, 10)), ("karel.de.smet@example.be", at(20, 10)),
                                  ("held@example.be", at(20, 10)), ("young@example.be", YOUNG)))])
    app.clock = lambda: LATER
    return app


def _of_cases(app):
    with app.sessions() as session:
        return ([tuple(m.__dict__[k] for k in ("id", "from_email", "subject", "body_text", "message_id"))
                 for m in session.execute(select(Message).where(Message.case_id.is_not(None)).order_by(Message.id)).scalars()],
                sorted((c.ref, c.citizen_email, c.subject) for c in session.execute(select(Case)).scalars()),
                [(o.id, o.recipient, o.status) for o in session.execute(select(Outbox).order_by(Outbox.id)).scalars()
                 if o.case_id is not None or o.status == "held"])


def test_caseless_data_older_than_the_limit_is_purged(make_app, db_url):
    """Old caseless mail in and out, its raw mail, the old undeliverable notice in message and
    outbox, caseless events and unused address_status rows go; cases (open or closed), held
    replies, quarantined mail and anything younger stay; the dry run said exactly that and
    changed nothing; a second run finds nothing."""
    app = _caseless_bed(make_app, db_url)
    assert scan(app.sessions, "x@example.be", "scanner@example.be")
    state, cases_before = dump(app.sessions), _of_cases(app)
    dry = app.run_retention(dry_run=True)
    assert dump(app.sessions) == state
    real = app.run_retention()
    assert {**real.as_dict(), "dry_run": True} == dry.as_dict()
    assert scan(app.sessions, "x@example.be", "scanner@example.be") == []
    caseless = real.caseless
    # 4 old caseless "ouder bericht" mails + the notice's message; raw: those 4 (the notice has none)
    assert (caseless.messages, caseless.outbox, caseless.raw_mails, caseless.addresses) == (5, 1, 4, 1)
    assert caseless.events >= 2  # the reply_failed reason and the seed's rules error
    assert _of_cases(app) == cases_before
    with app.sessions() as session:
        assert sorted(session.execute(select(AddressStatus.email)).scalars()) == [
            "held@example.be", "karel.de.smet@example.be", "young@example.be"]
        young = session.execute(select(Message).where(Message.from_email == "young@example.be")).scalar_one()
        assert session.get(RawMail, young.sha256) is not None
        held = session.execute(select(Message).where(Message.message_id == "held@vlaamseombudsdienst.be")).scalar_one()
        assert held.to_addrs == ["held@example.be"]
        quarantined = session.execute(select(Message).where(Message.quarantine_reason.is_not(None))).scalar_one()
        assert session.get(RawMail, quarantined.sha256) is not None  # its own, longer period
        events = {e.type: e.detail for e in session.execute(select(Event)).scalars()}
    assert events["reply_failed"] == {"template": "undeliverable", "outbox_id": 1, "permanent": True}
    assert events["reply_released"] == {"outbox_id": 2, "recipient": "held@example.be"}  # young
    assert events["privacy_erase"] == {"request": "ab12", "cases": 1, "messages": 2}
    assert events["retention_run"]["caseless"]["messages"] == 5
    again = app.run_retention().caseless
    assert again.as_dict(with_refs=False) == {k: 0 for k in again.as_dict(with_refs=False)}
    assert "caseless data were purged: 0 message(s)" in app.run_retention().lines()[-1]


def test_raw_mail_shared_by_a_closed_case_and_caseless_mail_goes_in_one_run(make_app, sqlite_url):
    """A raw mail referenced by a message of a closed case and by a caseless copy is deleted
    once both are scrubbed, not kept for ever because each looks like the other's user."""
    app = _seeded(make_app, sqlite_url)
    with app.sessions.begin() as session:
        case_message = session.execute(select(Message).where(Message.subject == "Huurpremie geweigerd")).scalar_one()
        session.add(Message(case_id=None, direction="in", kind="automatic", message_id="copy@mail.example.be",
                            from_email="marie.dubois@example.be", subject="kopie", sha256=case_message.sha256,
                            received_at=datetime(2029, 1, 1, tzinfo=timezone.utc)))
        sha = case_message.sha256
    app.run_retention()
    with app.sessions() as session:
        assert session.get(RawMail, sha) is None


def test_caseless_days_is_validated_with_a_default():
    """`retention.caseless_days` defaults to 90 days and must be at least 1."""
    assert settings_from_mapping(base_config()).retention.caseless_days == 90
    with pytest.raises(ConfigError, match="caseless_days"):
        settings_from_mapping(base_config(retention={"caseless_days": 0}))
