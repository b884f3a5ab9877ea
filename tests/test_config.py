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
