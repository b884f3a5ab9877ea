"""Shared fixtures: real servers (Dovecot, aiosmtpd, PostgreSQL) and a configured app."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import (  # noqa: E402
    Dovecot, SlowSmtpHandler, SmtpSink, drop_pg_schema, free_port, pg_schema_url, pg_target, start_dovecot,
    unavailable,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    try:
        server = start_dovecot()
    except (OSError, TimeoutError, Exception) as err:  # noqa: BLE001 - reported as skip/fail
        unavailable(f"cannot start a private Dovecot: {err}")
    yield server
    server.discard()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Iterator[Dovecot]:
    """The private Dovecot with an empty mailbox for this test."""
    dovecot_server.reset()
    if dovecot_server.pid is None:
        dovecot_server.restart()
    yield dovecot_server


def serving(sink: Any, what: str) -> Iterator[Any]:
    """A fixture's body for an SMTP server of the tests: started (or reported unavailable), stopped after."""
    try:
        sink.start()
    except Exception as err:  # noqa: BLE001
        unavailable(f"cannot start {what}: {err}")
    yield sink
    sink.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    yield from serving(SmtpSink(port=free_port()), "the aiosmtpd sink")


@pytest.fixture
def slow_smtp(request: pytest.FixtureRequest) -> Iterator[tuple[int, SlowSmtpHandler]]:
    """(port, handler) of an aiosmtpd server answering each command after a delay: the
    test's indirect parameter, else 0.4 s."""
    from aiosmtpd.controller import Controller

    handler, port = SlowSmtpHandler(getattr(request, "param", 0.4)), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, handler
    controller.stop()


def _postgres_url() -> tuple[str, str]:
    try:
        return pg_schema_url()
    except Exception as err:  # noqa: BLE001
        unavailable(f"PostgreSQL {pg_target()} is not reachable: {err}")
        raise


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a schema of its own on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
        return
    url, schema = _postgres_url()
    yield url
    drop_pg_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    url, schema = _postgres_url()
    yield url
    drop_pg_schema(schema)


def base_config(*, imap_port: int = 1, smtp_port: int = 1, db_url: str = "sqlite://",
                **overrides: Any) -> dict[str, Any]:
    """A complete config mapping for tests, pointing at the repo's rules and templates."""
    config: dict[str, Any] = {
        "imap": {"host": "127.0.0.1", "port": imap_port, "security": "none",
                 "username": "klachten@example.org", "password": "test-password",
                 "batch_size": 50, "timeout_seconds": 10},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "from_address": "klachten@vlaamseombudsdienst.be",
                 "from_name": "Vlaamse Ombudsdienst", "timeout_seconds": 10},
        "database": {"url": db_url},
        "office": {"name": "Vlaamse Ombudsdienst", "reference_prefix": "VO",
                   "phone": "1700", "address": "Leuvenseweg 86, 1000 Brussel",
                   "website": "https://www.vlaamseombudsdienst.be"},
        "rules_dir": str(REPO / "rules"),
        "templates_dir": str(REPO / "templates"),
        # No parse watchdog: a worker process per app would double the time of the poll tests.
        # The watchdog's own tests (test_prepare, test_import) switch it on.
        "limits": {"parse_timeout_seconds": 0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.fixture
def make_app(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Build an app on a migrated database; closed after the test."""
    from mailbot.app import create_app
    from mailbot.config import settings_from_mapping
    from mailbot.db_engine import make_engine
    from mailbot.migrate import upgrade

    apps = []

    def factory(**config: Any):
        clock = config.pop("clock", None)
        settings = settings_from_mapping(base_config(**config))
        engine = make_engine(settings.database.url)
        upgrade(engine)
        app = create_app(settings, engine=engine, **({"clock": clock} if clock else {}))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


def load_eml(name: str) -> bytes:
    return (DATA / name).read_bytes()


def complaint(*, sender: str = "jan.peeters@example.be", name: str = "Jan Peeters",
              subject: str = "Klacht over mijn studietoelage", body: str | None = None,
              message_id: str | None = None, extra_headers: str = "", to: str = "klachten@vlaamseombudsdienst.be") -> bytes:
    """A plain Dutch complaint mail as bytes."""
    import uuid

    body = body or ("Geachte,\n\nIk heb in maart een studietoelage aangevraagd bij het Departement "
                    "Onderwijs en Vorming, maar na drie maanden heb ik nog steeds geen beslissing. "
                    "Ik heb hen al twee keer gemaild zonder antwoord.\n\nMet vriendelijke groeten,\n" + name)
    mid = message_id or f"<{uuid.uuid4().hex}@mail.example.be>"
    return (f"From: {name} <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: {mid}\r\n{extra_headers}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n").encode("utf-8")
