"""The Dutch digest speaks Dutch: what the robot recorded in English (reasons, template names,
a match's evidence, SMTP and quarantine reasons) is said through labels.j2 by its key; the
database keeps the English technical text; an unknown text is shown as recorded."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conftest import complaint
from mailbot import digest
from mailbot.db import Case, Event, Outbox
from mailbot.digest_data import DigestData, collect
from mailbot.digest_items import Item, Said, Section, recorded
from mailbot.pipeline import process_files
from servers import free_port

BXL = ZoneInfo("Europe/Brussels")
DAY = date(2026, 11, 23)
FORM = "formulier@vlaamseombudsdienst.be"
TEMPLATES = ("ack_investigation", "agency_in_cc", "ask_info", "closed_case_received", "direct_answer",
             "forward_added", "multi_addressed", "receipt_neutral", "referred_agency", "referred_ombudsman",
             "status_neutral", "status_overview", "undeliverable")
ENGLISH = ("web form complaint", "contact by phone or post", "not sent, a header could not be written",
           "automatic replies to this address", "quoted by a sender unknown", "in subject or body",
           "exceeds the limit", "SMTP delivery failed", "bounce: delivery status notification",
           "same address, open", "unsupported local part")


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BXL).astimezone(timezone.utc)


def _mail(sender: str, name: str, subject: str, body: str, **kw) -> bytes:
    return complaint(sender=sender, name=name, subject=subject, body=body, **kw)


@pytest.fixture
def day(make_app, sqlite_url):
    """A realistic Monday: a web form without address, a reference from an unknown address, a
    sender no header can carry, a reply held over the limit, a bounce of our reply, an oversized
    mail, replies that cannot leave (no SMTP server listening)."""
    app = make_app(db_url=sqlite_url, smtp={"port": free_port()}, webform_senders=[FORM],
                   limits={"parse_timeout_seconds": 0, "replies_per_address_per_day": 2, "max_message_bytes": 20000})
    now = [_at(20, 10)]

    def feed(when: datetime, *raws: bytes) -> None:
        now[0] = when
        app.intake.clock = app.intake.matching.clock = lambda: now[0]
        process_files(app.intake, list(raws))

    feed(_at(20, 10), complaint(sender="jan.peeters@example.be", name="Jan Peeters"))
    with app.sessions() as session:
        jan = session.execute(select(Case.ref)).scalars().one()
    feed(_at(22, 23), _mail("nico.night@example.be", "Nico Night", "Nachtbus",
                            "Geachte,\n\nDe nachtbus van De Lijn reed niet, ik stond een uur in de kou.\n\nNico"))
    with app.sessions.begin() as session:  # the replies so far went out
        for row in session.execute(select(Outbox)).scalars():
            row.status, row.sent_at = "sent", row.created_at
        nico = session.execute(select(Outbox).where(Outbox.recipient == "nico.night@example.be")).scalar_one()
        nico_template, nico_id = nico.template, nico.message_id
    feed(_at(23, 9), complaint(sender=FORM, name="Klachtenformulier", subject="Klachtenformulier",
                               body="Naam: Bert Zonderadres\n\nUw klacht:\nMijn huurpremie wordt niet uitbetaald "
                                    "door Wonen in Vlaanderen sinds januari.\n"))
    feed(_at(23, 9, 20), _mail("iemand.anders@example.be", "Onbekende", f"Vraag over dossier {jan}",
                               f"Goedendag,\n\nIk schrijf over dossier {jan}. Mijn zoon heeft nog geen beslissing "
                               "gekregen.\n\nGroeten"))
    feed(_at(23, 10, 5), _mail("groot@example.be", "Groot Bestand", "Groot", "x" * 30000))
    feed(_at(23, 10, 10), b"From: Heel Lange Naam <bad\"quote@example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
         b"Subject: Klacht met vreemd adres\r\nMessage-ID: <weird1@example.be>\r\n"
         b"Date: Mon, 23 Nov 2026 10:10:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Geachte, het OCMW weigert mijn aanvraag leefloon zonder motivering.\r\n")
    for i, town in enumerate(("Gent", "Brugge", "Leuven")):
        feed(_at(23, 11, i), _mail("loop.lus@example.be", "Loop Lus", f"Klacht {i} {uuid.uuid4().hex[:6]}",
                                   f"Geachte, de gemeente {town} antwoordt niet over {uuid.uuid4().hex}."))
    feed(_at(23, 11, 45), (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nDate: Mon, 23 Nov 2026 11:40:00 +0100\r\n"
        f"Message-ID: <bounce-{uuid.uuid4().hex}@mx.example.be>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"rep\"\r\n\r\n"
        "--rep\r\nContent-Type: text/plain\r\n\r\n<nico.night@example.be>: 550 5.1.1 User unknown\r\n\r\n"
        "--rep\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.be\r\n\r\n"
        "Final-Recipient: rfc822; nico.night@example.be\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--rep\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: klachten@vlaamseombudsdienst.be\r\nTo: nico.night@example.be\r\nMessage-ID: <{nico_id}>\r\n\r\n"
        "--rep--\r\n").encode())
    now[0] = _at(23, 14)
    app.send_outbox()  # nothing listens on the SMTP port: the day's replies wait with the error
    return app, nico_template


def _rendered(app):
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    return data, digest.render(app.settings, data)


def test_no_template_name_or_english_reason_in_the_digest_of_a_realistic_day(day):
    app, _ = day
    data, rendered = _rendered(app)
    sections = {s.key: s.count for s in data.decisions}
    # the day has what this test is about
    assert all(sections[key] for key in ("needs_triage", "quarantined", "undeliverable", "not_sent", "held"))
    for name, body in (("text", rendered.text), ("html", rendered.html)):
        for template in TEMPLATES:
            assert template not in body, (name, template)
        for phrase in ENGLISH:
            assert phrase not in body, (name, phrase)
    text = rendered.text
    assert "meer dan 2 automatische antwoorden aan dit adres in 24 uur" in text
    assert "ontvangstbevestiging (klacht in onderzoek) niet verstuurd" in text
    assert "klacht via het webformulier van Bert Zonderadres zonder e-mailadres" in text
    assert "bericht van 3" in text and "groter dan de limiet van 20000" in text
    assert "mailserver niet bereikbaar of verbinding verbroken" in text


def test_the_database_keeps_the_english_technical_detail(day):
    app, _ = day
    with app.sessions() as session:
        reasons = [e.detail.get("reason", "") for e in session.execute(
            select(Event).where(Event.type == "reply_skipped")).scalars()]
        held = session.execute(select(Outbox.last_error).where(Outbox.status == "held")).scalars().all()
    assert any("not sent, a header could not be written" in r for r in reasons)
    assert held and all("automatic replies to this address" in h for h in held)


def test_a_bounce_says_which_reply_came_back_and_why(day):
    app, template = day
    data, rendered = _rendered(app)
    [item] = [i for s in data.decisions if s.key == "undeliverable" for _, group in s.groups for i in group
              if i.who == "nico.night@example.be"]
    assert item.title.key == "bounced_reply" and dict(item.title.values)["template"] == template
    assert "status 5.1.1: 550 5.1.1 User unknown" in rendered.text
    assert f"teruggekomen: {template}" not in rendered.text and "teruggekomen: " in rendered.text
    assert "teruggekomen antwoord (welk antwoord is niet bekend)" not in rendered.text


def test_a_web_form_item_names_the_citizen_not_the_form(day):
    app, _ = day
    data, rendered = _rendered(app)
    [item] = [i for _, group in data.decisions[0].groups for i in group if i.title == "Klachtenformulier"]
    assert item.who == "Bert Zonderadres"
    assert FORM not in rendered.text.split("== TER INFO ==")[0]


def test_an_unknown_recorded_text_is_shown_as_it_is(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    assert recorded("a reason no label knows").key == ""
    assert recorded("more than 3 automatic replies for this case in 24 h").key == "held.case_limit"
    inner = recorded("still not delivered after 4 days and 9 attempts: SMTP delivery failed: timeout")
    assert inner.key == "smtp.expired" and dict(inner.values)["error"].key == "smtp.failed"
    fuzzy = recorded("fuzzy: VO-2026-000018: same name, other address, open; subject 88, body 41")
    assert fuzzy.key == "evidence.fuzzy"
    data = DigestData(DAY, None, [Section("held", [("", [Item("VO-1", Said("template.nieuw", raw="nieuw_sjabloon"),
                                                                  "a@example.be", recorded("a reason no label knows"),
                                                                  (fuzzy,))])])],
                      [], {"received": 0, "new_cases": 0, "replies_sent": 0, "needs_decision": 1}, [], 0)
    rendered = digest.render(app.settings, data)
    for body in (rendered.text, rendered.html):
        assert "nieuw_sjabloon" in body and "a reason no label knows" in body
        assert "VO-2026-000018 lijkt erop: zelfde naam, ander adres, dossier open; onderwerp 88, tekst 41" in body
