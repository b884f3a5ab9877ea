"""Closing cases: `mailbot case close/reopen`, mail that comes in on a closed case, and
retention, which only ever applies to closed cases (audit finding 1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

import mailbot.app
from conftest import base_config, complaint
from mailbot.cli import cli
from mailbot.db import Case, Event, Message, Outbox, RawMail
from mailbot.decide import ON_CLOSED, CaseView, decide
from mailbot.model import Address, Classification, Facts, Kind, Mail, Match
from mailbot.pipeline import process_files

T0 = datetime(2026, 11, 23, 10, tzinfo=timezone.utc)
CITIZEN = "jan.peeters@example.be"
DESIGN_CASE_FIELDS = {"ref", "status", "citizen_email", "investigator_email", "language", "created_at",
                      "flags", "also_sent_to", "duplicate_of", "messages"}


@pytest.fixture
def app(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url, retention={"closed_case_days": 30})
    app.intake.clock = app.intake.matching.clock = lambda: T0
    process_files(app.intake, [complaint()])
    return app


@pytest.fixture
def config(tmp_path, app) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=str(app.settings.database.url),
                                               retention={"closed_case_days": 30})))
    return path


@pytest.fixture
def at(monkeypatch):
    """at(moment): the CLI's next commands run with their clock at `moment`."""
    real = mailbot.app.create_app

    def set_clock(moment: datetime) -> None:
        monkeypatch.setattr(mailbot.app, "create_app", lambda settings, **kw: real(settings, clock=lambda: moment))

    return set_clock


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={},
                                catch_exceptions=False)


def _ref(app) -> str:
    with app.sessions() as session:
        return session.execute(select(Case.ref)).scalar_one()


def _case(app, ref: str) -> Case:
    with app.sessions() as session:
        return session.execute(select(Case).where(Case.ref == ref)).scalar_one()


def _events(app, type_: str) -> list[dict]:
    with app.sessions() as session:
        rows = session.execute(select(Event).where(Event.type == type_).order_by(Event.id)).scalars()
        return [e.detail for e in rows]


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


# ---------------------------------------------------------------- the commands

def test_close_sets_status_and_date_and_records_who_and_why(app, config, at):
    """`case close REF --note --by` closes the case at the clock's time with one audit event."""
    ref = _ref(app)
    at(T0 + timedelta(days=2))
    result = _run(config, "case", "close", ref.lower(), "--note", "opgelost na bemiddeling", "--by", "An Peeters")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{ref} closed" in result.output and "30 days after closing" in result.output
    case = _case(app, ref)
    assert case.status == "closed" and _aware(case.closed_at) == T0 + timedelta(days=2)
    assert _events(app, "case_closed") == [{"by": "An Peeters", "note": "opgelost na bemiddeling",
                                            "old": "open", "new": "closed"}]


def test_close_is_idempotent(app, config, at):
    """Closing a closed case again changes nothing: same date, no second event, exit 0."""
    ref = _ref(app)
    at(T0)
    _run(config, "case", "close", ref)
    at(T0 + timedelta(days=5))
    again = _run(config, "case", "close", ref, "--note", "nogmaals")
    assert again.exit_code == 0 and "already closed" in again.output and "nothing changed" in again.output
    assert _aware(_case(app, ref).closed_at) == T0 and len(_events(app, "case_closed")) == 1


def test_reopen_undoes_close_and_is_idempotent(app, config, at):
    """`case reopen` sets the case open without a closing date, once; an open case is left alone."""
    ref = _ref(app)
    at(T0)
    not_closed = _run(config, "case", "reopen", ref)
    assert not_closed.exit_code == 0 and "is not closed" in not_closed.output
    _run(config, "case", "close", ref)
    reopened = _run(config, "case", "reopen", ref, "--note", "burger bezorgt nieuwe stukken", "--by", "An")
    assert reopened.exit_code == 0 and f"{ref} reopened" in reopened.output
    case = _case(app, ref)
    assert case.status == "open" and case.closed_at is None
    [event] = _events(app, "case_reopened")
    assert (event["by"], event["note"], event["old"], event["new"]) == ("An", "burger bezorgt nieuwe stukken",
                                                                        "closed", "open")
    assert _run(config, "case", "reopen", ref).output.startswith(f"{ref} is not closed")
    assert len(_events(app, "case_reopened")) == 1


def test_unknown_reference_is_a_clear_error(app, config):
    """Close or reopen of a reference that does not exist exits 1, names it, and writes nothing."""
    for command in ("close", "reopen"):
        result = _run(config, "case", command, "VO-2026-999999")
        assert result.exit_code == 1 and "no case VO-2026-999999" in result.stderr
    assert _events(app, "case_closed") == [] and _case(app, _ref(app)).status == "open"


