"""config.yaml loading: validation errors name the key; secrets stay secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import REPO, base_config
from mailbot.config import load_settings, settings_from_mapping
from mailbot.errors import ConfigError

ENV = {"MAILBOT_IMAP_HOST": "imap.example.org", "MAILBOT_IMAP_PASSWORD": "s3cret-imap",
       "MAILBOT_SMTP_HOST": "smtp.example.org", "MAILBOT_SMTP_PASSWORD": "s3cret-smtp"}


def test_shipped_config_is_valid_with_its_environment():
    """The example config.yaml loads when its variables are set, with the office's values."""
    settings = load_settings(REPO / "config.yaml", environ=ENV)
    assert settings.imap.host == "imap.example.org"
    assert settings.smtp.from_address == "klachten@vlaamseombudsdienst.be"
    assert settings.office.reference_prefix == "VO"
    assert settings.schedule.timezone == "Europe/Brussels"
    assert settings.rules_dir == REPO / "rules"


def test_missing_environment_variable_is_named():
    """A `${VAR}` that is not set is an error naming the key and the variable."""
    env = dict(ENV)
    del env["MAILBOT_IMAP_PASSWORD"]
    with pytest.raises(ConfigError, match=r"imap\.password: environment variable MAILBOT_IMAP_PASSWORD is not set"):
        load_settings(REPO / "config.yaml", environ=env)


def test_unknown_key_is_an_error_with_its_path():
    """A typo in a nested key is refused and the full key path is named."""
    config = base_config()
    config["imap"]["proccessed_folder"] = "X"
    with pytest.raises(ConfigError, match=r"imap\.proccessed_folder: unknown key"):
        settings_from_mapping(config)


def test_wrong_type_is_an_error_with_its_path():
    """A port that is not a number is refused with the key path."""
    config = base_config()
    config["smtp"]["port"] = "twenty-five"
    with pytest.raises(ConfigError, match=r"smtp\.port: "):
        settings_from_mapping(config)


def test_invalid_security_and_timezone_are_refused():
    """Only none/starttls/ssl are accepted, and the time zone must exist."""
    config = base_config(imap={"security": "tls"}, schedule={"timezone": "Europe/Brusel"})
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(config)
    assert "imap.security" in str(err.value) and "schedule.timezone" in str(err.value)


def test_office_website_must_be_a_web_address():
    """Replies link to office.website: without a scheme the HTML part would hold a broken link."""
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(base_config(office={"website": "www.vlaamseombudsdienst.be"}))
    assert "office.website" in str(err.value) and "https://" in str(err.value)
    assert settings_from_mapping(base_config(office={"website": ""})).office.website == ""


def test_password_never_in_repr_or_logs(caplog):
    """The password does not appear in repr, str, or a logged settings object."""
    settings = settings_from_mapping(base_config(imap={"password": "hunter2-very-secret"}))
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %r %s", settings, settings.imap)
    assert "hunter2-very-secret" not in repr(settings)
    assert "hunter2-very-secret" not in str(settings.imap)
    assert "hunter2-very-secret" not in caplog.text
    assert settings.imap.password.get_secret_value() == "hunter2-very-secret"


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    """Broken YAML is reported with file and line."""
    path = tmp_path / "config.yaml"
    path.write_text("imap:\n  host: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: YAML syntax error"):
        load_settings(path)


def test_relative_paths_follow_the_config_file(tmp_path: Path):
    """rules_dir and a relative SQLite path are taken from the config file's folder."""
    import yaml

    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    config = base_config(db_url="sqlite:///data/mb.sqlite3")
    config["rules_dir"] = "myrules"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    assert settings.rules_dir == path.parent / "myrules"
    assert settings.database.url == f"sqlite:///{path.parent / 'data' / 'mb.sqlite3'}"


def test_ca_files_follow_the_config_file_and_must_exist(tmp_path: Path, monkeypatch):
    """The CA bundles of imap, every mailbox and smtp are taken from config.yaml's folder, not
    the current one (the README says so; a poll from another folder failed with a traceback),
    and a missing one is named when the config is read."""
    import yaml

    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "ca.pem").write_text("not read here")
    second = {**base_config()["imap"], "username": "plaintes@example.org", "ca_file": "ca.pem"}
    config = base_config(imap={"ca_file": "ca.pem"}, smtp={"ca_file": "ca.pem"})
    config["mailboxes"] = [config["imap"], second]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(folder / "config.yaml")
    found = {settings.imap.ca_file, settings.smtp.ca_file, *(box.ca_file for box in settings.mailboxes)}
    assert found == {folder / "ca.pem"}
    assert settings.imap == settings.mailboxes[0]
    (folder / "ca.pem").unlink()
    with pytest.raises(ConfigError, match=rf"smtp\.ca_file: file not found: {folder / 'ca.pem'}"):
        load_settings(folder / "config.yaml")


