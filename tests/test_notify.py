"""A routing rule's `notify:`: the addresses it names hear of the new case, through the outbox.

The shipped rule `urgent-situation` notifies intake@vlaamseombudsdienst.example. The notice is
staff mail: no reply to the citizen, no first reaction, outside the reply limits, never
blocking an address, and scrubbed with the case's other outgoing mail.
"""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from sqlalchemy import select

from conftest import REPO, complaint
from helpers import SettableClock, append_all, folder_count, imap_config
from mailbot import staff_notice
from mailbot.addresses import mark_undeliverable, undeliverable
from mailbot.db import Case, Event, Outbox
from mailbot.pipeline import process_files
from mailbot.privacy import erase, erase_case
from mailbot.retention import run_retention

INTAKE = "intake@vlaamseombudsdienst.example"  # rules/routing.yaml, rule urgent-situation
OFFICE = "klachten@vlaamseombudsdienst.be"  # conftest's smtp.from_address
URGENT_BODY = ("Geachte,\n\nMorgen worden wij uit onze woning gezet door de sociale huisvestingsmaatschappij.\n"
               "Wij hebben drie kinderen en weten niet waar naartoe.\n\nMet vriendelijke groeten,\nJan Peeters")
DMARC_FAIL = "Authentication-Results: mx.vlaamseombudsdienst.be; dmarc=fail (p=none) header.from=example.be\r\n"


def urgent(**kwargs) -> bytes:
    return complaint(**{"subject": "Dringend: uithuiszetting morgen", "body": URGENT_BODY, **kwargs})


def notices(app) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.execute(select(Outbox).where(Outbox.template == "staff_notice")
                                    .order_by(Outbox.id)).scalars())


def the_case(app) -> Case:
    with app.sessions() as session:
        return session.execute(select(Case)).scalar_one()


@pytest.mark.dovecot
def test_an_urgent_mail_tells_the_notify_address(make_app, dovecot, smtp_sink, db_url):
    """Through poll and the outbox to the SMTP sink: the citizen gets the acknowledgment, the
    rule's address a Dutch notice From the office naming the case, the citizen, the rules,
    priority and tags, the start of the mail and the command that shows the case. A second
    copy of the mail and later polls send nothing more; the Sent folder keeps the reply only."""
    app = make_app(imap={**imap_config(dovecot), "sent_folder": "Sent"}, smtp={"port": smtp_sink.port},
                   db_url=db_url)
    raw = urgent(message_id="<urgent@mail.example.be>")
    append_all(dovecot, [raw, raw])

    app.poll_once()
    assert app.send_outbox().sent == 2
    app.poll_once()
    app.send_outbox()

    case = the_case(app)
    by_recipient = {tuple(envelope.rcpt_tos): parsed for envelope, parsed in zip(smtp_sink.messages, smtp_sink.parsed())}
    assert sorted(by_recipient) == [(INTAKE,), ("jan.peeters@example.be",)]
    notice = by_recipient[(INTAKE,)]
    assert notice["Subject"] == f"[{case.ref}] Melding: urgent-situation – Dringend: uithuiszetting morgen"
    assert notice["From"].addresses[0].addr_spec == OFFICE
    assert notice["Auto-Submitted"] == "auto-generated"
    text = notice.get_body(("plain",)).get_content()
    for expected in (case.ref, "Jan Peeters <jan.peeters@example.be>", "Dringend: uithuiszetting morgen",
                     "urgent-situation", "Prioriteit:   dringend", "Labels:       dringend",
                     "Morgen worden wij uit onze woning gezet", f"mailbot case show {case.ref}"):
        assert expected in text
    assert case.priority == "urgent" and case.first_reaction_at is not None
    assert folder_count(dovecot, "Sent") == 1
    with app.sessions() as session:
        [told] = session.execute(select(Event).where(Event.type == "staff_notified")).scalars()
    assert told.detail["to"] == [INTAKE] and told.case_id == case.id


def test_an_ordinary_complaint_tells_nobody(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint()])
    assert notices(app) == []


