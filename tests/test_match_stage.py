"""The matching stage against a real database: indexed candidate queries, remembered keys,
`rules explain` output and the 0002 migration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy import event, select

from conftest import complaint
from mailbot import candidates
from mailbot.db import Case, CaseKey, Message, Outbox
from mailbot.explain import explain
from mailbot.import_sources import Item
from mailbot.importer import ImportClock, Importer
from mailbot.match_model import Policy
from mailbot.migrate import alembic_config
from mailbot.model import Classification, Kind
from mailbot.parse import parse_message
from mailbot.pipeline import process_files

BODY = ("Geachte,\n\nIn maart heb ik een studietoelage aangevraagd bij de afdeling Studietoelagen. Na "
        "vier maanden heb ik nog steeds geen beslissing. Mijn dossier bij De Lijn heeft nummer "
        "DL-1234567 maar dat staat hier los van.\n\nSofie Maes")


def test_remember_keeps_identity_text_agencies_and_band_keys(make_app, db_url):
    """A new case remembers the citizen's name key, its normalised text, the agencies it is
    about, the people in Cc, the agency file number and its MinHash band keys."""
    app = make_app(db_url=db_url)
    process_files(app.intake, [complaint(name="Sofie Maes", sender="sofie@example.be", body=BODY,
                                         extra_headers="Cc: partner@example.be\r\n")])
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        keys = session.execute(select(CaseKey.kind, CaseKey.value)).all()
    assert case.citizen_name_key == "maes sofie" and "studietoelage" in case.match_text
    assert "de-lijn" in case.match_agencies and case.co_recipients == ["partner@example.be"]
    assert ("agency_ref", "de-lijn:DL-1234567") in keys
    assert sum(1 for kind, _ in keys if kind == "lsh") == 5


def test_near_duplicates_compared_are_those_sharing_most_bands(make_app, db_url, monkeypatch):
    """A campaign (one text sent by many citizens): matching reads the `SIMILAR_LIMIT` cases
    sharing the most MinHash bands with the mail, most bands first, newest first among
    equals; a newer case sharing fewer bands waits its turn, a case outside the window never comes."""
    monkeypatch.setattr(candidates, "SIMILAR_LIMIT", 5)
    app = make_app(db_url=db_url)
    now = datetime.now(timezone.utc)
    bands = [f"{band}:campaign" for band in range(5)]
    with app.sessions.begin() as session:
        def case(number: int, keys: list[str], days_ago: int = 2) -> int:
            created = now - timedelta(days=days_ago) + timedelta(minutes=number)  # newer by number
            row = Case(ref=f"VO-2026-{number:06d}", citizen_email=f"c{number}@example.be", created_at=created)
            session.add(row)
            session.flush()
            session.add_all(CaseKey(kind="lsh", value=key, case_id=row.id, created_at=created) for key in keys)
            return row.id

        old = case(1, bands, days_ago=400)
        campaign = [case(2 + i, bands) for i in range(8)]
        partial = case(100, bands[:3])
        one_band = case(101, bands[:1])
    since = now - timedelta(days=30)
    with app.sessions() as session:
        every_band = [c.case_id for c in candidates.similar(session, bands, since, now)]
        three_bands = [c.case_id for c in candidates.similar(session, bands[:3], since, now)]
    assert every_band == sorted(campaign, reverse=True)[:5]
    assert three_bands == [partial, *sorted(campaign, reverse=True)[:4]]
    assert old not in every_band + three_bands and one_band not in every_band + three_bands


def test_identity_candidates_are_open_cases_of_any_age_and_recent_ones_created_by_the_mail(make_app, db_url):
    """The address's cases: open ones whatever their age and recent ones, none created after
    `until` (an imported old mail); the name key's from another address: recent ones only."""
    app = make_app(db_url=db_url)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    with app.sessions.begin() as session:
        def case(number: int, email: str, days_ago: int, status: str = "open") -> int:
            row = Case(ref=f"VO-2026-{number:06d}", citizen_email=email, citizen_name_key="maes sofie",
                       status=status, created_at=now - timedelta(days=days_ago))
            session.add(row)
            session.flush()
            return row.id

        open_old, open_recent = case(1, "sofie@example.be", 400), case(2, "sofie@example.be", 10)
        case(3, "sofie@example.be", 400, "closed")
        case(4, "sofie@example.be", -40)  # opened well after the mail
        closed_recent, named_old = case(5, "sofie@example.be", 20, "closed"), case(6, "sofie@work.example", 400)
        named_recent = case(7, "sofie@work.example", 5)
    with app.sessions() as session:
        found = candidates.by_identity(session, "sofie@example.be", "maes sofie", now - timedelta(days=365),
                                       Policy().latest_case(now))
    assert [c.case_id for c in found] == [open_recent, closed_recent, open_old, named_recent]
    assert named_old not in [c.case_id for c in found]


