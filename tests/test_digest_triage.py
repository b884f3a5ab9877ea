"""The digest puts before staff what a message's decision added to an existing case (a forged
sender, a status request from an address not on file, mail on a closed case, any needs_triage),
shows the citizen's other e-mail address and the agency's solution, and a team digest counts
the team's mail only."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select, update

from conftest import complaint
from mailbot import digest
from mailbot.db import Case, Event, Message, Outbox
from mailbot.digest_data import collect
from mailbot.pipeline import process_files
from test_digest_seed import Seeder, at, seed

DAY = date(2026, 11, 23)
DMARC_FAIL = "Authentication-Results: mx.vlaamseombudsdienst.be; dmarc=fail (p=none) header.from=example.be\r\n"


def _at(day: int, hour: int = 10):
    return lambda: datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def _clock(app, day: int, hour: int = 10) -> None:
    app.intake.clock = app.intake.matching.clock = _at(day, hour)


def _items(data, key):
    section = {s.key: s for s in data.decisions + data.info}[key]
    return [i for _, group in section.groups for i in group]


def _text_lines_in_html(rendered) -> None:
    """Every item line of the text digest is in the HTML digest too (escaped)."""
    import html as html_lib

    body = rendered.text.split("== TE BESLISSEN ==", 1)[1].split("== BINNENGEKOMEN", 1)[0]
    page = html_lib.unescape(re.sub(r"<[^>]+>", "\n", rendered.html))
    for line in body.splitlines():
        line = line.strip().lstrip("-·").strip()
        if line and not line.startswith("=="):
            if " · " in line and line.startswith("VO-"):
                line = line.split(" · ", 1)[1]
            assert line in page, line


def _open_case(app, day: int = 20, **kw) -> str:
    _clock(app, day)
    process_files(app.intake, [complaint(**kw)])
    with app.sessions() as session:
        return session.execute(select(Case.ref).order_by(Case.id.desc()).limit(1)).scalar_one()


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(db_url=sqlite_url)


def test_spoofed_follow_up_on_an_older_case_is_in_triage(app):
    """A DMARC-failed follow-up matched by reference (score 100) to a case of three days ago is
    in 'Te beoordelen' with 'afzender niet bewezen (DMARC fail)', in text and HTML, and counted."""
    ref = _open_case(app)
    with app.sessions.begin() as session:  # the acknowledgment went out on the 20th: nothing is waiting
        session.execute(update(Outbox).values(status="sent", sent_at=datetime(2026, 11, 20, 10, 1, tzinfo=timezone.utc)))
    _clock(app, 23)
    process_files(app.intake, [complaint(
        subject=f"Re: [{ref}] Klacht over mijn studietoelage", extra_headers=DMARC_FAIL,
        name='"Jan <script>x</script> Peeters"',
        body="Ik wil mijn klacht intrekken en mijn rekeningnummer wijzigen.")])
    with app.sessions() as session:
        assert "spoofed_sender" in session.execute(select(Case.flags)).scalar_one()
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert item.ref == ref and item.detail == "follow_up" and item.flags == ("spoofed_sender",)
    assert data.totals["needs_decision"] == sum(s.count for s in data.decisions) == 1
    rendered = digest.render(app.settings, data)
    assert "opvolging: afzender niet bewezen (DMARC fail)" in rendered.text
    assert "opvolging: afzender niet bewezen (DMARC fail)" in rendered.html
    assert "<script>" not in rendered.html and "Jan &lt;script&gt;x&lt;/script&gt; Peeters" in rendered.html
    assert "1 te beslissen" in rendered.subject
    _text_lines_in_html(rendered)


def test_spoofed_follow_up_on_a_case_opened_the_same_day_is_listed_itself(app):
    """On the day the case was opened, the forged follow-up is listed, not the (sound) opening mail."""
    ref = _open_case(app, day=23)
    _clock(app, 23, 11)
    process_files(app.intake, [complaint(subject=f"Re: [{ref}] Klacht", extra_headers=DMARC_FAIL,
                                         body="Mijn nieuwe rekeningnummer is BE00 0000 0000 0000.")])
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert (item.ref, item.title, item.flags) == (ref, f"Re: [{ref}] Klacht", ("spoofed_sender",))


def test_opening_mail_keeps_only_its_own_reasons_when_later_mail_flags_the_case(make_app, sqlite_url):
    """Cases opened today and flagged later today: the opening mail of a case opened with nobody to
    assign stays listed; the opening mail of a sound case does not take the later mail's reasons."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        nobody = s.case(1, name="An", email="an@example.be", subject="Eerste", created=at(23, 9),
                        flags=["needs_triage", "spoofed_sender"], investigator_email=None, investigator_name=None)
        session.add(Event(type="case_opened", case_id=nobody.id, created_at=at(23, 9),
                          detail={"reasons": ["no investigator available: assign one"]}))
        s.message(nobody, kind="new_complaint", received=at(23, 9), subject="Eerste", sender="an@example.be")
        forged = s.message(nobody, kind="follow_up", received=at(23, 10), subject="Re: Eerste", sender="an@example.be")
        sound = s.case(2, name="Bo", email="bo@example.be", subject="Tweede", created=at(23, 11),
                       flags=["status_from_unknown_address"])
        s.message(sound, kind="new_complaint", received=at(23, 11), subject="Tweede", sender="bo@example.be")
        asked = s.message(sound, kind="status_request", received=at(23, 12), subject="Stand?", sender="x@example.org")
        for message, reasons in ((forged, ["DMARC failed: no case details are sent"]),
                                 (asked, ["status request in the text"])):
            event = session.execute(select(Event).where(Event.message_pk == message.id)).scalar_one()
            event.detail = {**event.detail, "reasons": reasons}
    with app.sessions() as session:
        items = _items(collect(session, app.settings, DAY), "needs_triage")
    assert [(i.title, i.flags) for i in items] == [
        ("Eerste", ()), ("Re: Eerste", ("spoofed_sender",)), ("Stand?", ("status_from_unknown_address", "no_reply"))]