def test_json_output_is_case_show_plus_changed(app, config):
    """--json gives what `case show --json` gives (with closed_at) plus whether anything changed."""
    ref = _ref(app)
    closed = json.loads(_run(config, "case", "close", ref, "--json").stdout)
    shown = json.loads(_run(config, "case", "show", ref, "--json").stdout)
    assert DESIGN_CASE_FIELDS <= set(closed) and closed["changed"] is True
    assert {k: v for k, v in closed.items() if k != "changed"} == shown
    assert shown["status"] == "closed" and shown["closed_at"]
    assert json.loads(_run(config, "case", "close", ref, "--json").stdout)["changed"] is False
    reopened = json.loads(_run(config, "case", "reopen", ref, "--json").stdout)
    assert (reopened["status"], reopened["closed_at"], reopened["changed"]) == ("open", None, True)


def test_a_pseudonymised_case_cannot_be_reopened(app, config, at):
    """Once retention has pseudonymised a case there is no citizen left to handle it for."""
    ref = _ref(app)
    at(T0)
    _run(config, "case", "close", ref)
    at(T0 + timedelta(days=31))
    _run(config, "retention")
    result = _run(config, "case", "reopen", ref)
    assert result.exit_code == 1 and "pseudonymised" in result.stderr
    assert _case(app, ref).status == "closed"


# ---------------------------------------------------------------- retention

def test_close_then_time_then_retention_pseudonymises(app, config, at):
    """A case closed with `case close` is left alone by `mailbot retention` until
    retention.closed_case_days have passed, then pseudonymised with its raw mail deleted."""
    ref = _ref(app)
    at(T0 + timedelta(days=1))
    assert _run(config, "case", "close", ref).exit_code == 0

    at(T0 + timedelta(days=30))  # 29 days after closing
    early = _run(config, "retention")
    assert "closed cases pseudonymised: 0" in early.output
    assert _case(app, ref).citizen_email == CITIZEN

    at(T0 + timedelta(days=32))  # 31 days after closing
    late = _run(config, "retention")
    assert f"closed cases pseudonymised: 1 were ({ref})" in late.output
    case = _case(app, ref)
    assert case.citizen_email.endswith("@pseudonymised.invalid") and case.citizen_name == "" and case.subject == ""
    with app.sessions() as session:
        assert session.execute(select(RawMail)).first() is None
        assert {m.from_email for m in session.execute(select(Message)).scalars()} <= {""}
    # The audit trail keeps that the case was closed, not the note.
    assert _events(app, "case_closed") == [{"old": "open", "new": "closed"}]


def test_an_open_case_is_never_pseudonymised_by_retention(app, config, at):
    """Without closing, however much time passes, retention leaves the case alone."""
    at(T0 + timedelta(days=5000))
    assert "closed cases pseudonymised: 0" in _run(config, "retention").output
    assert _case(app, _ref(app)).citizen_email == CITIZEN


# ---------------------------------------------------------------- mail on a closed case

def _close(app, ref: str) -> None:
    from mailbot import store

    with app.sessions.begin() as session:
        store.close_case(session, session.execute(select(Case).where(Case.ref == ref)).scalar_one(),
                         now=T0, by="test")


def _replies(app) -> list[str]:
    with app.sessions() as session:
        return [r.template for r in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]


def _received_reasons(app) -> list[str]:
    return _events(app, "message_received")[-1]["reasons"]


def test_follow_up_on_a_closed_case_is_threaded_flagged_and_not_reopened(app):
    """A citizen's follow-up quoting the reference joins the closed case, which stays closed
    and is flagged needs_triage with the reason; no new case is opened; the citizen gets the
    closed-case receipt."""
    ref = _ref(app)
    _close(app, ref)
    [outcome] = process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]",
                                                     body="In bijlage nog een kopie van mijn aanvraag.\n\nJan")])
    assert (outcome.kind, outcome.case_ref, outcome.actions) == (
        "follow_up", ref, ("thread", "pending:closed_case_received"))
    case = _case(app, ref)
    assert case.status == "closed" and _aware(case.closed_at) == T0
    assert {"needs_triage", ON_CLOSED} <= set(case.flags)
    assert "message on a closed case: threaded, not reopened; staff decide" in _received_reasons(app)
    with app.sessions() as session:
        assert len(session.execute(select(Case)).all()) == 1


def test_follow_up_on_an_open_case_is_not_flagged(app):
    """The control: the same follow-up on an open case adds no needs_triage."""
    ref = _ref(app)
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]",
                                         body="In bijlage nog een kopie van mijn aanvraag.\n\nJan")])
    assert not {"needs_triage", ON_CLOSED} & set(_case(app, ref).flags)


