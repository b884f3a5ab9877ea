"""Audit D of the staff digest: flag sections from what the day's mail added, every section
capped, replies that never left and outages, status overviews, quarantined mail on a case,
the state of quick-service answers, referrals by another ombudsman, which case a duplicate
duplicates."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from conftest import complaint
from mailbot import digest
from mailbot.db import Case, Event, Outbox
from mailbot.digest_data import collect
from mailbot.digest_items import DECISION_LISTED, TRIAGE_LISTED
from mailbot.pipeline import process_files
from test_digest_seed import Seeder, at
from test_referrals import CITIZEN_TEXT, outlook_referral

DAY = date(2026, 11, 23)


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(db_url=sqlite_url)


def _clock(app, day: int, hour: int = 10) -> None:
    app.intake.clock = app.intake.matching.clock = lambda: datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def _feed(app, day: int, *raws: bytes, hour: int = 10) -> None:
    _clock(app, day, hour)
    process_files(app.intake, list(raws))


def _all_sent(app) -> None:
    """The outbox sent everything queued so far (no SMTP server in these tests)."""
    with app.sessions.begin() as session:
        session.execute(update(Outbox).where(Outbox.status == "pending")
                        .values(status="sent", sent_at=datetime(2026, 11, 20, 10, 1, tzinfo=timezone.utc)))


def _items(data, key):
    section = {s.key: s for s in data.decisions + data.info}[key]
    return [i for _, group in section.groups for i in group]


def _ref(app, email: str) -> str:
    with app.sessions() as session:
        return session.execute(select(Case.ref).where(Case.citizen_email == email)
                               .order_by(Case.id.desc())).scalars().first()


ANN = dict(sender="ann@example.be", name="Ann", subject="Klacht buurman",
           body="Geachte,\n\nIk wens anoniem te blijven. De gemeente behandelt mijn klacht over de bouwvergunning "
                "niet.\nBel mij liever op 0470 99 88 77.\n\nAnn")
PIET = dict(sender="piet.janssens@example.be", name="Piet Janssens", subject="Bus DL-1234567 reed niet",
            body="Geachte,\n\nDe bus van De Lijn rijdt al weken niet volgens de dienstregeling. Ik heb De Lijn al "
                 "gemaild.\n\nPiet Janssens", extra_headers="Cc: klantendienst@delijn.be\r\n")


# -- 1. flag sections from the flags each message added -----------------------------------------

def test_a_plain_follow_up_does_not_list_the_cases_old_flags_again(app):
    """Anonymity/phone and agency-in-Cc wishes staff saw on the 20th: a 'thank you' on the 23rd
    lists neither case again, and nothing is to decide."""
    _feed(app, 20, complaint(**ANN), complaint(**PIET))
    ann, piet = _ref(app, "ann@example.be"), _ref(app, "piet.janssens@example.be")
    with app.sessions() as session:
        first = collect(session, app.settings, date(2026, 11, 20))
    assert [i.ref for i in _items(first, "contact_wishes")] == [ann]
    assert [i.ref for i in _items(first, "agency_in_cc")] == [piet]
    _all_sent(app)
    _feed(app, 23, complaint(sender="ann@example.be", name="Ann", subject=f"Re: [{ann}] Klacht buurman",
                             body="Bedankt, ik wacht uw telefoon af."),
          complaint(sender="piet.janssens@example.be", name="Piet Janssens", subject=f"Re: [{piet}] Bus",
                    body="Dank u voor uw antwoord. Ik wacht af."))
    _all_sent(app)
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    assert _items(data, "contact_wishes") == [] and _items(data, "agency_in_cc") == []
    assert data.totals["needs_decision"] == 0
    assert "0 te beslissen" in digest.render(app.settings, data).subject


def test_a_case_is_listed_once_per_section_with_the_flags_of_the_day(make_app, sqlite_url):
    """Two mails of the day adding contact wishes to one case: one item, both wishes; an older
    flag of the case (added on another day) is not among them."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9),
                      flags=["alternative_email", "anonymity_requested", "prefers_phone"], contact_phone="0470")
        for n, flag in enumerate(("anonymity_requested", "prefers_phone")):
            m = s.message(case, kind="follow_up", received=at(23, 9 + n), subject=f"Re: Oud {n}", sender=case.citizen_email)
            event = session.execute(select(Event).where(Event.message_pk == m.id)).scalar_one()
            event.detail = {**event.detail, "flags": [flag]}
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "contact_wishes")
    assert item.detail == "anonymity_requested, prefers_phone" and "tel. 0470" in item.extras


