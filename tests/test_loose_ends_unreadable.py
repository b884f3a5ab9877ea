"""The notice about an unreadable mail names the citizen's case when the mail's headers show
it belongs to it (the reference in the Subject, or In-Reply-To/References to a message of
the case), and the quarantined mail is filed on that case for staff. Someone else who writes
on the case gets the notice without the reference, and their mail stays on no case."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import complaint
from mailbot.db import Case, Message, Outbox
from mailbot.model import Reply
from mailbot.parse import parse_message
from mailbot.pipeline import process_files
from mailbot.replies import reply_context

BIG = 1_100_000  # over the 1 MB limit of these tests


@pytest.fixture
def opened(make_app, db_url, smtp_sink):
    """An app with one case (acknowledged): (app, case ref, Message-ID of the acknowledgment)."""
    app = make_app(db_url=db_url, smtp={"port": smtp_sink.port}, limits={"max_message_bytes": 2**20})
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        ack = session.execute(select(Outbox).where(Outbox.template == "ack_investigation")).scalar_one()
        ref = session.get(Case, ack.case_id).ref
    app.send_outbox()
    return app, ref, ack.message_id


def _notices(app, smtp_sink) -> dict[str, tuple[str, str]]:
    """Recipient → (Subject, plain text) of the notices sent."""
    app.send_outbox()
    return {m["To"]: (m["Subject"], " ".join(m.get_body(("plain",)).get_content().split()))
            for m in smtp_sink.parsed() if "omdat het te groot is" in m.get_body(("plain",)).get_content()}


def _quarantined(app) -> list[Message]:
    with app.sessions() as session:
        return list(session.execute(select(Message).where(Message.quarantine_reason.is_not(None))
                                    .order_by(Message.id)).scalars())


def test_the_citizens_oversize_reply_on_the_case_gets_a_notice_naming_it(opened, smtp_sink):
    """An oversize mail of the citizen with the reference in the Subject: the notice carries the
    reference in its Subject and text, and the quarantined mail is on the case."""
    app, ref, _ = opened
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", body="x" * BIG)])
    subject, text = _notices(app, smtp_sink)["Jan Peeters <jan.peeters@example.be>"]
    assert subject == f"Uw bericht [{ref}]" and f"Vermeld daarbij uw dossiernummer {ref}." in text
    [mail] = _quarantined(app)
    with app.sessions() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        notice = session.execute(select(Outbox).where(Outbox.template == "undeliverable")).scalar_one()
        assert mail.case_id == case.id and notice.case_id == case.id
        assert [m.kind for m in case.messages if m.direction == "in"] == ["new_complaint", "unreadable"]


def test_a_reply_in_the_thread_without_the_reference_is_recognised_too(opened, smtp_sink):
    """No reference, but In-Reply-To/References name our acknowledgment: the case is named."""
    app, ref, ack_id = opened
    process_files(app.intake, [complaint(
        subject="Bijlagen", body="x" * BIG, extra_headers=f"In-Reply-To: <{ack_id}>\r\nReferences: <{ack_id}>\r\n")])
    subject, text = _notices(app, smtp_sink)["Jan Peeters <jan.peeters@example.be>"]
    assert f"[{ref}]" in subject and ref in text
    assert _quarantined(app)[0].case_id is not None


def test_someone_else_quoting_the_reference_learns_nothing_of_the_case(opened, smtp_sink):
    """The neighbour's oversize mail quotes the citizen's reference and replies in the thread:
    the neighbour gets the plain notice, without the reference, and the mail is on no case."""
    app, ref, ack_id = opened
    process_files(app.intake, [complaint(
        sender="buur@example.be", name="Buurman", subject=f"Re: Uw klacht [{ref}]", body="x" * BIG,
        extra_headers=f"In-Reply-To: <{ack_id}>\r\n")])
    subject, text = _notices(app, smtp_sink)["Buurman <buur@example.be>"]
    assert subject == f"Uw bericht: Uw klacht [{ref}]"  # their own subject echoed, no reference of ours
    assert "VO-" not in text and "dossiernummer" not in text
    assert _quarantined(app)[0].case_id is None


def test_a_forged_oversize_mail_on_the_case_gets_nothing(opened, smtp_sink):
    app, ref, _ = opened
    process_files(app.intake, [complaint(
        subject=f"Re: Uw klacht [{ref}]", body="x" * BIG,
        extra_headers="Authentication-Results: mx.vlaamseombudsdienst.be; dmarc=fail header.from=example.be\r\n")])
    assert _notices(app, smtp_sink) == {}
    assert _quarantined(app)[0].case_id is None


@pytest.mark.parametrize("language, sentence", [
    ("nl", "Vermeld daarbij uw dossiernummer {ref}."), ("fr", "Veuillez mentionner votre numéro de dossier {ref}."),
    ("en", "Please quote your reference number {ref}."), ("de", "Bitte geben Sie dabei Ihr Aktenzeichen {ref} an.")])
def test_the_notice_names_the_case_in_every_language(opened, language, sentence):
    app, ref, _ = opened
    with app.sessions() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        reply = Reply("undeliverable", parse_message(complaint()).from_, language, "Klacht", {"reason": "too_large"})
        context = reply_context(app.settings, case, reply, parse_message(complaint())) | {"reason": "too_large"}
    rendered = app.renderer.render("undeliverable", language, context)
    assert sentence.format(ref=ref) in " ".join(rendered.text.split()) and ref in rendered.html
