"""Flood limits counted in the database, bounces that block an address, and templates rendered with the
context real replies get (issue 6, items 2, 4 and 6)."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import REPO, base_config, complaint, load_eml
from mailbot.addresses import (
    mark_deliverable, mark_undeliverable, preload_undeliverable, record_bounce, undeliverable,
    undeliverable_among,
)
from mailbot.db import AddressStatus, Case, Event, Outbox
from mailbot.model import Address, Bounce, Mail, Reply
from mailbot.pipeline import process_files
from mailbot.render import LANGUAGES
from mailbot.replies import ReplyLimits, over_limit, reply_context
from test_outbox import queue_rows

STATUS = "Goedendag,\n\nWat is de stand van zaken van mijn klacht?\n\nJan Peeters"


def _statuses(app) -> list[tuple[str, str]]:
    with app.sessions() as session:
        return [(r.template, r.status) for r in session.execute(select(Outbox).order_by(Outbox.id)).scalars()]


def test_fourth_reply_for_a_case_in_a_day_is_held(make_app, smtp_sink, sqlite_url):
    """Three automatic replies per case per 24 h; the fourth is stored held, with an event, and never sent.
    The count lives in the database, so a restarted robot holds the next one too."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    ask = [complaint(subject=f"Re: Uw klacht [{ref}] ({i})", body=STATUS) for i in range(3)]
    process_files(app.intake, ask)
    app.send_outbox()
    assert _statuses(app) == [("ack_investigation", "sent"), ("status", "sent"), ("status", "sent"),
                              ("status", "held")]
    assert len(smtp_sink.messages) == 3
    with app.sessions() as session:
        [held] = session.execute(select(Event).where(Event.type == "reply_held")).scalars()
        assert "this case" in held.detail["reason"] and held.case_id is not None
    restarted = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    process_files(restarted.intake, [complaint(subject=f"Re: Uw klacht [{ref}] (again)", body=STATUS)])
    restarted.send_outbox()
    assert _statuses(restarted)[-1] == ("status", "held") and len(smtp_sink.messages) == 3


def test_address_limit_counts_the_last_24_hours(make_app, sqlite_url):
    """Ten replies to one address in 24 h: the eleventh is over the limit; older or held ones do not count."""
    app = make_app(db_url=sqlite_url)
    now = datetime.now(timezone.utc)
    limits = ReplyLimits(per_case_per_day=3, per_address_per_day=10)
    queue_rows(app.sessions, 5, recipient="veel@example.be", prefix="old", now=now - timedelta(hours=25),
               with_case=False)
    queue_rows(app.sessions, 9, recipient="veel@example.be", prefix="new", now=now, with_case=False)
    with app.sessions.begin() as session:
        assert over_limit(session, recipient="veel@example.be", case_id=None, now=now, limits=limits) is None
    [held] = queue_rows(app.sessions, 1, recipient="veel@example.be", prefix="held", now=now, with_case=False)
    with app.sessions.begin() as session:
        session.get(Outbox, held).status = "held"
    queue_rows(app.sessions, 1, recipient="veel@example.be", prefix="tenth", now=now, with_case=False)
    with app.sessions.begin() as session:
        reason = over_limit(session, recipient="veel@example.be", case_id=None, now=now, limits=limits)
        assert reason and "this address" in reason
        assert over_limit(session, recipient="ander@example.be", case_id=None, now=now, limits=limits) is None


@pytest.mark.postgres
def test_address_limit_holds_across_concurrent_workers(make_app, pg_url):
    """On PostgreSQL a second worker checking the same address waits for the first one's commit, so two
    workers cannot both queue the last allowed reply."""
    app = make_app(db_url=pg_url)
    now = datetime.now(timezone.utc)
    limits = ReplyLimits(per_case_per_day=3, per_address_per_day=1)
    seen: list[str | None] = []
    first_checked = threading.Event()

    def second_worker() -> None:
        first_checked.wait(10)
        with app.sessions.begin() as session:
            seen.append(over_limit(session, recipient="een@example.be", case_id=None, now=now, limits=limits))

    worker = threading.Thread(target=second_worker)
    worker.start()
    with app.sessions.begin() as session:
        assert over_limit(session, recipient="een@example.be", case_id=None, now=now, limits=limits) is None
        first_checked.set()
        time.sleep(0.5)  # the second worker is now waiting for this transaction
        assert seen == []
        session.add(Outbox(template="ack_investigation", recipient="een@example.be", message_id="one@x",
                           mime=b"x", status="pending", created_at=now, next_attempt_at=now))
    worker.join(15)
    assert seen and seen[0] and "this address" in seen[0]


def test_permanent_bounce_of_our_reply_blocks_the_address(make_app, smtp_sink, sqlite_url):
    """A permanent DSN for our acknowledgment flags the case undeliverable, and the citizen's address
    gets no further automatic reply."""
    app = make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    process_files(app.intake, [complaint(sender="jan.peters@example.be")])
    app.send_outbox()
    [ack] = smtp_sink.parsed()
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    bounce = load_eml("bounce_our_reply.eml").replace(b"<VO-2026-000123.1@vlaamseombudsdienst.be>",
                                                      ack["Message-ID"].encode()).replace(b"VO-2026-000123", ref.encode())
    process_files(app.intake, [bounce])
    with app.sessions() as session:
        assert "undeliverable" in session.execute(select(Case.flags)).scalar_one()
        assert undeliverable(session, "jan.peters@example.be")
    process_files(app.intake, [complaint(sender="jan.peters@example.be", subject=f"Re: Uw klacht [{ref}]",
                                         body=STATUS)])
    app.send_outbox()
    assert len(smtp_sink.messages) == 1
    with app.sessions() as session:
        assert session.execute(select(func.count()).select_from(Outbox)).scalar_one() == 1


