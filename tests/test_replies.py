"""Replies end to end: mail in (pipeline) → outbox → aiosmtpd sink. Recipient, channel, headers,
language and header injection, as the citizen's mail program would see them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import complaint
from mailbot.db import Case, Outbox
from mailbot.pipeline import process_files

OFFICE = "klachten@vlaamseombudsdienst.be"


@pytest.fixture
def app(make_app, smtp_sink, sqlite_url):
    return make_app(smtp={"port": smtp_sink.port}, db_url=sqlite_url,
                    webform_senders=["formulier@webformulieren.example.be"])


def _run(app, *raws: bytes):
    outcomes = process_files(app.intake, raws)
    app.send_outbox()
    return outcomes


def _case(app, email: str) -> Case:
    with app.sessions() as session:
        return session.execute(select(Case).where(Case.citizen_email == email)).scalar_one()


def _case_by_ref(app, ref: str) -> Case:
    with app.sessions() as session:
        return session.execute(select(Case).where(Case.ref == ref)).scalar_one()


def test_webform_mail_is_answered_at_reply_to(app, smtp_sink):
    """A complaint from the listed web-form robot is answered at its Reply-To, which is the case's citizen."""
    raw = complaint(sender="formulier@webformulieren.example.be", name="Webformulier",
                    extra_headers="Reply-To: Els Maes <els.maes@example.be>\r\n")
    _run(app, raw)
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["els.maes@example.be"]
    assert smtp_sink.parsed()[0]["To"] == "Els Maes <els.maes@example.be>"
    assert _case(app, "els.maes@example.be").citizen_email == "els.maes@example.be"


def test_reply_to_of_an_ordinary_sender_is_ignored(app, smtp_sink):
    """An ordinary citizen's Reply-To is not followed: the office answers the From address."""
    _run(app, complaint(extra_headers="Reply-To: iemand.anders@example.org\r\n"))
    assert [e.rcpt_tos for e in smtp_sink.messages] == [["jan.peeters@example.be"]]


def test_status_reply_goes_only_to_the_address_on_file(app, smtp_sink):
    """"Stand van zaken?" from the citizen's own address gets the status with the reference; from another
    address the same question gets a neutral answer without case details, flagged for staff."""
    _run(app, complaint())
    ref = _case(app, "jan.peeters@example.be").ref
    question = "Goedendag,\n\nWat is de stand van zaken van mijn klacht?\n\nJan Peeters"
    _run(app, complaint(subject=f"Re: Uw klacht [{ref}]", body=question))
    _run(app, complaint(sender="jan.privé@example.org".replace("é", "e"), subject=f"Vraag over {ref}",
                        body=question))
    ack, status, neutral = smtp_sink.parsed()
    assert smtp_sink.messages[1].rcpt_tos == ["jan.peeters@example.be"]
    assert ref in status["Subject"] and ref in status.get_body(("plain",)).get_content()
    assert smtp_sink.messages[2].rcpt_tos == ["jan.prive@example.org"]
    for part in ("plain", "html"):
        assert ref not in neutral.get_body((part,)).get_content()
    assert f"[{ref}]" not in neutral["Subject"]  # their own words are echoed, our tag is not
    with app.sessions() as session:  # flagged for staff (here on the stranger's triage case)
        flags = [f for c in session.execute(select(Case)).scalars() for f in c.flags]
    assert "status_from_unknown_address" in flags


@pytest.mark.parametrize("extra, sender", [
    ("Auto-Submitted: auto-replied\r\n", "jan.peeters@example.be"),
    ("Precedence: bulk\r\n", "jan.peeters@example.be"),
    ("List-Id: <nieuws.example.be>\r\n", "jan.peeters@example.be"),
    ("", OFFICE),
    ("", "noreply@example.be"),
    ("", "contact@federaalombudsman.be"),
])
def test_robots_ourselves_and_services_get_no_reply(app, smtp_sink, extra, sender):
    """Automatic mail, our own address, no-reply senders and known services never get an automatic reply."""
    _run(app, complaint(sender=sender, extra_headers=extra))
    assert smtp_sink.messages == []