# -- 2. every section capped ------------------------------------------------------------------

def test_every_section_lists_a_limited_number_and_counts_all(make_app, sqlite_url):
    """A day with more flagged mail than a digest should list: each section lists its first items,
    says '… en nog N' in text and HTML, and the counts and the subject are the true totals."""
    app = make_app(db_url=sqlite_url)
    many_triage, many_wishes = TRIAGE_LISTED + 7, DECISION_LISTED + 3
    with app.sessions.begin() as session:
        s = Seeder(session)
        for n in range(many_triage):
            case = s.case(n + 1, name=f"B{n}", email=f"b{n}@example.be", subject=f"Klacht {n}",
                          created=at(23, 9), flags=["needs_triage"])
            s.message(case, kind="new_complaint", received=at(23, 9), subject=case.subject, sender=case.citizen_email)
        for n in range(many_wishes):
            case = s.case(1000 + n, name=f"W{n}", email=f"w{n}@example.be", subject=f"Wens {n}",
                          created=at(23, 10), flags=["prefers_phone"])
            s.message(case, kind="new_complaint", received=at(23, 10), subject=case.subject, sender=case.citizen_email)
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    sections = {s.key: s for s in data.decisions + data.info}
    assert sections["needs_triage"].count == many_triage and len(_items(data, "needs_triage")) == TRIAGE_LISTED
    assert sections["contact_wishes"].count == many_wishes and len(_items(data, "contact_wishes")) == DECISION_LISTED
    assert sections["new_cases"].count == many_triage + many_wishes and len(_items(data, "new_cases")) < 50
    assert data.totals["needs_decision"] == many_triage + many_wishes
    rendered = digest.render(app.settings, data)
    assert f"{many_triage + many_wishes} te beslissen" in rendered.subject
    for page in (rendered.text, rendered.html):
        assert "… en nog 7" in page and "… en nog 3" in page
    assert rendered.text.count("\n") < 1500


# -- 3. replies that never left, failed polls and copies -----------------------------------------

