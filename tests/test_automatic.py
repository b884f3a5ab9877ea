"""Automatic mail is recognised with its reason; bounces are read (RFC 3464)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.automatic import auto_reason, by_subject_only
from mailbot.classify import classify
from mailbot.parse import parse_message

DATA = Path(__file__).parent / "data"
OWN = frozenset({"klachten@vlaamseombudsdienst.be"})


def mail_with(headers: str, body: str = "Hallo") -> bytes:
    return (f"From: Jan <jan@example.be>\r\nSubject: Vraag\r\n{headers}\r\n\r\n{body}").encode()


@pytest.mark.parametrize(("header", "reason"), [
    ("Auto-Submitted: auto-replied", "auto-submitted: auto-replied"),
    ("Precedence: bulk", "precedence: bulk"),
    ("Precedence: auto_reply", "precedence: auto_reply"),
    ("X-Autoreply: yes", "x-autoreply: yes"),
    ("X-Autorespond: yes", "x-autorespond: yes"),
    ("X-Auto-Response-Suppress: All", "x-auto-response-suppress: All"),
    ("List-Id: <news.example.be>", "mailing list: list-id"),
    ("List-Unsubscribe: <mailto:u@x>", "mailing list: list-unsubscribe"),
    ("Return-Path: <>", "null sender: Return-Path <>"),
])
def test_automatic_headers_give_their_reason(header: str, reason: str) -> None:
    """Each RFC 3834-style header marks the mail automatic, naming the header."""
    assert auto_reason(parse_message(mail_with(header))) == reason


def test_auto_submitted_no_is_human() -> None:
    """'Auto-Submitted: no' is an explicit human message."""
    assert auto_reason(parse_message(mail_with("Auto-Submitted: no"))) is None


def test_mailer_daemon_sender_is_automatic() -> None:
    """A MAILER-DAEMON sender is a robot."""
    raw = b"From: MAILER-DAEMON@mx.example.be\r\nSubject: hi\r\n\r\nx"
    assert auto_reason(parse_message(raw)) == "robot sender: mailer-daemon@mx.example.be"


def test_our_own_address_is_a_loop() -> None:
    """Mail from our own address is never answered."""
    raw = b"From: klachten@vlaamseombudsdienst.be\r\nSubject: hi\r\n\r\nx"
    assert (auto_reason(parse_message(raw), OWN) or "").startswith("loop:")


@pytest.mark.parametrize("name", ["ooo_nl.eml", "ooo_fr.eml", "ooo_de.eml", "corpus/php-mime-mail-parser__issue212.eml"])
def test_out_of_office_subjects(name: str) -> None:
    """Out-of-office subjects in nl/fr/de (and Polish) are automatic."""
    assert (auto_reason(parse_message((DATA / name).read_bytes())) or "").startswith("auto-reply subject")


def test_citizen_mentioning_absence_is_human() -> None:
    """'afwezig' inside a citizen's subject is not an out-of-office marker."""
    assert auto_reason(parse_message(mail_with("", "x").replace(b"Vraag", b"Ambtenaar was afwezig"))) is None


def with_subject(subject: str, headers: str = "") -> bytes:
    return mail_with(headers, "Zie hieronder.").replace(b"Subject: Vraag", f"Subject: {subject}".encode())


@pytest.mark.parametrize("subject", [
    "FW: Automatisch antwoord: Vraag over mijn studietoelage",
    "TR: Réponse automatique : Ma demande d'allocation",
    "Fwd: Out of Office Re: study grant",
    "WG: Abwesend: Meine Beschwerde",
    "Re: Fwd: Automatisch antwoord: Uw vraag",
])
def test_citizen_forwarding_an_auto_reply_is_human(subject: str) -> None:
    """A forward prefix before an auto-reply subject is a person forwarding it (as proof), not a robot."""
    raw = with_subject(subject)
    assert auto_reason(parse_message(raw)) is None
    assert not classify(parse_message(raw)).is_automatic


def test_auto_is_dutch_for_car() -> None:
    """'Auto: onterechte boete' is a citizen's complaint about their car, not an auto-reply."""
    assert auto_reason(parse_message(with_subject("Auto: onterechte boete lage-emissiezone"))) is None


@pytest.mark.parametrize("subject", [
    "Automatisch antwoord: Uw klacht", "Abwesend: Ihre Beschwerde", "Out of Office: your complaint",
    "AUTO: Jan Peeters is out of the office (returning 02/12/2026)", "Auto-Reply: uw klacht",
    "Afwezigheidsmelding: Uw klacht", "Niet op kantoor: Re: studietoelage", "Absence du bureau : votre plainte",
    "Abwesenheitsmeldung: Ihre Beschwerde",
])
def test_auto_reply_subjects_without_forward_prefix_stay_automatic(subject: str) -> None:
    """Without a forward prefix these subjects remain automatic, and the reason says it rests on the subject."""
    reason = auto_reason(parse_message(with_subject(subject)))
    assert (reason or "").startswith("auto-reply subject") and by_subject_only(reason)


def test_forward_prefix_does_not_override_header_evidence() -> None:
    """A forwarded auto-reply subject with Auto-Submitted is still automatic, on the header."""
    reason = auto_reason(parse_message(with_subject("FW: Automatisch antwoord: x", "Auto-Submitted: auto-replied")))
    assert reason == "auto-submitted: auto-replied" and not by_subject_only(reason)


def test_bounce_of_our_reply_names_recipient_and_message_id() -> None:
    """A DSN gives the failed recipient, permanence and which of our messages bounced."""
    bounce = parse_message((DATA / "bounce_our_reply.eml").read_bytes()).bounce
    assert bounce is not None
    assert (bounce.recipient, bounce.permanent, bounce.status) == ("jan.peters@example.be", True, "5.1.1")
    assert bounce.original_message_id == "VO-2026-000123.1@vlaamseombudsdienst.be"


def test_delayed_dsn_is_temporary_and_reads_the_returned_message() -> None:
    """Action: delayed / 4.x.x is temporary; the Message-ID comes from message/rfc822."""
    bounce = parse_message((DATA / "delayed_dsn.eml").read_bytes()).bounce
    assert bounce is not None and not bounce.permanent
    assert bounce.original_message_id == "VO-2026-000124.1@vlaamseombudsdienst.be"


def test_real_postfix_bounce_from_corpus() -> None:
    """mikel/mail's multi-address bounce is read as a permanent failure."""
    bounce = parse_message((DATA / "corpus/mikel-mail__multi_address_bounce1.eml").read_bytes()).bounce
    assert bounce is not None and bounce.permanent and "@" in bounce.recipient


def test_feedback_report_is_automatic() -> None:
    """An ARF abuse report (multipart/report) is automatic."""
    reason = auto_reason(parse_message((DATA / "corpus/mimekit__feedback-report.eml").read_bytes()))
    assert reason == "report: feedback-report"


def test_dsn_with_a_base64_encoded_recipient_block():
    """A report whose per-recipient block a gateway base64-encoded still yields the failed
    recipient, the permanent 5.1.1 status and our bounced Message-ID."""
    from servers import unavailable

    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "auto" / "mimekit__bounce.eml"
    if not corpus.exists():
        unavailable("the shared corpus is not beside the repository")
    bounce = parse_message(corpus.read_bytes()).bounce
    assert bounce is not None and bounce.recipient == "netec.test@netecgc.com"
    assert bounce.permanent and bounce.status == "5.1.1" and bounce.original_message_id