def test_the_notice_is_not_a_reply_to_the_citizen(make_app, sqlite_url):
    """Two automatic replies a day per case: the notice queued with the acknowledgment does
    not use up the citizen's second one (their status question is answered), and a case
    whose citizen got nothing has no first reaction, notice or not."""
    now = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)
    app = make_app(db_url=sqlite_url, limits={"replies_per_case_per_day": 2, "parse_timeout_seconds": 0},
                   clock=SettableClock(now))
    process_files(app.intake, [urgent()])
    ref = the_case(app).ref
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}] uithuiszetting",
                                         body="Is er al nieuws over mijn dossier?")])
    with app.sessions() as session:
        statuses = dict(session.execute(select(Outbox.template, Outbox.status)).all())
    assert statuses == {"ack_investigation": "pending", "staff_notice": "pending", "status": "pending"}

    spoofed = make_app(db_url=sqlite_url.replace("mailbot.sqlite3", "spoofed.sqlite3"))
    process_files(spoofed.intake, [urgent(extra_headers=DMARC_FAIL)])
    case = the_case(spoofed)
    assert "spoofed_sender" in case.flags and case.first_reaction_at is None
    assert [row.recipient for row in notices(spoofed)] == [INTAKE]
    assert "spoofed_sender" in notices(spoofed)[0].mime.decode()


def test_a_refused_notice_blocks_no_address_and_flags_no_case(make_app, smtp_sink, sqlite_url):
    """The server refuses the staff address: the notice fails and says so (`reply_failed`), but
    the address is not marked undeliverable and the case gets no flag of a failed reply; a
    staff address marked undeliverable before still gets the next notice."""
    app = make_app(db_url=sqlite_url, smtp={"port": smtp_sink.port, "concurrency": 1})
    process_files(app.intake, [urgent(extra_headers=DMARC_FAIL)])  # no reply to the claimed sender: one mail out
    smtp_sink.failures.append(f"550 5.1.1 <{INTAKE}>: Recipient address rejected")
    assert app.send_outbox().failed == 1
    case = the_case(app)
    with app.sessions() as session:
        assert not undeliverable(session, INTAKE)
        [failed] = session.execute(select(Event).where(Event.type == "reply_failed")).scalars()
    assert failed.case_id == case.id and failed.detail["template"] == "staff_notice"
    assert not {"undeliverable", "reply_failed"} & set(case.flags)

    with app.sessions.begin() as session:
        mark_undeliverable(session, INTAKE, source="smtp", reason="test", now=datetime.now(timezone.utc))
    process_files(app.intake, [urgent(sender="an.smet@example.be", name="An Smet")])
    app.send_outbox()
    assert [tuple(m.rcpt_tos) for m in smtp_sink.messages] == [("an.smet@example.be",), (INTAKE,)]


def test_import_tells_nobody(make_app, sqlite_url):
    """`mailbot import` records old mail quietly: no reply and no notice."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [urgent()], quiet=True)
    assert the_case(app).priority == "urgent" and notices(app) == []


@pytest.mark.parametrize("how", ["erase --email", "erase --case", "retention"])
def test_the_notice_is_scrubbed_with_its_case(make_app, sqlite_url, how):
    """The notice names the citizen: erasure and retention blank it like the case's replies."""
    now = datetime.now(timezone.utc)
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [urgent()])
    ref = the_case(app).ref
    if how == "erase --email":
        erase(app.sessions, "jan.peeters@example.be")
    elif how == "erase --case":
        erase_case(app.sessions, ref)
    else:
        with app.sessions.begin() as session:
            case = session.execute(select(Case)).scalar_one()
            case.status, case.closed_at = "closed", now - timedelta(days=app.settings.retention.closed_case_days + 1)
        run_retention(app.sessions, app.settings, now)
    [notice] = notices(app)
    assert notice.mime == b"" and notice.recipient.endswith("@pseudonymised.invalid")
    assert notice.status == "cancelled"  # it had not been sent yet
    with app.sessions() as session:
        [told] = session.execute(select(Event).where(Event.type == "staff_notified")).scalars()
    assert "to" not in told.detail