def test_replies_waiting_and_the_days_outages_are_before_staff(make_app, sqlite_url):
    """A reply retrying since the morning (SMTP unreachable), one never tried for hours, failed polls
    and a failed copy of sent replies: listed with the error; a reply queued minutes before
    midnight and not tried yet is not (yet)."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="Wacht Er", email="wacht@example.be", subject="VDAB", created=at(23, 9))
        s.outbox(case, template="ack_investigation", recipient=case.citizen_email, status="pending",
                 created=at(23, 9), last_error="[Errno 111] Connection refused")
        never = s.outbox(case, template="forward_added", recipient=case.citizen_email, status="pending",
                         created=at(23, 12))
        never.attempts = 0
        s.outbox(case, template="status", recipient=case.citizen_email, status="pending", created=at(23, 23, 50))
        for minute in (0, 30):
            session.add(Event(type="poll_failed", created_at=at(23, 15, minute),
                              detail={"mailbox": "INBOX", "error": "IMAP connect failed: timed out"}))
        session.add(Event(type="sent_copy_failed", created_at=at(23, 16),
                          detail={"folder": "Sent", "error": "APPEND refused", "copied": 0, "missing": 3}))
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    items = _items(data, "not_sent")
    assert [(i.title, i.detail) for i in items] == [
        ("ack_investigation", "[Errno 111] Connection refused"), ("forward_added", "nog niet geprobeerd"),
        ("postbus INBOX niet gelezen: mail van burgers bleef liggen", "IMAP connect failed: timed out"),
        ("kopie van verstuurde antwoorden niet bewaard in Sent", "APPEND refused")]
    assert items[2].extras == ("2× tussen 15:00 en 15:30",) and "3 kopie(ën) ontbreken" in items[3].extras
    assert data.totals["needs_decision"] == 4  # the status reply of 23:50 is not late yet
    text = digest.render(app.settings, data).text
    assert "Connection refused" in text and "postbus INBOX niet gelezen" in text


def _late_outage(app, written: datetime, noted: list[datetime]):
    """Failed polls noted at `noted`, written to the database at `written` (it was away):
    the one outage item of DAY's digest."""
    with app.sessions.begin() as session:
        for moment in noted:
            session.add(Event(type="poll_failed", created_at=written, detail={
                "mailbox": "INBOX", "error": "database unavailable",
                "noted_at": moment.astimezone(ZoneInfo("Europe/Brussels")).isoformat()}))
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "not_sent")
    return item


def test_an_outage_written_after_the_database_came_back_says_when_it_happened(make_app, sqlite_url):
    """Failed polls the robot kept in memory while the database was away are written when it
    is back (at 16:40 here), with when they were noted: the digest says 15:00 and 15:30."""
    item = _late_outage(make_app(db_url=sqlite_url), at(23, 16, 40), [at(23, 15, 0), at(23, 15, 30)])
    assert item.extras == ("2× tussen 15:00 en 15:30",)


def test_an_outage_of_the_night_before_written_after_midnight_shows_its_date(make_app, sqlite_url):
    """Polls failed at 23:00 and 23:30 on the 22nd, the database back at 00:40 on the 23rd: the
    23rd's digest lists them (the 22nd's was built without them) with their date."""
    item = _late_outage(make_app(db_url=sqlite_url), at(22, 24, 40),  # 00:40 on the 23rd
                        [at(22, 23, 0), at(22, 23, 30)])
    assert item.extras == ("2× tussen 22-11 23:00 en 22-11 23:30",)


def test_a_digest_copy_refused_for_a_staff_member_is_in_the_next_digest(make_app, sqlite_url):
    """A refused copy (named by its recipient) and a digest that could not be built (named by its
    day) are listed, so colleagues learn that someone missed the digest."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        session.add(Event(type="digest_failed", created_at=at(23, 7), detail={
            "day": "2026-11-22", "recipient": "directie@vlaamseombudsdienst.be",
            "error": "rejected by the SMTP server (550 5.1.1 user unknown)"}))
        session.add(Event(type="digest_failed", created_at=at(23, 8),
                          detail={"day": "2026-11-22", "error": "TemplateError: boom"}))
    with app.sessions() as session:
        items = _items(collect(session, app.settings, DAY), "not_sent")
    assert [i.title for i in items] == ["dagoverzicht niet bezorgd: directie@vlaamseombudsdienst.be",
                                        "dagoverzicht niet bezorgd: 2026-11-22"]
    assert "550 5.1.1" in items[0].detail


# -- 4. a status overview has no case of its own ------------------------------------------------

def test_a_status_overview_is_listed_with_the_cases_it_told_about(app):
    """'Is er al nieuws?' from the address of two open cases: answered with an overview, no case;
    listed under the status requests with both references and the reply's state."""
    lotte = dict(sender="lotte.claes@example.be", name="Lotte Claes")
    _feed(app, 20, complaint(**lotte, subject="Premie renovatie",
                             body="Geachte,\n\nMijn renovatiepremie bij Wonen in Vlaanderen werd geweigerd zonder "
                                  "motivering.\n\nLotte Claes"),
          complaint(**lotte, subject="Rijbewijs",
                    body="Geachte,\n\nDe gemeente weigert mijn rijbewijs te vernieuwen zonder reden, al drie "
                         "weken.\n\nLotte Claes"))
    with app.sessions() as session:
        refs = list(session.execute(select(Case.ref).order_by(Case.id)).scalars())
    _feed(app, 23, complaint(**lotte, subject="Is er al nieuws?", body="Is er al nieuws over mijn klachten?"))
    with app.sessions() as session:
        assert session.execute(select(Outbox.template).order_by(Outbox.id.desc())).scalars().first() == "status_overview"
        [item] = _items(collect(session, app.settings, DAY), "status_requests")
    assert item.ref == ", ".join(refs) and item.title == "Is er al nieuws?"
    assert item.detail == "antwoord in de wachtrij (overzicht van de dossiers)"