def test_address_status_table_is_fed_by_bounces_and_cleared_by_staff(make_app, sqlite_url):
    """record_bounce stores a permanent bounce's address (temporary ones are ignored); staff can clear
    it; a case flag alone does not block an address (every path that flags also records the address)."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        assert not record_bounce(session, Bounce("a@example.be", permanent=False, status="4.2.2"))
        assert record_bounce(session, Bounce("", permanent=True, status="5.1.1"), fallback_email="B@example.be")
        session.add(Case(ref="VO-2026-900001", citizen_email="c@example.be", flags=["undeliverable"]))
    with app.sessions.begin() as session:
        assert not undeliverable(session, "a@example.be")
        assert undeliverable(session, "b@example.be") and not undeliverable(session, "c@example.be")
        assert session.get(AddressStatus, "b@example.be").source == "bounce"
        mark_deliverable(session, "b@example.be")
        assert not undeliverable(session, "b@example.be")


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_undeliverable_answers_last_one_transaction(make_app, db_url):
    """Within a transaction an address is looked up once and our own marks count at once;
    the next transaction of the same session sees what another worker marked meanwhile."""
    app = make_app(db_url=db_url)
    with app.sessions() as session:
        with session.begin():
            assert not undeliverable(session, "jan@example.be")
            mark_undeliverable(session, "Jan@example.be", source="bounce", reason="5.1.1")
            assert undeliverable(session, "jan@example.be")
        with app.sessions.begin() as other:  # another worker: staff clear it, a bounce blocks An
            mark_deliverable(other, "jan@example.be")
            mark_undeliverable(other, "an@example.be", source="smtp", reason="550")
        with session.begin():
            assert undeliverable_among(session, ["jan@example.be", "AN@example.be"]) == {"AN@example.be"}



@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_batch_reads_the_undeliverable_addresses_once(make_app, db_url):
    """A batch's transaction reads every undeliverable address in one query and asks nothing
    more per mail, with the same answers and our own marks counted; above the limit it
    falls back to asking per address."""
    from sqlalchemy import event

    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        for email in ("dead1@example.be", "dead2@example.be", "cleared@example.be"):
            mark_undeliverable(session, email, source="smtp", reason="550")
        mark_deliverable(session, "cleared@example.be")
    queries: list[str] = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cursor, statement, *args:
                 queries.append(statement) if "address_status" in statement else None)
    with app.sessions.begin() as session:
        assert preload_undeliverable(session) is True
        assert len(queries) == 1
        assert undeliverable_among(session, ["DEAD1@example.be", "jan@example.be"]) == {"DEAD1@example.be"}
        assert not undeliverable(session, "cleared@example.be") and undeliverable(session, "dead2@example.be")
        mark_undeliverable(session, "jan@example.be", source="bounce", reason="5.1.1")
        assert undeliverable(session, "jan@example.be") and not undeliverable(session, "an@example.be")
        assert [q for q in queries if q.lstrip().upper().startswith("SELECT")] == queries[:1]
    queries.clear()
    with app.sessions.begin() as session:  # more dead addresses than the limit: asked per mail
        assert preload_undeliverable(session, limit=2) is False
        assert undeliverable_among(session, ["dead2@example.be", "an@example.be"]) == {"dead2@example.be"}
        assert undeliverable(session, "jan@example.be") and not undeliverable(session, "cleared@example.be")
        assert len([q for q in queries if q.lstrip().upper().startswith("SELECT")]) == 4


def test_every_template_renders_with_the_context_of_a_real_reply(make_app, sqlite_url):
    """Each template in each language renders with what `reply_context` gives (no missing variable)."""
    app = make_app(db_url=sqlite_url)
    case = Case(ref="VO-2026-000042", citizen_email="jan@example.be", language="nl", status="open",
                investigator_email="an.peeters@vlaamseombudsdienst.be", investigator_name="An Peeters",
                investigator_phone="02 552 48 00", also_sent_to=["Federale Ombudsman"])
    mail = Mail(message_id="m@example.be", subject="Klacht", from_=Address("Jan", "jan@example.be"))
    for name in sorted(app.renderer.names()):
        for lang in LANGUAGES:
            reply = Reply(name, Address("Jan", "jan@example.be"), lang, "Klacht")
            rendered = app.renderer.render(name, lang, reply_context(app.settings, case, reply, mail))
            assert rendered.language == lang and rendered.text.strip() and rendered.html.strip()


def test_rules_check_fails_on_a_template_error_in_one_language(tmp_path: Path):
    """`mailbot rules check` renders every template in every language: a bad variable in one German
    file makes it print `file:line: message` and exit 1."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    target = templates / "status" / "de.txt.j2"
    text = target.read_text(encoding="utf-8").replace("{% block body %}", "{% block body %}{{ no_such_variable }}", 1)
    target.write_text(text, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(templates_dir=str(templates))))
    from mailbot.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "rules", "check"], obj={})
    assert result.exit_code == 1
    assert "status/de.txt.j2:" in result.output and "no_such_variable" in result.output
    config.write_text(yaml.safe_dump(base_config()))
    assert CliRunner().invoke(cli, ["--config", str(config), "rules", "check"], obj={}).exit_code == 0
