"""`mailbot outbox`: staff list held and failed replies, release, retry or cancel them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config, complaint
from mailbot.addresses import undeliverable
from mailbot.cli import cli
from mailbot.db import Case, Event, Outbox
from mailbot.outbox_admin import ACTIONS, refusal
from mailbot.pipeline import process_files
from test_outbox import queue_rows

STATUS = "Goedendag,\n\nWat is de stand van zaken van mijn klacht?\n\nJan Peeters"


def _cli(tmp_path: Path, smtp_port: int, db_url: str):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(smtp={"port": smtp_port}, db_url=db_url)))

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, catch_exceptions=False)
    return run


def _outbox(app) -> list[tuple[int, str, str]]:
    with app.sessions() as session:
        return [(r.id, r.template, r.status) for r in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]


def _events(app, type_: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.execute(select(Event).where(Event.type == type_)).scalars())


def _held_status_reply(app) -> int:
    """A complaint and three status requests the same day: the fourth reply is held."""
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}] ({i})", body=STATUS) for i in range(3)])
    app.send_outbox()
    [held] = [outbox_id for outbox_id, _, status in _outbox(app) if status == "held"]
    return held


def test_the_actions_apply_to_held_and_failed_replies_only():
    """Pending and sent replies belong to the sender: no staff action changes them."""
    assert refusal(ACTIONS["release"], "held") is None and refusal(ACTIONS["retry"], "failed") is None
    assert refusal(ACTIONS["cancel"], "held") is None and refusal(ACTIONS["cancel"], "failed") is None
    for action in ACTIONS.values():
        for status in ("pending", "sent", "cancelled"):
            assert refusal(action, status) == (
                f"the reply is {status}; {action.name} applies to "
                f"{' or '.join(sorted(action.from_statuses))} replies only")
    assert refusal(ACTIONS["release"], "failed") and refusal(ACTIONS["retry"], "held")


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_held_reply_is_listed_and_released_by_staff(make_app, smtp_sink, db_url, tmp_path):
    """`outbox list` shows the held reply with its case and reason; `release` sends it at
    once, with an event naming who decided; a second release is refused (exit 1)."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=db_url)
    held = _held_status_reply(app)
    assert len(smtp_sink.messages) == 3
    run = _cli(tmp_path, smtp_sink.port, db_url)

    listed = json.loads(run("outbox", "list", "--json").output)
    assert [(r["id"], r["status"], r["template"]) for r in listed] == [(held, "held", "status")]
    assert listed[0]["case_ref"].startswith("VO-") and "this case" in listed[0]["last_error"]
    assert listed[0]["recipient"] == "jan.peeters@example.be"
    assert f"{held}  held" in run("outbox", "list").output

    released = run("outbox", "release", str(held), "--by", "An Peeters")
    assert released.exit_code == 0, released.output
    assert "replies sent 1" in released.output and len(smtp_sink.messages) == 4
    assert _outbox(app)[-1] == (held, "status", "sent")
    [event] = _events(app, "reply_released")
    assert event.detail["by"] == "An Peeters" and event.detail["outbox_id"] == held and event.case_id

    again = run("outbox", "release", str(held))
    assert again.exit_code == 1 and "the reply is sent; release applies to held replies only" in again.output
    missing = run("outbox", "release", "999999")
    assert missing.exit_code == 1 and missing.stderr == "Error: no reply 999999\n"
    assert json.loads(run("outbox", "list", "--json").output) == [] and len(smtp_sink.messages) == 4


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_failed_reply_is_retried_once_the_address_works(make_app, smtp_sink, db_url, tmp_path):
    """A reply refused with 550 fails and blocks the address; `retry` refuses while the address
    is blocked, and with --address-works clears it and sends the reply."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=db_url)
    smtp_sink.failures = ["550 5.1.1 mailbox unknown"]
    process_files(app.intake, [complaint()])
    assert app.send_outbox().failed == 1
    [(failed, _, status)] = _outbox(app)
    assert status == "failed" and not smtp_sink.messages
    run = _cli(tmp_path, smtp_sink.port, db_url)
    assert [r["id"] for r in json.loads(run("outbox", "list", "--status", "failed", "--json").output)] == [failed]

    refused = run("outbox", "retry", str(failed))
    assert refused.exit_code == 1 and "is marked undeliverable" in refused.output
    assert _outbox(app)[0][2] == "failed" and not _events(app, "reply_retried")

    retried = run("outbox", "retry", "--all", "--address-works", "--by", "An Peeters")
    assert retried.exit_code == 0, retried.output
    assert _outbox(app)[0][2] == "sent" and len(smtp_sink.messages) == 1
    with app.sessions() as session:
        assert not undeliverable(session, "jan.peeters@example.be")
        assert session.get(Outbox, failed).attempts == 1  # counted from zero again
    assert [e.detail["by"] for e in _events(app, "reply_retried")] == ["An Peeters"]


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_cancel_drops_held_replies_but_never_pending_ones(make_app, smtp_sink, db_url, tmp_path):
    """A cancelled held reply is never sent; a pending one (maybe on the wire) cannot be
    cancelled; ids and --all together are a usage error."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=db_url)
    held = _held_status_reply(app)
    [pending] = queue_rows(app.sessions, 1, prefix="p")
    run = _cli(tmp_path, smtp_sink.port, db_url)

    cancelled = run("outbox", "cancel", str(held), str(pending))
    assert cancelled.exit_code == 1
    assert f"{held}: cancelled" in cancelled.output
    assert f"{pending}: the reply is pending; cancel applies to failed or held replies only" in cancelled.output
    statuses = {outbox_id: status for outbox_id, _, status in _outbox(app)}
    assert statuses[held] == "cancelled" and statuses[pending] == "pending"
    app.send_outbox()
    assert {outbox_id: status for outbox_id, _, status in _outbox(app)}[held] == "cancelled"
    assert len(smtp_sink.messages) == 4  # three before, the pending one now; never the cancelled one
    assert run("outbox", "release", str(held), "--all").exit_code == 2
    assert run("outbox", "release").exit_code == 2


def test_releasing_the_first_reply_of_a_case_counts_as_its_first_reaction(make_app, smtp_sink, sqlite_url,
                                                                        tmp_path):
    """A case whose acknowledgment was held has no first reaction (the digest asks staff to
    react); releasing the reply gives it one, as queueing it would have."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    [outbox_id] = queue_rows(app.sessions, 1, prefix="h")
    with app.sessions.begin() as session:
        row = session.get(Outbox, outbox_id)
        row.status = "held"
        case = session.get(Case, row.case_id)
        assert case.first_reaction_at is None
    assert _cli(tmp_path, smtp_sink.port, sqlite_url)("outbox", "release", "--all").exit_code == 0
    with app.sessions() as session:
        assert session.get(Case, case.id).first_reaction_at is not None
        assert session.get(Outbox, outbox_id).status == "sent"
