"""The digest names the services it detected on a case (other ombudsman services, agencies
in Cc, the referring service, an agency's file number) by their Dutch name in the rules in
force, not by the id the robot recorded; an id the rules no longer know is shown as recorded."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conftest import complaint
from mailbot import digest
from mailbot.db import Case
from mailbot.digest_data import collect
from mailbot.last_good import save_last_good
from mailbot.pipeline import process_files
from mailbot.rules import read_rule_files
from test_referrals import outlook_referral

BXL = ZoneInfo("Europe/Brussels")
DAY = date(2026, 11, 23)
IDS = ("federale-ombudsman", "de-lijn-klantendienst", "de-lijn:")


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 23, hour, minute, tzinfo=BXL).astimezone(timezone.utc)


@pytest.fixture
def day(make_app, db_url):
    """A day with a complaint that Cc's the Federal Ombudsman, one that Cc's De Lijn's complaints
    desk, a referral by the Federal Ombudsman of a citizen without an address, and De Lijn's file
    number of a case quoted by a stranger."""
    app = make_app(db_url=db_url)
    now = [_at(9)]

    def feed(when: datetime, raw: bytes) -> None:
        now[0] = when
        app.intake.clock = app.intake.matching.clock = lambda: now[0]
        process_files(app.intake, [raw])

    feed(_at(9), complaint(sender="jan.peeters@example.be", name="Jan Peeters",
                           extra_headers="Cc: Federale Ombudsman <contact@federaalombudsman.be>\r\n"))
    feed(_at(10), complaint(sender="piet.janssens@example.be", name="Piet Janssens", subject="Bus reed niet",
                            body="Geachte,\n\nDe bus van De Lijn reed drie dagen niet. Ik schreef de klantendienst "
                                 "al, zonder antwoord.\n\nPiet Janssens",
                            extra_headers="Cc: klantendienst@delijn.be\r\n"))
    feed(_at(11), outlook_referral(van="Marc Willems"))
    feed(_at(12), complaint(sender="sofie.maes@example.be", name="Sofie Maes", subject="Abonnement De Lijn",
                            body="Geachte,\n\nDe Lijn betaalt mijn abonnement niet terug, hun dossier DL-1234567 "
                                 "blijft liggen.\n\nSofie Maes"))
    feed(_at(14), complaint(sender="iemand.anders@example.be", name="Iemand Anders", subject="Terugbetaling",
                            body="Goedendag,\n\nHoe staat het met dossier DL-1234567 bij De Lijn? Ik vraag het "
                                 "voor mijn buurvrouw.\n\nGroeten"))
    return app


def _items(data, key):
    return [i for s in data.decisions + data.info if s.key == key for _, group in s.groups for i in group]


def _rendered(app):
    with app.sessions() as session:
        data = collect(session, app.settings, DAY)
    return data, digest.render(app.settings, data)


def test_services_are_named_by_their_dutch_name_not_their_id(day):
    data, rendered = _rendered(day)
    [multi] = _items(data, "multi_addressed")
    assert "Federale Ombudsman" in multi.extras
    [cc] = _items(data, "agency_in_cc")
    assert "Klantendienst De Lijn" in cc.extras
    for body in (rendered.text, rendered.html):
        assert "Federale Ombudsman: doorgestuurde klacht van Marc Willems zonder e-mailadres" in body
        assert "dossiernummer van de dienst DL-1234567 (De Lijn) vermeld door een afzender" in body
        for recorded_id in IDS:
            assert recorded_id not in body, recorded_id


def test_an_id_the_rules_no_longer_know_is_shown_as_recorded(day):
    with day.sessions.begin() as session:
        case = session.execute(select(Case).where(Case.citizen_email == "jan.peeters@example.be")).scalar_one()
        case.also_sent_to = ["federale-ombudsman", "opgeheven-dienst"]
    data, rendered = _rendered(day)
    [multi] = _items(data, "multi_addressed")
    assert "Federale Ombudsman" in multi.extras and "opgeheven-dienst" in multi.extras


def test_names_come_from_the_rules_the_robot_has_in_force(day):
    """The set in force the robot saved in the database wins over the files on disk (edited,
    not yet reloaded, or invalid)."""
    files = read_rule_files(day.settings.rules_dir)
    services = (files["services.yaml"] or b"").replace(b"name: Klantendienst De Lijn",
                                                        b"name: Klantendienst van De Lijn (in werking)")
    with day.sessions.begin() as session:
        save_last_good(session, "in-force", {**files, "services.yaml": services}, day.renderer.templates)
    data, _ = _rendered(day)
    [cc] = _items(data, "agency_in_cc")
    assert "Klantendienst van De Lijn (in werking)" in cc.extras