def test_status_request_on_a_closed_case_gets_the_status_reply_and_is_flagged(app):
    """"Wat is de stand van zaken?" on a closed case: the status reply (which says the case
    is closed) to the address on file, the case flagged for staff, still closed."""
    ref = _ref(app)
    _close(app, ref)
    [outcome] = process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]",
                                                     body="Wat is de stand van zaken in mijn dossier?")])
    assert (outcome.kind, outcome.case_ref) == ("status_request", ref)
    assert _replies(app) == ["ack_investigation", "status"]
    case = _case(app, ref)
    assert case.status == "closed" and "needs_triage" in case.flags


def test_forwarded_agency_mail_on_a_closed_case_is_threaded_without_forward_added(app):
    """A forwarded letter of the agency joins the closed case; the citizen is not told it was
    "added to your file, keep us informed" (the case is not being handled) but gets the
    closed-case receipt: staff decide."""
    ref = _ref(app)
    _close(app, ref)
    forward = (f"Beste,\n\nHieronder de brief van het departement over dossier {ref}.\n\nJan Peeters\n\n"
               "________________________________\n"
               "Van: Studietoelagen <studietoelagen@onderwijs.vlaanderen.be>\n"
               "Verzonden: donderdag 19 november 2026 10:15\nAan: Jan Peeters <jan.peeters@example.be>\n"
               "Onderwerp: Uw aanvraag\n\nUw aanvraag is goedgekeurd.\n")
    [outcome] = process_files(app.intake, [complaint(subject="FW: Uw aanvraag", body=forward)])
    assert (outcome.kind, outcome.case_ref) == ("agency_forward", ref)
    assert _replies(app) == ["ack_investigation", "closed_case_received"]
    case = _case(app, ref)
    assert case.status == "closed" and {"needs_triage", ON_CLOSED} <= set(case.flags)


def _mail(subject: str = "Re: [VO-2026-000001]") -> Mail:
    return Mail(message_id="m", subject=subject, from_=Address("Jan", CITIZEN),
                to=(Address("", "klachten@vlaamseombudsdienst.be"),), text="tekst")


@pytest.mark.parametrize("kind", [Kind.FOLLOW_UP, Kind.STATUS_REQUEST, Kind.AGENCY_FORWARD])
def test_decide_flags_every_message_on_a_closed_case(kind):
    """decide: any citizen message joining a closed case flags needs_triage and says why; the
    only reply is the status reply to a status question, else the closed-case receipt."""
    case = CaseView("VO-2026-000001", CITIZEN, "nl", status="closed")
    decision = decide(_mail(), Classification(kind=kind, language="nl", facts=Facts()),
                      Match(1, case.ref), recipient=Address("Jan", CITIZEN), case=case)
    assert decision.open_case is False and {"needs_triage", ON_CLOSED} <= set(decision.flags)
    assert any("closed case" in r for r in decision.reasons)
    assert [r.template for r in decision.replies] == (
        ["status"] if kind is Kind.STATUS_REQUEST else ["closed_case_received"])


def test_decide_sends_no_agency_or_multi_addressed_reminder_on_a_closed_case():
    """The once-per-case reminders ("stop writing to the agency", "you wrote to several
    services") promise handling a closed case does not get: not sent; the flags stay."""
    facts = Classification(kind=Kind.FOLLOW_UP, language="nl", facts=Facts())
    match = Match(1, "VO-2026-000001", flags=("agency_in_cc", "multi_addressed"))
    open_case = CaseView("VO-2026-000001", CITIZEN, "nl")
    closed = CaseView("VO-2026-000001", CITIZEN, "nl", status="closed")
    sent_open = decide(_mail(), facts, match, recipient=Address("Jan", CITIZEN), case=open_case)
    sent_closed = decide(_mail(), facts, match, recipient=Address("Jan", CITIZEN), case=closed)
    assert [r.template for r in sent_open.replies] == ["agency_in_cc", "multi_addressed"]
    assert [r.template for r in sent_closed.replies] == ["closed_case_received"]
    assert {"agency_in_cc", "multi_addressed"} <= set(sent_closed.flags)


def test_a_blank_by_records_the_login_not_an_empty_name(app, config, at, monkeypatch):
    monkeypatch.setenv("USER", "an.peeters")
    monkeypatch.setenv("LOGNAME", "an.peeters")
    ref = _ref(app)
    at(T0)
    assert _run(config, "case", "close", ref, "--by", "   ").exit_code == 0
    [event] = _events(app, "case_closed")
    assert event["by"].strip() != ""
