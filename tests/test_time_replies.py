"""Times in the mail the robot writes: the Date header in the office's own time with its offset
(RFC 5322 3.3: "SHOULD express local time"), and the agency's date a reply may quote as the
office's calendar day."""

from __future__ import annotations

from datetime import date, datetime, timezone
from email import message_from_bytes
from email.utils import parsedate_to_datetime

from sqlalchemy import select

from conftest import base_config, complaint
from mailbot import digest
from mailbot.config import settings_from_mapping
from mailbot.db import Outbox
from mailbot.model import Address, ForwardedMessage, Mail, Reply
from mailbot.pipeline import process_files
from mailbot.replies import reply_context
from mailbot.staff_notice import compose_notice

SUMMER = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)  # 12:00 in Brussels (+02:00)
WINTER = datetime(2026, 11, 24, 6, 30, tzinfo=timezone.utc)  # 07:30 in Brussels (+01:00)
STAFF = "onthaal@vlaamseombudsdienst.be"


def _date_header(mime: bytes) -> str:
    return str(message_from_bytes(mime)["Date"])


def test_a_reply_is_dated_in_the_office_time_with_its_offset(make_app, db_url):
    """The acknowledgment of a mail at 10:00 UTC in July says 12:00 +0200: the same moment,
    as the office's clock shows it (it said 10:00 +0000)."""
    app = make_app(db_url=db_url, clock=lambda: SUMMER)
    process_files(app.intake, [complaint()])
    with app.sessions() as session:
        mime = session.execute(select(Outbox.mime).where(Outbox.template != "staff_notice")).scalars().first()
    header = _date_header(mime)
    assert header == "Wed, 01 Jul 2026 12:00:00 +0200"
    assert parsedate_to_datetime(header) == SUMMER


def test_the_digest_is_dated_in_the_office_time(make_app, db_url):
    """The digest queued at 07:30 in Brussels in November says 07:30 +0100."""
    app = make_app(db_url=db_url, digest={"recipients": [STAFF]})
    assert digest.queue(app.sessions, app.settings, date(2026, 11, 23), WINTER) == 1
    with app.sessions() as session:
        mime = session.execute(select(Outbox.mime).where(Outbox.template == "digest")).scalar_one()
    assert _date_header(mime) == "Tue, 24 Nov 2026 07:30:00 +0100"


def test_a_staff_notice_is_dated_in_the_office_time():
    """A staff notice (a rule's `notify:`) written at 10:00 UTC in July says 12:00 +0200."""
    settings = settings_from_mapping(base_config())
    mime = compose_notice(settings, recipient=STAFF, subject="Nieuw dossier VO-2026-000001", text="Zie dossier.",
                          message_id="notice.1@vlaamseombudsdienst.be", now=SUMMER)
    assert _date_header(mime) == "Wed, 01 Jul 2026 12:00:00 +0200"


def test_the_agency_date_a_reply_may_quote_is_the_office_day():
    """`forwarded.date` of an agency's mail sent at 23:30 UTC on 30 November is 01-12-2026: it
    was already 1 December in Brussels (the template variable gave the sender's own day)."""
    settings = settings_from_mapping(base_config())
    agency = Address("Departement Onderwijs", "info@onderwijs.vlaanderen.be")
    sent = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
    mail = Mail(message_id="fwd@example.be", subject="Fw: uw aanvraag", from_=Address("Jan", "jan@example.be"),
                forwarded=(ForwardedMessage(sender=agency, date=sent, subject="Uw aanvraag", body="..."),))
    reply = Reply("forward_added", Address("Jan", "jan@example.be"), "nl", mail.subject)
    assert reply_context(settings, None, reply, mail)["forwarded"]["date"] == "01-12-2026"