def test_a_typo_in_the_first_of_several_mailboxes_is_told_once():
    """`imap` is copied from mailboxes[0] when absent: its problems are not told a second time
    under a key the operator never wrote."""
    config = base_config()
    first = dict(config.pop("imap"), pasword="x")
    config["mailboxes"] = [first]
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(config)
    assert str(caught.value) == "invalid configuration: mailboxes.0.pasword: unknown key"


# -- ${VAR} inside database.url ---------------------------------------------------------------

URL_TEMPLATE = "postgresql://mailbot:${MAILBOT_DB_PASSWORD}@db.internal:5432/mailbot"
NASTY_PASSWORDS = ["Xk9@Secr3tTail", "a:b/c%41d#e?f g", "p@ss:w/o%rd#1", "50%+€é'\"@@"]


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_password_in_database_url_is_encoded_and_round_trips(password):
    """A password with @ : / % # expanded into the URL's user:password part is percent-encoded:
    the URL keeps its host and database, and SQLAlchemy reads the password back exactly."""
    from sqlalchemy.engine import make_url

    settings = settings_from_mapping(base_config(db_url=URL_TEMPLATE), environ={"MAILBOT_DB_PASSWORD": password})
    url = make_url(settings.database.url)
    assert (url.username, url.password) == ("mailbot", password)
    assert (url.host, url.port, url.database) == ("db.internal", 5432, "mailbot")


def test_user_is_encoded_and_host_is_not():
    """A user name from the environment is encoded too (Azure's user@server); `${VAR}` after
    the template's @ (host, database) is substituted as it is."""
    from sqlalchemy.engine import make_url

    env = {"DB_USER": "mailbot@pg-prod", "DB_PASSWORD": "s@me", "DB_HOST": "db.internal:6432"}
    config = base_config(db_url="postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST}/mailbot")
    url = make_url(settings_from_mapping(config, environ=env).database.url)
    assert (url.username, url.password, url.host, url.port) == ("mailbot@pg-prod", "s@me", "db.internal", 6432)


def test_whole_url_from_one_variable_is_taken_as_it_is():
    """`${DATABASE_URL}` holding a complete URL, already encoded by whoever wrote it, is not touched."""
    value = "postgresql://mailbot:p%40ss@db.internal:5432/mailbot?sslmode=require"
    config = base_config(db_url="${DATABASE_URL}")
    assert settings_from_mapping(config, environ={"DATABASE_URL": value}).database.url == value


def test_a_broken_database_url_is_refused_without_showing_it():
    """An unparsable database URL is a configuration error naming the key, never quoting the URL."""
    config = base_config(db_url="${DATABASE_URL}")
    with pytest.raises(ConfigError, match=r"database\.url: .*not a database URL") as err:
        settings_from_mapping(config, environ={"DATABASE_URL": "mailbot:hunter2-db@db.internal/mailbot"})
    assert "hunter2" not in str(err.value)


def test_database_url_is_not_in_repr():
    """The database URL (it may hold the password) stays out of the settings' repr."""
    settings = settings_from_mapping(base_config(db_url=URL_TEMPLATE), environ={"MAILBOT_DB_PASSWORD": "hunter2-db"})
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(settings.database)


