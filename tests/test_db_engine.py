"""A failing statement's text, which reaches the log in a traceback, names no mail content.

(SQLite's `secure_delete`, set by the engine, is already on in Debian's build: no test here
could tell the pragma from the build's default.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from mailbot.db import Message
from mailbot.db_engine import describe_error, make_engine
from mailbot.migrate import upgrade

PERSONAL = "Quirijn Bogaert, Ieperstraat 5, tel 0475 11 22 33"


def test_a_failing_statement_names_no_parameter(db_url: str) -> None:
    """Before, SQLAlchemy's text carried `[parameters: (..., 'Quirijn Bogaert', ...)]`, and the
    poll loop logs the traceback of a message that failed: the whole mail went to the journal."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with pytest.raises(StatementError) as caught, engine.begin() as conn:
            conn.execute(sa.insert(Message.__table__).values(direction="in", kind="new_complaint", message_id="x",
                                                             sha256="s", size=1, from_name=PERSONAL,
                                                             case_id=987654321))  # no such case: refused
        text = str(caught.value)
        assert "Bogaert" not in text and "0475" not in text, text
        assert "Bogaert" not in describe_error(caught.value)
    finally:
        engine.dispose()