def test_old_mailbox_imported_after_live_mail_keeps_to_its_own_cases(make_app, db_url):
    """The office imports its 2019 mailbox after the robot went live: the citizen's 2019
    complaint and its reply make a 2019 case of their own, not follow-ups of her live case."""
    clock = ImportClock()
    app = make_app(db_url=db_url, clock=clock)
    body = BODY.replace(" Mijn dossier bij De Lijn heeft nummer DL-1234567 maar dat staat hier los van.", "")
    live = complaint(name="Sofie Maes", sender="sofie@example.be", subject="Studietoelage nog niet beslist",
                     body=body)
    process_files(app.intake, [live])

    def old(subject: str, body: str, date: str) -> bytes:
        return complaint(name="Sofie Maes", sender="sofie@example.be", subject=subject, body=body).replace(
            b"Mon, 23 Nov 2026 10:00:00 +0100", date.encode())

    archive = [old("Studietoelage nog niet beslist", body.replace("maart", "april"),
                   "Mon, 15 Jul 2019 10:00:00 +0200"),
               old("Re: Studietoelage nog niet beslist", "Bedankt, het is intussen opgelost.\n\nSofie",
                   "Mon, 9 Sep 2019 10:00:00 +0200")]
    Importer(app, clock).run("import:2019", 1, iter(Item(i + 1, raw, i, len(raw)) for i, raw in enumerate(archive)))
    with app.sessions() as session:
        live_case, old_case = session.execute(select(Case).order_by(Case.created_at.desc())).scalars().all()
        by_case = session.execute(select(Message.case_id, Message.received_at).where(Message.direction == "in")
                                  .order_by(Message.received_at)).all()
    assert old_case.created_at.year == 2019 and live_case.flags == []
    assert [case_id for case_id, _ in by_case] == [old_case.id, old_case.id, live_case.id]


def test_candidate_queries_never_scan_a_table(make_app, sqlite_url):
    """Every query matching issues is answered through an index (SQLite's query plan has no full SCAN)."""
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint(sender="sofie@example.be", body=BODY)])
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = app.intake.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", capture)
    try:
        mail = parse_message(complaint(name="Sofie Maes", sender="sofie@example.be",
                                       subject="Re: VO-2026-000001 studietoelage",
                                       body=BODY.replace("maart", "april"),
                                       extra_headers="In-Reply-To: <nope@example.be>\r\n"))
        with app.sessions() as session:
            app.intake.matching.match(session, mail, Classification(Kind.NEW_COMPLAINT, "nl"))
            mail = parse_message(complaint(sender="other@example.org", body=BODY))
            app.intake.matching.match(session, mail, Classification(Kind.NEW_COMPLAINT, "nl"))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            details = " | ".join(row[-1] for row in plan)
            # "SCAN anon_1" reads the LIMITed rows of a subquery (a co-routine), not a table.
            scans = [d for d in details.split(" | ") if d.startswith("SCAN") and "INDEX" not in d
                     and not d.startswith("SCAN anon_")]
            assert not scans, f"{statement}\n{details}"


def test_explain_lists_the_candidates_considered(make_app, db_url):
    """`rules explain` on a resubmission names the case it would join and every candidate with its score."""
    app = make_app(db_url=db_url)
    body = BODY.replace(" Mijn dossier bij De Lijn heeft nummer DL-1234567 maar dat staat hier los van.", "")
    process_files(app.intake, [complaint(sender="sofie@example.be", body=body)])
    result = explain(app, complaint(sender="sofie@example.be", subject="Nogmaals mijn klacht",
                                    body=body.replace("Geachte", "Beste")))
    assert result["decision"]["joins_case"] == result["match"]["ref"] is not None
    assert result["match"]["evidence"][0]["method"] == "fuzzy"
    assert result["match_considered"][0]["detail"].startswith(result["match"]["ref"])


def test_migration_0002_downgrades_and_upgrades(sqlite_url):
    """Migration 0002 can be undone and redone: columns and table disappear and come back."""
    from alembic import command

    from mailbot.db_engine import make_engine

    engine = make_engine(sqlite_url)
    config = alembic_config(sqlite_url)
    command.upgrade(config, "0002")
    command.downgrade(config, "0001")
    inspector = sa.inspect(engine)
    assert "case_key" not in inspector.get_table_names()
    assert "match_text" not in {c["name"] for c in inspector.get_columns("case")}
    command.upgrade(config, "0002")
    inspector = sa.inspect(engine)
    assert "case_key" in inspector.get_table_names()
    assert "ix_case_name_key_created" in {i["name"] for i in inspector.get_indexes("case")}
    engine.dispose()


def test_follow_up_with_the_case_subject_joins_and_is_not_reminded_again(make_app, db_url):
    """A "Re: <subject>" follow-up from the citizen, with new text and the agency in Cc again,
    joins their only open case: one case, one acknowledgment, one agency-in-Cc reminder."""
    app = make_app(db_url=db_url)
    cc = "Cc: VDAB Klantendienst <klantendienst@vdab.be>\r\n"
    first = complaint(name="Piet Claes", sender="piet.claes@skynet.be", subject="Klacht over VDAB uitkering",
                      extra_headers=cc, body="Geachte,\n\nIk heb al een klacht ingediend bij de VDAB over de "
                      "stopzetting van mijn begeleiding, maar ik kreeg geen antwoord. Ik zet de VDAB in kopie "
                      "zodat zij ook op de hoogte zijn.\n\nPiet Claes")
    again = complaint(name="Piet Claes", sender="piet.claes@skynet.be", subject="Re: Klacht over VDAB uitkering",
                      extra_headers=cc, body="Beste,\n\nNog een aanvulling: ik heb gisteren een nieuwe brief "
                      "gekregen van de VDAB. Ik zet hen opnieuw in kopie.\n\nPiet Claes")
    outcomes = process_files(app.intake, [first, again])
    assert outcomes[1].case_ref == outcomes[0].case_ref and outcomes[1].kind == "follow_up"
    with app.sessions() as session:
        templates = session.execute(sa.select(Outbox.template)).scalars().all()
        assert session.execute(sa.select(sa.func.count()).select_from(Case)).scalar_one() == 1
    assert sorted(templates) == ["ack_investigation", "agency_in_cc"]
