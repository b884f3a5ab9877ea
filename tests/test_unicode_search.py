"""Staff's and the erasure's look-ups of people: case-insensitive beyond A-Z on SQLite as on
PostgreSQL ("ÉLISE DUPONT" is found by "élise", "Müller" by "MÜLLER"), a whole address still
through its index, and the duplicates of a case (`case show`) through an index of their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import event, inspect, select

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Base, Case, Outbox
from mailbot.migrate import alembic_config
from mailbot.privacy import erase
from mailbot.views import load_detail

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
ELISE = "élise.dupont@exemple.be"


@pytest.fixture
def app(make_app, db_url):
    return make_app(db_url=db_url)


@pytest.fixture
def config(tmp_path: Path, app) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=str(app.settings.database.url))))
    return path


def _case(app, number: int, **fields: Any) -> str:
    values = {"ref": f"VO-2026-{number:06d}", "citizen_email": f"burger{number}@example.be",
              "citizen_name": f"Burger {number}", "created_at": T0, "updated_at": T0, **fields}
    with app.sessions.begin() as session:
        session.add(Case(**values))
    return values["ref"]


def _listed(config: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "case", "list", *args], obj={},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return sorted(line.split()[0] for line in result.stdout.splitlines()[1:])


def _plan(app, run: Callable[[], object], marker: str) -> str:
    """The database's plan for the statement `run` issues that contains `marker`."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if marker in statement:
            seen.append((statement, parameters))

    event.listen(app.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(app.engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    with app.engine.connect() as conn:
        if app.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            return "\n".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a handful of rows: show what an index allows
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all())


def test_case_list_finds_names_and_addresses_in_any_case_beyond_a_to_z(app, config):
    """`--citizen` and `--investigator` fold É, Ü, Ç, Ø like A-Z: staff type a name as they
    hear it, the citizen wrote it in capitals (before, SQLite's lower() missed them). A whole
    address, in any case, still goes to the index on the stored (lower-cased) address."""
    from mailbot import store

    elise = _case(app, 1, citizen_email=ELISE, citizen_name="ÉLISE DUPONT")
    muller = _case(app, 2, citizen_name="Hans Müller")
    celik = _case(app, 3, citizen_email="zoë.çelik@exemple.be", citizen_name="",
                  investigator_email="søren@vlaamseombudsdienst.example", investigator_name="Søren Ørsted")
    _case(app, 4, citizen_name="Elise Dupond")  # no accent: another person

    assert _listed(config, "--citizen", "élise") == [elise]
    assert _listed(config, "--citizen", "MÜLLER") == [muller]
    assert _listed(config, "--citizen", "ZOË.ÇEL") == [celik]  # a part of the address
    assert _listed(config, "--investigator", "ØRSTED") == [celik]
    assert _listed(config, "--citizen", ELISE.upper()) == [elise]  # the whole address

    def look_up() -> None:
        with app.sessions() as session:
            assert [c.ref for c in store.list_cases(session, citizen=ELISE.upper())[0]] == [elise]

    plan = _plan(app, look_up, "citizen_email")
    assert "ix_case_citizen" in plan, plan


def test_an_erasure_finds_its_address_stored_with_accented_capitals(app):
    """A GDPR erasure for élise.dupont@… finds the contact address kept as "Élise.Dupont@…"
    and the SMTP error that quotes it as "ÉLISE.DUPONT@…" (before: both missed on SQLite)."""
    ref = _case(app, 1, contact_email="Élise.Dupont@Exemple.be")
    with app.sessions.begin() as session:
        session.add(Outbox(template="ack", recipient="forward@example.org", message_id="<o1@vo>", mime=b"x",
                           status="failed", last_error=f"550 5.1.1 <{ELISE.upper()}>: mailbox unavailable"))

    found = erase(app.sessions, ELISE)

    assert found.refs == [ref] and found.outbox == 1
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
        error = session.execute(select(Outbox.last_error)).scalar_one()
    assert case.contact_email is None and "DUPONT" not in (error or "").upper()


def test_the_duplicates_of_a_case_are_found_through_an_index(app):
    """`case show` lists a case's duplicates by `duplicate_of_id`: an index (migration 0009),
    not a read of every case; the model and the migrations agree, and 0009 can be undone."""
    _case(app, 1)
    with app.sessions.begin() as session:
        first = session.execute(select(Case)).scalar_one()
        session.add(Case(ref="VO-2026-000002", citizen_email="burger2@example.be", duplicate_of_id=first.id))

    def show() -> None:
        with app.sessions() as session:
            assert load_detail(session, session.get(Case, first.id)).duplicates == ["VO-2026-000002"]

    plan = _plan(app, show, "duplicate_of_id =")
    assert "ix_case_duplicate_of" in plan, plan
    with app.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []

    url = app.engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url), "0008")
    assert "ix_case_duplicate_of" not in {i["name"] for i in inspect(app.engine).get_indexes("case")}
    command.upgrade(alembic_config(url), "head")
    indexes = {i["name"]: i["column_names"] for i in inspect(app.engine).get_indexes("case")}
    assert indexes["ix_case_duplicate_of"] == ["duplicate_of_id"]