def test_status_request_from_an_unknown_address_joined_to_a_case_is_a_decision(app):
    """'Wat is de stand van zaken?' from another address, In-Reply-To our acknowledgment: listed
    under the decisions with the neutral answer it got, and still under 'Ter info'."""
    ref = _open_case(app)
    with app.sessions() as session:
        ack = session.execute(select(Message.message_id).where(Message.direction == "out")).scalars().first()
    _clock(app, 23)
    process_files(app.intake, [complaint(
        sender="s.vermeulen@werk.example", name="S. Vermeulen", subject="Re: Uw klacht",
        body="Wat is de stand van zaken?", extra_headers=f"In-Reply-To: <{ack}>\r\n")])
    with app.sessions() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        assert "status_from_unknown_address" in case.flags and "needs_triage" not in case.flags
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert item.ref == ref and item.flags == ("status_from_unknown_address", "reply_pending")
    assert [i.ref for i in _items(data, "status_requests")] == [ref]
    rendered = digest.render(app.settings, data)
    label = "stand van zaken gevraagd vanaf een onbekend adres; neutraal antwoord in de wachtrij"
    assert label in rendered.text and label in rendered.html
    _text_lines_in_html(rendered)


def test_status_request_on_a_new_case_says_why_and_that_nobody_was_answered(make_app, sqlite_url):
    """A status request quoting someone else's reference opens a case: the triage item says it
    came from an unknown address; without a queued reply (import), 'geen antwoord'."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="Info", email="info@example.org", subject="Stand van zaken VO-2026-000013",
                      created=at(23, 9), flags=["needs_triage", "status_from_unknown_address", "status_unmatched"])
        s.message(case, kind="new_complaint", received=at(23, 9), subject=case.subject, sender=case.citizen_email)
        session.get(Event, 1).detail = {"kind": "new_complaint", "reasons": ["status request in the text"],
                                        "evidence": []}
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert item.flags == ("status_from_unknown_address", "no_reply")
    assert ("nieuwe klacht: stand van zaken gevraagd vanaf een onbekend adres; geen antwoord"
            in digest.render(app.settings, data).text)


def test_any_recorded_needs_triage_on_an_existing_case_is_listed_with_its_reason(make_app, sqlite_url):
    """A message whose recorded flags added needs_triage (any cause, e.g. a closed case) is in
    triage with the reason its event recorded; a follow-up on a case flagged long ago is not."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        old = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9),
                     flags=["needs_triage", "mail_on_closed_case"])
        m = s.message(old, kind="follow_up", received=at(23, 9), subject="Re: Oud", sender="an@example.be")
        session.add(Event(type="triage_note", case_id=old.id, message_pk=m.id, created_at=at(23, 9),
                          detail={"flags": ["needs_triage", "mail_on_closed_case"],
                                  "reason": "case VO-2026-000001 is closed"}))
        earlier = s.case(2, name="Bo", email="bo@example.be", subject="Eerder", created=at(2, 9),
                         flags=["needs_triage"])
        s.message(earlier, kind="follow_up", received=at(23, 10), subject="Re: Eerder", sender="bo@example.be")
        recorded = s.case(3, name="Cas", email="cas@example.be", subject="Derde", created=at(2, 9),
                          flags=["needs_triage"])
        s.message(recorded, kind="follow_up", received=at(23, 11), subject="Re: Derde", sender="cas@example.be")
        session.flush()
        event = session.execute(select(Event).where(Event.message_pk == 3)).scalar_one()
        event.detail = {**event.detail, "flags": ["needs_triage"]}
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    items = {i.ref: i for i in _items(data, "needs_triage")}
    assert set(items) == {"VO-2026-000001", "VO-2026-000003"}
    assert items["VO-2026-000001"].flags == ("mail_on_closed_case",)
    assert "case VO-2026-000001 is closed" in items["VO-2026-000001"].extras
    assert items["VO-2026-000003"].flags == ("needs_triage",)
    text = digest.render(app.settings, data).text
    assert "opvolging: bij een bestaand dossier gevoegd en te beoordelen" in text