def test_undeliverable_address_gets_no_reply(app, smtp_sink):
    """An address marked undeliverable gets nothing, not even the status reply to its own case: the
    status request is flagged for staff to answer another way (recipients refuse the address)."""
    from mailbot.addresses import mark_undeliverable

    _run(app, complaint())
    ref = _case(app, "jan.peeters@example.be").ref
    with app.sessions.begin() as session:
        mark_undeliverable(session, "jan.peeters@example.be", source="smtp", reason="550 5.1.1")
    _run(app, complaint(subject=f"Re: Uw klacht [{ref}]", body="Wat is de stand van zaken van mijn klacht?"),
         complaint(subject="Nog een heel andere klacht over De Lijn", body="De bus kwam niet. " * 20))
    assert len(smtp_sink.messages) == 1  # only the first acknowledgment
    assert {"needs_triage", "no_reply_address"} <= set(_case_by_ref(app, ref).flags)


def test_headers_language_and_investigator_in_both_parts(app, smtp_sink):
    """A French complaint is answered in French, threaded, marked automatic, with the investigator's
    name, e-mail and phone in the text and the HTML part."""
    body = ("Madame, Monsieur,\n\nJ'ai demandé une allocation d'études au département de l'Enseignement "
            "en mars, mais après trois mois je n'ai toujours pas reçu de décision. Je leur ai déjà écrit "
            "deux fois sans réponse.\n\nCordialement,\nJean Dupont")
    _run(app, complaint(sender="jean.dupont@example.be", name="Jean Dupont", body=body,
                        subject="Plainte concernant mon allocation d'études", message_id="<fr-1@example.be>"))
    case = _case(app, "jean.dupont@example.be")
    [reply] = smtp_sink.parsed()
    assert reply["Content-Language"] == "fr"
    assert reply["Subject"].startswith(f"Votre plainte [{case.ref}]")
    assert reply["In-Reply-To"] == "<fr-1@example.be>" and "<fr-1@example.be>" in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied" and reply["X-Auto-Response-Suppress"] == "All"
    assert reply["From"] == f"Vlaamse Ombudsdienst <{OFFICE}>" and reply["Date"]
    assert reply["Reply-To"].addresses[0].addr_spec == case.investigator_email
    assert reply.get_content_type() == "multipart/alternative"
    for part in ("plain", "html"):
        content = reply.get_body((part,)).get_content()
        assert case.investigator_name in content and case.investigator_email in content
        assert case.investigator_phone and case.investigator_phone in content
    with app.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert f"<{row.message_id}>" == reply["Message-ID"]


INJECTED_SUBJECTS = [
    "=?utf-8?q?Klacht=0D=0ABcc=3A_evil=40attacker=2Eexample?=",
    "=?utf-8?b?S2xhY2h0DQpCY2M6IGV2aWxAYXR0YWNrZXIuZXhhbXBsZQ0KDQo8aDE+aGk8L2gxPg==?=",
    "Klacht\r\n Bcc: evil@attacker.example",
]


@pytest.mark.parametrize("subject", INJECTED_SUBJECTS)
def test_injection_in_subject_never_reaches_a_header(app, smtp_sink, subject):
    """CR/LF smuggled into the subject (raw, Q- or B-encoded) cannot add a header or a recipient."""
    _run(app, complaint(subject=subject))
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["jan.peeters@example.be"]
    _assert_clean(smtp_sink)


@pytest.mark.parametrize("name", [
    "=?utf-8?q?Jan=0D=0ABcc=3A_evil=40attacker=2Eexample?=",
    '"Jan\\r\\nBcc: evil@attacker.example"',
    "=?utf-8?q?evil=40attacker=2Eexample=2C_?=",
])
def test_injection_in_display_name_never_reaches_a_header(app, smtp_sink, name):
    """A hostile display name is cleaned: no new header, no extra recipient, To stays one address."""
    raw = complaint().replace(b"From: Jan Peeters <", f"From: {name} <".encode())
    _run(app, raw)
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["jan.peeters@example.be"]
    [reply] = smtp_sink.parsed()
    assert [a.addr_spec for a in reply["To"].addresses] == ["jan.peeters@example.be"]
    _assert_clean(smtp_sink)


def _assert_clean(sink) -> None:
    raw = sink.messages[0].original_content or sink.messages[0].content
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]
    assert b"bcc" not in names and b"cc" not in names
    [reply] = sink.parsed()
    assert "\n" not in str(reply["Subject"]) and "\r" not in str(reply["Subject"])
    assert len(str(reply["Subject"])) <= 200
    assert reply["Bcc"] is None and reply["Cc"] is None
