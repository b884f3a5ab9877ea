"""A mail whose From field names several mailboxes (RFC 5322 allows it, with a Sender) can
pass our server's DMARC check for another author than the one the robot takes as the citizen
(the first). Its sender is not proven: the case is recorded and flagged `multiple_from` for
staff, but nobody gets a reply and its contact wishes are not taken."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conftest import complaint
from helpers import append_all, imap_config
from mailbot.classify import classify
from mailbot.db import Case, Outbox
from mailbot.digest import render
from mailbot.digest_data import collect
from mailbot.parse import SEVERAL_FROM, parse_message

OWN = frozenset({"klachten@vlaamseombudsdienst.be"})


def multi_from(*, subject: str, body: str, message_id: str = "<cosigned-1@partner.example>",
               author: str = "Jan Peeters <jan.peeters@example.be>") -> bytes:
    """As our MX delivers it: DMARC passed, for the second author's domain (the Sender's)."""
    return (
        "Return-Path: <hulp@partner.example>\r\n"
        "Authentication-Results: mx.vlaamseombudsdienst.be; dkim=pass header.d=partner.example;\r\n"
        " spf=pass smtp.mailfrom=partner.example; dmarc=pass (p=reject dis=none) header.from=partner.example\r\n"
        "Received: from mail.partner.example (mail.partner.example [192.0.2.25])\r\n"
        "\tby mx.vlaamseombudsdienst.be (Postfix) with ESMTPS id 4XyZ1; Mon, 23 Nov 2026 10:00:03 +0100\r\n"
        f"From: {author}, Hulp bij Klachten <hulp@partner.example>\r\n"
        "Sender: Hulp bij Klachten <hulp@partner.example>\r\n"
        "To: klachten@vlaamseombudsdienst.be\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        f"\r\n{body}\r\n").encode("utf-8")


COMPLAINT = ("Geachte,\n\nIk heb in maart een studietoelage aangevraagd bij het Departement Onderwijs en "
             "Vorming, maar na drie maanden heb ik nog steeds geen beslissing.\n\nJan Peeters")
HOUSING = ("Geachte,\n\nMijn aanvraag voor een huurpremie bij Wonen in Vlaanderen is na een half jaar nog "
           "altijd niet behandeld. Niemand neemt de telefoon op.\n\nAn Claes")
WISHES = ("Wat is de stand van zaken? Gelieve mij voortaan te mailen op overname@partner.example "
          "en bel mij op 0470 99 88 77.")


def test_the_parser_notes_several_from_mailboxes_read_from_the_raw_header():
    """Two mailboxes in From, or two From fields, are noted; one mailbox written twice, or a
    display name whose encoded words hide a comma or an address, is one sender."""
    mail = parse_message(multi_from(subject="Klacht", body=COMPLAINT))
    assert mail.from_.email == "jan.peeters@example.be" and SEVERAL_FROM in mail.defects
    two_fields = complaint(extra_headers="From: Hulp <hulp@partner.example>\r\n")
    assert SEVERAL_FROM in parse_message(two_fields).defects
    for one in ('"jan.peeters@example.be" <jan.peeters@example.be>',
                "=?utf-8?q?Peeters=2C_Jan_=28jan=40example=2Ebe=29?= <jan.peeters@example.be>",
                "jan.peeters@example.be, Jan Peeters <jan.peeters@example.be>"):
        raw = complaint().replace(b"From: Jan Peeters <jan.peeters@example.be>", f"From: {one}".encode())
        assert SEVERAL_FROM not in parse_message(raw).defects, one


def test_several_from_mailboxes_make_an_unproven_sender_whatever_dmarc_says():
    classification = classify(parse_message(multi_from(subject="Klacht", body=COMPLAINT)), own_addresses=OWN)
    assert classification.facts.spoofed
    assert "sender not proven: several From addresses" in classification.reasons
    assert not classify(parse_message(complaint()), own_addresses=OWN).facts.spoofed


def _cases(app) -> dict[str, Case]:
    with app.sessions() as session:
        return {c.citizen_email: c for c in session.execute(select(Case)).scalars()}


@pytest.mark.dovecot
def test_a_multi_from_mail_is_recorded_for_staff_and_answered_to_nobody(make_app, dovecot, smtp_sink, db_url):
    """Through IMAP, the pipeline and SMTP: on the case of a citizen, a co-signed follow-up
    that asks the status and gives a new address and phone is threaded and flagged
    multiple_from, gets no status reply and changes none of the contact details; a co-signed
    new complaint opens a case for its first author, flagged multiple_from and needs_triage,
    and gets no acknowledgment."""
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port}, db_url=db_url)
    append_all(dovecot, [complaint()])
    app.poll_once()
    app.send_outbox()
    ref = _cases(app)["jan.peeters@example.be"].ref
    assert [m["To"] for m in smtp_sink.parsed()] == ["Jan Peeters <jan.peeters@example.be>"]  # the ack

    append_all(dovecot, [
        multi_from(subject=f"Re: Uw klacht [{ref}]", body=WISHES),
        multi_from(subject="Huurpremie", body=HOUSING, author="An Claes <an.claes@example.be>",
                   message_id="<cosigned-2@partner.example>")])
    app.poll_once()
    app.send_outbox()
    cases = _cases(app)
    jan, an = cases["jan.peeters@example.be"], cases["an.claes@example.be"]
    assert {"multiple_from", "needs_triage"} <= set(jan.flags) and "spoofed_sender" not in jan.flags
    assert jan.contact_email is None and jan.contact_phone is None and "prefers_phone" not in jan.flags
    with app.sessions() as session:
        subjects = [m.subject for m in session.get(Case, jan.id).messages if m.direction == "in"]
        templates = session.execute(select(Outbox.template)).scalars().all()
    assert subjects == ["Klacht over mijn studietoelage", f"Re: Uw klacht [{ref}]"]
    assert {"multiple_from", "needs_triage"} <= set(an.flags)
    assert templates == ["ack_investigation"] and len(smtp_sink.messages) == 1
    with app.sessions() as session:  # the digest puts both before staff, saying why
        data = collect(session, app.settings, datetime.now(ZoneInfo("Europe/Brussels")).date())
    [triage] = [section for section in data.decisions if section.key == "needs_triage"]
    listed = {item.ref: item.flags for _, items in triage.groups for item in items}
    assert "multiple_from" in listed[ref] and "multiple_from" in listed[an.ref]
    assert "meerdere afzenders in From" in render(app.settings, data).text  # a label, not the raw key