def test_mail_on_a_closed_case_is_in_triage(make_app, sqlite_url):
    """Mail joining a case closed before it arrived is listed as 'bericht op een afgesloten dossier'."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        closed = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9), status="closed",
                        closed_at=at(10, 9))
        s.message(closed, kind="follow_up", received=at(23, 9), subject="Re: Oud", sender="an@example.be")
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert item.flags == ("on_closed_case",)
    assert "opvolging: bericht op een afgesloten dossier" in digest.render(app.settings, data).html


def test_mail_on_a_closed_case_is_told_by_its_recorded_reason(make_app, sqlite_url):
    """Decide's reason 'message on a closed case' lists the mail even once the case is reopened."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9),
                      flags=["needs_triage", "on_closed_case"])
        m = s.message(case, kind="follow_up", received=at(23, 9), subject="Re: Oud", sender="an@example.be")
        event = session.execute(select(Event).where(Event.message_pk == m.id)).scalar_one()
        event.detail = {**event.detail, "reasons": ["message on a closed case: threaded, not reopened; staff decide"]}
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "needs_triage")
    assert item.flags == ("on_closed_case",)


def test_mail_on_a_closed_case_through_the_pipeline_is_in_triage(app):
    """A follow-up quoting the reference of a case closed earlier is in 'Te beoordelen'."""
    ref = _open_case(app)
    with app.sessions.begin() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        case.status, case.closed_at = "closed", datetime(2026, 11, 21, tzinfo=timezone.utc)
    _clock(app, 23)
    process_files(app.intake, [complaint(subject=f"Re: [{ref}] Klacht", body="Ik heb nog een vraag.")])
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "needs_triage")
    assert item.ref == ref and item.flags == ("on_closed_case",)
    assert "opvolging: bericht op een afgesloten dossier" in digest.render(app.settings, data).text


