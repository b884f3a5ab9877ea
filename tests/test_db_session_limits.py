"""PostgreSQL ends a transaction left idle (a paused worker must not hold the reference
counter's lock for hours), but not one that is only waiting for the parse worker: the idle
limit follows `limits.parse_timeout_seconds` when that is longer than ten minutes."""

from __future__ import annotations

import pytest

from conftest import base_config
from mailbot.app import create_app
from mailbot.config import settings_from_mapping
from mailbot.db_engine import idle_limit, make_engine
from mailbot.migrate import upgrade
from mailbot.prepare import STARTUP_GRACE, longest_wait


def idle_transaction_limit(parse_timeout_seconds: float) -> int:
    """The idle limit the app's sessions get for a parse timeout."""
    return idle_limit(longest_wait(parse_timeout_seconds))


def _shown(engine, name: str) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql(f"SHOW {name}").scalar())


def test_the_idle_limit_outlasts_the_longest_wait_for_one_mail() -> None:
    """Ten minutes while reading one mail cannot take that long (60 s, the default; 0, no
    watchdog, where only a hanging read takes that long); beyond, the parse worker's longest
    wait for one mail (three tries of the timeout plus a new worker's start-up); never more
    than PostgreSQL can take (a value out of its range would refuse every connection)."""
    assert [idle_transaction_limit(t) for t in (0, 60, 170)] == [600, 600, 600]
    for timeout in (171, 900, 3600.5):
        assert idle_transaction_limit(timeout) >= 3 * (timeout + STARTUP_GRACE)
    assert idle_transaction_limit(900) == 2790
    assert idle_transaction_limit(10**9) == idle_transaction_limit(float("inf")) == 2_147_483


@pytest.mark.postgres
def test_a_long_parse_timeout_raises_the_sessions_idle_limit(pg_url: str) -> None:
    """An administrator who lets a mail be read for 15 minutes: the app's sessions are not
    ended after 10 (before: every batch waiting on such a mail was killed by the server and
    read again at the next poll, for ever); the other limits stay."""
    settings = settings_from_mapping(base_config(db_url=pg_url, limits={"parse_timeout_seconds": 900}))
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    try:
        assert _shown(app.engine, "idle_in_transaction_session_timeout") == "2790s"
        assert _shown(app.engine, "lock_timeout") == "1min"
    finally:
        app.close()


@pytest.mark.postgres
def test_the_administrators_own_idle_limit_is_kept(pg_url: str) -> None:
    """A value set for the server, the role or in the URL wins over the derived one."""
    engine = make_engine(pg_url + "%20-cidle_in_transaction_session_timeout%3D5min",
                         longest_wait_seconds=longest_wait(900))
    try:
        assert _shown(engine, "idle_in_transaction_session_timeout") == "5min"
    finally:
        engine.dispose()