# -- 5. quarantined mail filed on the citizen's case --------------------------------------------

def test_quarantined_mail_on_a_case_shows_the_case_and_the_sender(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9))
        s.message(case, kind="unreadable", received=at(23, 9), subject="Re: Oud (bijlage)", sender="an@example.be",
                  name="An", quarantine_reason="message of 31457280 bytes exceeds the limit of 26214400")
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "quarantined")
    assert (item.ref, item.title, item.who) == ("VO-2026-000001", "Re: Oud (bijlage)", "An <an@example.be>")


# -- 7. quick service: was the answer sent? -------------------------------------------------------

def test_quick_service_says_whether_the_citizen_got_the_answer(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        for n, state in enumerate(("sent", "held", "pending", None)):
            case = s.case(n + 1, name=f"B{n}", email=f"b{n}@example.be", subject=f"Klacht {n}", created=at(23, 9),
                          outcome="refer_ombudsman")
            if state:
                s.outbox(case, template="agency_in_cc", recipient=case.citizen_email, status="sent", created=at(23, 9))
                s.outbox(case, template="referred_ombudsman", recipient=case.citizen_email, status=state,
                         created=at(23, 9))
    with app.sessions() as session:
        details = [i.detail.split("; ", 1)[1] for i in _items(collect(session, app.settings, DAY), "quick_service")]
    assert details == ["antwoord verstuurd", "antwoord tegengehouden", "antwoord nog niet verstuurd (wachtrij)",
                       "geen antwoord verstuurd: neem zelf contact op"]


# -- 8. a referral by another ombudsman service -----------------------------------------------------

def test_a_referral_is_labelled_as_such_not_as_an_agency_letter(app):
    _feed(app, 20, complaint(sender="marc.willems@hotmail.com", name="Marc Willems", subject="Klacht huurpremie",
                             body=CITIZEN_TEXT))
    _all_sent(app)
    _feed(app, 23, outlook_referral())
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    assert _items(data, "agency_forwards") == []
    [item] = _items(data, "referrals")
    assert "federaalombudsman.be" in item.who and "doorverwezen door een andere ombudsdienst" in item.detail
    assert "marc.willems@hotmail.com" in item.detail
    # The contact wishes Marc stated on the 20th are not listed again for the referral.
    assert _items(data, "contact_wishes") == []
    assert "Doorverwezen door een andere ombudsdienst (1)" in digest.render(app.settings, data).text


# -- 9. which case a possible duplicate duplicates -------------------------------------------------

def test_a_possible_duplicate_names_the_mail_and_the_case(app):
    _feed(app, 23, complaint(), hour=9)
    ref = _ref(app, "jan.peeters@example.be")
    _feed(app, 23, complaint(subject="Klacht studietoelage (nogmaals)"), hour=10)
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "multi_addressed")
    assert item.ref == ref and item.detail == "possible_duplicate"
    assert any("Klacht studietoelage (nogmaals)" in e and "mogelijk dezelfde klacht" in e for e in item.extras)
