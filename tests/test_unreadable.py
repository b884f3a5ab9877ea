"""The notice to the sender of a mail the robot cannot read: too large, or unreadable."""

from __future__ import annotations

import json

import pytest

from conftest import complaint
from helpers import append_all, folder_count
from mailbot.model import Address
from mailbot.recipients import reply_recipient
from mailbot.unreadable import HEADER_LIMIT, header_mail, notice
from test_cli import _config, _run

OWN = frozenset({"klachten@vlaamseombudsdienst.be"})
BIG = 1_100_000  # over a 1 MB limit


def _notice(raw: bytes, *, blocked=(), services=(), webform=()):
    def recipient(mail, classification):  # the rules every reply follows
        return reply_recipient(mail, classification, own_addresses=OWN, webform_senders=webform,
                               blocked=blocked, is_service=lambda email: email in services)

    return notice(raw, max_bytes=2**20, own_addresses=OWN, default_language="nl", recipient=recipient)


def test_an_oversize_complaint_gets_the_too_large_notice_threaded_to_it():
    raw = complaint(subject="Klacht met bijlage", body="x" * BIG, message_id="<groot@mail.example.be>")
    mail, reply, case = _notice(raw)
    assert (reply.template, reply.to, reply.context) == (
        "undeliverable", Address("Jan Peeters", "jan.peeters@example.be"), {"reason": "too_large"})
    assert (reply.subject, reply.language) == ("Klacht met bijlage", "nl")
    assert mail.message_id == "groot@mail.example.be" and mail.text == ""  # the body is never read
    assert case is None  # no case looked up: none named


def test_a_mail_under_the_limit_that_cannot_be_read_gets_the_unreadable_notice():
    reply = _notice(complaint(body="kort")).reply
    assert reply.context == {"reason": "unreadable"}


def test_a_french_subject_gets_the_french_notice():
    reply = _notice(complaint(subject="Plainte concernant ma demande de prime au logement restée sans réponse",
                              body="x" * BIG)).reply
    assert reply.language == "fr"


@pytest.mark.parametrize("raw", [
    complaint(body="x" * BIG, extra_headers="Auto-Submitted: auto-replied\r\n"),  # a robot
    complaint(sender="klachten@vlaamseombudsdienst.be", body="x" * BIG),  # ourselves
    complaint(sender="mailer-daemon@example.be", body="x" * BIG),
    b"\x00\x01\x02 not a mail \xff\xfe",  # no sender to answer
    b"",
    b"X-Long: " + b"a" * (HEADER_LIMIT + 10) + b"\r\n\r\nbody",  # no header block within reach
], ids=["auto-submitted", "our-own-address", "mailer-daemon", "binary", "empty", "no-header-block"])
def test_nobody_is_answered_who_may_not_be(raw):
    assert _notice(raw) is None


def test_dead_addresses_services_and_webform_robots_follow_the_usual_rules():
    raw = complaint(sender="info@delijn.be", body="x" * BIG)
    assert _notice(raw, blocked={"info@delijn.be"}) is None
    assert _notice(raw, services={"info@delijn.be"}) is None
    assert _notice(raw, webform={"info@delijn.be"}) is None  # a web form without Reply-To
    assert header_mail(b"Subject: only headers, no body") is not None


def test_rules_explain_shows_the_notice(tmp_path, sqlite_url):
    """`rules explain` of an oversize mail: quarantined, and who is told what."""
    config = _config(tmp_path, db_url=sqlite_url, limits={"max_message_bytes": 2**20})
    _run(config, "db", "upgrade")
    mail = tmp_path / "groot.eml"
    mail.write_bytes(complaint(body="x" * BIG))
    data = json.loads(_run(config, "rules", "explain", str(mail), "--json").output)
    assert data["actions"] == ["quarantine"] and "exceeds the limit" in data["parse"]["error"]
    [reply] = data["replies"]
    assert (reply["template"], reply["reason"], reply["language"]) == ("undeliverable", "too_large", "nl")
    assert reply["to"].endswith("<jan.peeters@example.be>")
    text = _run(config, "rules", "explain", str(mail)).output
    assert "→ the sender is told: undeliverable (too_large, nl)" in text


@pytest.mark.dovecot
def test_poll_answers_an_oversize_complaint_once(make_app, dovecot, smtp_sink, db_url):
    """Through the real poll: the oversize complaint is quarantined and its sender told, in
    their mail's thread, that it was too large; an oversize auto-reply gets nothing; the
    quarantined mail moved back to the inbox is quarantined again without a second notice."""
    app = make_app(imap={"port": dovecot.port, "username": dovecot.username, "password": dovecot.password},
                   smtp={"port": smtp_sink.port}, db_url=db_url, limits={"max_message_bytes": 2**20})
    big = complaint(subject="Klacht met bijlage", body="x" * BIG, message_id="<groot@mail.example.be>")
    auto = complaint(sender="robot@example.be", body="y" * BIG, extra_headers="Auto-Submitted: auto-replied\r\n")
    append_all(dovecot, [big, auto])
    report = app.poll_once()
    assert (report.quarantined, app.send_outbox().sent) == (2, 1)
    [reply] = smtp_sink.parsed()
    assert smtp_sink.messages[0].rcpt_tos == ["jan.peeters@example.be"]
    assert reply["In-Reply-To"] == "<groot@mail.example.be>" and "Klacht met bijlage" in reply["Subject"]
    text = " ".join(reply.get_body(("plain",)).get_content().split())
    assert "omdat het te groot is (meer dan 1 MB)" in text
    assert "VO-" not in reply["Subject"]  # there is no case

    client = dovecot.client()
    client.select_folder("Quarantine")
    client.move(client.search(), "INBOX")
    client.logout()
    assert app.poll_once().quarantined == 2
    assert app.send_outbox().sent == 0 and len(smtp_sink.messages) == 1
    assert folder_count(dovecot, "INBOX") == 0