def test_another_e_mail_address_is_a_contact_wish_with_the_address(app):
    """'Mail me from now on at X' puts the case under the contact wishes, with X."""
    _clock(app, 23)
    process_files(app.intake, [complaint(
        sender="greet.aerts@example.be", name="Greet Aerts", subject="Klacht over mijn premie renovatie",
        body="Beste,\n\nMijn renovatiepremie is na acht maanden nog altijd niet uitbetaald.\n\n"
             "Gelieve mij voortaan te mailen op greet.prive@example.org want dit adres lees ik niet meer.\n")])
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "contact_wishes")
    assert item.detail == "alternative_email" and "e-mail: greet.prive@example.org" in item.extras
    rendered = digest.render(app.settings, data)
    for page in (rendered.text, rendered.html):
        assert "wil gemaild worden op een ander adres" in page and "greet.prive@example.org" in page


def test_solution_offered_and_accepted_is_news_for_the_case(app):
    """The citizen writes that the agency offered a solution and accepts it: listed under 'Ter info'
    on that day; a later mail on the same case without it is not."""
    ref = _open_case(app)
    _clock(app, 23)
    process_files(app.intake, [complaint(
        subject=f"Re: [{ref}] Klacht over mijn studietoelage",
        body="Beste,\n\nHet departement heeft mij een oplossing voorgesteld: een voorschot. "
             "Ik ga akkoord met dat voorstel.\n")])
    with app.sessions() as session:
        assert "solution_offered" in session.execute(select(Case.flags)).scalar_one()
        data = collect(session, app.settings, DAY)
    [item] = _items(data, "solutions")
    assert item.ref == ref and item.detail == "de burger aanvaardt de oplossing van de dienst"
    rendered = digest.render(app.settings, data)
    for page in (rendered.text, rendered.html):
        assert "Oplossing voorgesteld door de dienst of aanvaard door de burger (1)" in page
    _clock(app, 24)
    process_files(app.intake, [complaint(subject=f"Re: [{ref}] Klacht", body="Nog een bijlage.")])
    with app.sessions() as session:
        assert _items(collect(session, app.settings, date(2026, 11, 24)), "solutions") == []


def test_recorded_solution_offered_flag_names_the_message(make_app, sqlite_url):
    """With the decision's flags recorded on message_received, the offer is shown as 'offered'."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        s = Seeder(session)
        case = s.case(1, name="An", email="an@example.be", subject="Oud", created=at(2, 9),
                      flags=["solution_offered"])
        m = s.message(case, kind="agency_forward", received=at(23, 9), subject="Fwd: antwoord", sender="an@example.be",
                      original_sender="De Lijn <klant@delijn.be>", original_subject="Uw klacht")
        event = session.execute(select(Event).where(Event.message_pk == m.id)).scalar_one()
        event.detail = {**event.detail, "flags": ["solution_offered"]}
    with app.sessions() as session:
        [item] = _items(collect(session, app.settings, DAY), "solutions")
    assert (item.title, item.detail, item.extras) == ("Uw klacht", "de dienst stelt een oplossing voor",
                                                      ("dienst: De Lijn <klant@delijn.be>",))


def test_team_digest_counts_and_charts_the_teams_mail_only(make_app, sqlite_url):
    """'alleen team wonen': received messages, replies sent and the chart are the team's."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    with app.sessions() as session:
        full = collect(session, app.settings, DAY)
        team = collect(session, app.settings, DAY, team="wonen")
    assert full.totals["received"] == 8 and full.chart[-1].total == 8
    assert team.totals == {"received": 2, "new_cases": 1, "replies_sent": 1,
                           "needs_decision": sum(s.count for s in team.decisions)}
    assert team.chart[-1].total == 2 and team.chart_max == 2 and sum(d.total for d in team.chart) == 2
    rendered = digest.render(app.settings, team)
    for page in (rendered.text, rendered.html):
        assert "Alle aantallen gelden voor dit team" in page
    assert "Binnengekomen berichten: 2" in rendered.text
    with app.sessions() as session:
        other = collect(session, app.settings, DAY, team="onderwijs")
    assert other.totals["replies_sent"] == 0
