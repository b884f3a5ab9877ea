"""Channel preference: a phone number or another address the citizen gives is kept for staff."""

from __future__ import annotations

from sqlalchemy import select

from conftest import complaint
from mailbot import views
from mailbot.db import Case
from mailbot.pipeline import process_files


def test_phone_preference_is_recorded_and_shown(make_app, sqlite_url):
    """"Bel mij liefst" with a number flags prefers_phone, stores the number on the case, and
    `case show` and the digest show it to staff."""
    app = make_app(db_url=sqlite_url)
    body = ("Geachte,\n\nMijn klacht gaat over de premie die ik nooit kreeg. Ik heb hen al gemaild "
            "zonder antwoord. Bel mij liefst op 0470 12 34 56, want ik lees mijn mails zelden.\n\nAn")
    process_files(app.intake, [complaint(body=body)], quiet=True)
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    process_files(app.intake, [complaint(subject=f"Aanvulling [{ref}]",
                                         body="U mag ook schrijven naar an.tweede@example.org.")], quiet=True)
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        assert "prefers_phone" in case.flags
        assert case.contact_phone and case.contact_phone.replace(" ", "").endswith("470123456")
        assert case.contact_email == "an.tweede@example.org"
        shown = views.case_text(case)
    assert "an.tweede@example.org" in shown
    from mailbot.digest import build

    digest = build(app.sessions, app.settings, app.local_today())
    assert case.contact_phone in digest.text and case.contact_phone in digest.html