def _custom(tmp_path, notify: list[str], *, template: str | None) -> dict:
    """Rules whose urgent-situation rule notifies `notify`; templates with `template` as the
    notice's text (None: a templates folder from before the notice, without one)."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    routing = rules / "routing.yaml"
    routing.write_text(routing.read_text().replace(f"notify: [{INTAKE}]", f"notify: [{', '.join(notify)}]"))
    if template is None:
        shutil.rmtree(templates / "_staff_notice")
    else:
        (templates / "_staff_notice" / "nl.txt.j2").write_text(template)
    return {"rules_dir": str(rules), "templates_dir": str(templates)}


# Renders for the check's sample citizen, fails for a sender without a name.
FAILS_ON_A_REAL_MAIL = "Beste collega, nieuw van {{ citizen.name.split()[0] }}\n"


@pytest.mark.parametrize("template", [None, FAILS_ON_A_REAL_MAIL], ids=["no-folder", "failing"])
def test_without_a_usable_template_the_shipped_text_is_sent(tmp_path, make_app, sqlite_url, template):
    """A templates folder older than the notice, or one whose notice fails on this mail, still
    tells staff."""
    config = _custom(tmp_path, [INTAKE], template=template)
    assert staff_notice.check_templates(tmp_path / "templates") == []  # `rules check` lets both pass
    app = make_app(db_url=sqlite_url, **config)
    process_files(app.intake, [urgent(name="")])
    [notice] = notices(app)
    assert f"mailbot case show {the_case(app).ref}" in notice.mime.decode()


def test_a_broken_notice_template_is_found_by_the_check(tmp_path):
    folder = tmp_path / "templates" / "_staff_notice"
    folder.mkdir(parents=True)
    (folder / "nl.txt.j2").write_text("Dossier {{ case_ref }}\n{% if %}\n")
    [problem] = staff_notice.check_templates(tmp_path / "templates")
    assert problem.startswith("templates/_staff_notice/nl.txt.j2:2: ")
    assert staff_notice.check_templates(REPO / "templates") == []


def test_never_our_own_address_and_one_notice_per_address(tmp_path, make_app, sqlite_url):
    """Our own mailbox would read the notice as incoming mail: it is skipped (and said so);
    another address named twice gets one notice."""
    team = "team-wonen@vlaamseombudsdienst.example"
    app = make_app(db_url=sqlite_url, **_custom(tmp_path, [OFFICE, team, team.upper()], template=None))
    process_files(app.intake, [urgent()])
    assert [row.recipient for row in notices(app)] == [team]
    with app.sessions() as session:
        [skipped] = session.execute(select(Event).where(Event.type == "reply_skipped")).scalars()
    assert skipped.detail["template"] == "staff_notice" and "own addresses" in skipped.detail["reason"]


def test_the_excerpt_and_subject_are_bounded_and_on_their_lines():
    """A long mail gives its first lines only; a subject cannot add a header line."""
    text = "\n\n" + "\n".join(f"regel {i} " + "woord " * 30 for i in range(40)) + "\x1b[31m"
    cut = staff_notice.excerpt(text)
    assert len(cut.splitlines()) == staff_notice.EXCERPT_LINES + 1 and cut.endswith("\n…")
    assert cut.startswith("regel 0") and max(len(line) for line in cut.splitlines()) <= staff_notice.EXCERPT_WIDTH
    assert staff_notice.excerpt("kort\n\n\n\nbericht\n\n") == "kort\n\nbericht"
    subject = staff_notice.notice_subject("VO-2026-000001", ["urgent-situation"], "Dringend\r\nBcc: x@example.org")
    assert subject == "[VO-2026-000001] Melding: urgent-situation – Dringend Bcc: x@example.org"


def test_every_notify_rule_that_fired_is_named(tmp_path, make_app, sqlite_url):
    """Two rules asking for the same address: one notice, both rules in its subject."""
    config = _custom(tmp_path, [INTAKE], template=None)
    routing = tmp_path / "rules" / "routing.yaml"
    data = yaml.safe_load(routing.read_text())
    anonymity = next(r for r in data["rules"] if r["name"] == "anonymity-requested")
    anonymity["then"]["notify"] = [INTAKE]
    routing.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    app = make_app(db_url=sqlite_url, **config)
    process_files(app.intake, [urgent(body=URGENT_BODY + "\n\nIk wil anoniem blijven tegenover de dienst.")])
    [notice] = notices(app)
    subject = email.message_from_bytes(notice.mime, policy=email.policy.default)["Subject"]
    assert subject.startswith(f"[{the_case(app).ref}] Melding: urgent-situation, anonymity-requested – ")