@pytest.fixture
def pg_role():
    """A PostgreSQL login role whose password is full of URL characters; dropped afterwards."""
    import uuid

    import sqlalchemy as sa
    from servers import PG_URL, unavailable

    name, password = f"mb_{uuid.uuid4().hex[:10]}", "Xk9@Se:cr/3t%25#Tail?x"
    try:
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
    except sa.exc.OperationalError as err:
        unavailable(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {type(err).__name__}")
    yield name, password
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
    admin.dispose()


@pytest.mark.postgres
def test_database_password_with_url_characters_connects(pg_role):
    """mailbot connects to PostgreSQL as a role whose password has @ : / % # ? in it, through
    `postgresql://${USER}:${PASSWORD}@127.0.0.1:5432/test` (the server trusts loopback, so the
    URL is also parsed back: SQLAlchemy hands psycopg exactly that password)."""
    import sqlalchemy as sa
    from mailbot.db_engine import make_engine

    name, password = pg_role
    config = base_config(db_url="postgresql://${DB_USER}:${DB_PASSWORD}@127.0.0.1:5432/test")
    settings = settings_from_mapping(config, environ={"DB_USER": name, "DB_PASSWORD": password})
    engine = make_engine(settings.database.url)
    try:
        assert engine.url.password == password and engine.url.host == "127.0.0.1"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == name
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_database_error_does_not_show_the_password():
    """With a password holding @ and the server down, the connection error names the host
    and port, and no piece of the password (before, the text after @ became the "host")."""
    import sqlalchemy as sa
    from mailbot.db_engine import make_engine
    from servers import free_port

    config = base_config(db_url=f"postgresql://mailbot:${{DB_PASSWORD}}@127.0.0.1:{free_port()}/test")
    settings = settings_from_mapping(config, environ={"DB_PASSWORD": "Xk9@Secr3tTail"})
    engine = make_engine(settings.database.url)
    try:
        with pytest.raises(sa.exc.OperationalError) as err:
            engine.connect()
    finally:
        engine.dispose()
    assert "Secr3t" not in str(err.value) and "Xk9" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


def test_digest_recipient_with_a_display_name_is_refused_at_load():
    """`Onthaal <onthaal@…>` in digest.recipients is named at start-up, with the bare address
    to write instead; otherwise the morning's digest would fail for everyone."""
    config = base_config(digest={"recipients": ["Onthaal <onthaal@vlaamseombudsdienst.be>",
                                                "directie@vlaamseombudsdienst.be"]})
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(config)
    assert str(caught.value) == (
        "invalid configuration: digest.recipients.0: not a plain e-mail address: "
        "'Onthaal <onthaal@vlaamseombudsdienst.be>' (write the address alone: onthaal@vlaamseombudsdienst.be)")


def test_digest_team_recipients_are_checked_too():
    """Every address of every team in digest.teams is checked; plain addresses load."""
    config = base_config(digest={"recipients": ["onthaal@vlaamseombudsdienst.be"],
                                 "teams": {"wonen": ["wonen@vlaamseombudsdienst.be", "team wonen"]}})
    with pytest.raises(ConfigError, match=r"digest\.teams\.wonen\.1: not a plain e-mail address: 'team wonen'$"):
        settings_from_mapping(config)
    config["digest"]["teams"]["wonen"] = ["wonen@vlaamseombudsdienst.be"]
    assert settings_from_mapping(config).digest.teams == {"wonen": ["wonen@vlaamseombudsdienst.be"]}


@pytest.mark.parametrize(("value", "told"), [
    ("Klachten <klachten@vlaamseombudsdienst.be>",
     "'Klachten <klachten@vlaamseombudsdienst.be>' (write the address alone: klachten@vlaamseombudsdienst.be, "
     "and the name in smtp.from_name: Klachten)"),
    ("<klachten@vlaamseombudsdienst.be>",
     "'<klachten@vlaamseombudsdienst.be>' (write the address alone: klachten@vlaamseombudsdienst.be)"),
    ("klachten", "'klachten'"),
])
def test_smtp_from_address_must_be_the_address_alone(value, told):
    """smtp.from_address is every reply's From and its Message-ID's domain: a display name in
    it is refused at load, saying that the name has its own key (smtp.from_name)."""
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(base_config(smtp={"from_address": value}))
    assert str(caught.value) == f"invalid configuration: smtp.from_address: not a plain e-mail address: {told}"
    plain = settings_from_mapping(base_config(smtp={"from_address": " klachten@vlaamseombudsdienst.be "}))
    assert plain.smtp.from_address == "klachten@vlaamseombudsdienst.be"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///mailbot.sqlite3", "sqlite+pysqlite:///x.sqlite3",
                                 "postgresql://u:p@db/mailbot", "postgres://u:p@db/mailbot",
                                 "postgresql+psycopg://u:p@db/mailbot"])
def test_the_databases_mailbot_installs_drivers_for_are_accepted(url):
    """SQLite and PostgreSQL through psycopg (the driver pyproject.toml installs) load."""
    assert settings_from_mapping(base_config(db_url=url)).database.url == url


def test_another_database_or_driver_is_refused_naming_the_key():
    """MySQL or PostgreSQL through a driver mailbot does not install is refused at load, in
    one message naming database.url and never quoting the URL (it may hold the password)."""
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(base_config(db_url="postgresql+asyncpg://mailbot:Xk9-secret@db/mailbot"))
    assert str(caught.value).startswith("invalid configuration: database.url: unsupported database "
                                        "'postgresql+asyncpg': mailbot runs on SQLite (sqlite:///file) or "
                                        "PostgreSQL with psycopg")
    assert "Xk9-secret" not in str(caught.value)
