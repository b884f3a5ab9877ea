"""config.yaml → frozen, validated settings.

`${VAR}` anywhere in a string value is replaced from the environment before
validation; a missing variable is an error that names the key path. Inside the
user:password part of a URL (`postgresql://mailbot:${MAILBOT_DB_PASSWORD}@host/db`)
the value is percent-encoded, so a password with `@`, `:`, `/`, `%` or `#` stays
a password; a whole URL from one variable (`${DATABASE_URL}`) is taken as it is.
Unknown keys and wrong types are errors that name the key path too. Passwords
and OAuth2 client secrets and refresh tokens are `SecretStr`, so they never show up
in `repr`, logs or error messages; the database URL, which may hold one, is left out
of `repr` and never quoted in an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator,
    model_validator,
)

from .errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# scheme://userinfo@ — the userinfo runs to the template's last "@" before the path.
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)@")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Security = Literal["none", "starttls", "ssl"]


def _plain_address(value: str, *, name_key: str = "") -> str:
    """A digest recipient is a bare address: one with a display name ("Onthaal <onthaal@…>")
    would be refused when the digest is sent, every morning, not at start-up. `name_key`:
    the key where a display name belongs instead, named in the error."""
    from email.utils import parseaddr

    from pydantic_core import PydanticCustomError

    from .sanitize import HeaderError, check_address, is_valid_address

    try:
        check_address(value)
    except HeaderError:
        name, bare = parseaddr(value)
        hint = ""
        if bare != value.strip() and is_valid_address(bare):
            hint = f" (write the address alone: {bare}"
            hint += f", and the name in {name_key}: {name})" if name_key and name else ")"
        raise PydanticCustomError("address", "not a plain e-mail address: {value}{hint}",
                                  {"value": repr(value), "hint": hint}) from None
    return value.strip()


def _office_address(value: str) -> str:
    """smtp.from_address: every reply's From and the domain of its Message-ID. With a
    display name in it, each reply failed while being queued and the complaint was
    quarantined as unreadable; the name has its own key."""
    return _plain_address(value, name_key="smtp.from_name")


Recipient = Annotated[str, AfterValidator(_plain_address)]
OfficeAddress = Annotated[str, AfterValidator(_office_address)]


def _custom_error(kind: str, message: str) -> Exception:
    """A validation error told as `key: message` (without pydantic's "Value error, ")."""
    from pydantic_core import PydanticCustomError

    return PydanticCustomError(kind, message)


# The token endpoint receives the client secret: TLS, except on this machine (a local proxy, tests).
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OAuth2Settings(_Section):
    """Sign-in with an OAuth 2.0 access token (SASL XOAUTH2) instead of a password, as
    Microsoft 365 and Google Workspace require; the token comes from `token_url`."""

    token_url: str
    grant_type: Literal["client_credentials", "refresh_token"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    scope: str = ""  # space-separated; may be left out with a refresh token (it keeps its scopes)
    refresh_token: SecretStr | None = None

    @field_validator("token_url")
    @classmethod
    def _a_safe_endpoint(cls, value: str) -> str:
        from urllib.parse import urlsplit

        url = urlsplit(value)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise _custom_error("token_url", "not a web address (https://…/token)")
        if url.scheme == "http" and url.hostname not in _LOOPBACK_HOSTS:
            raise _custom_error("token_url", "must be https:// (the client secret is sent to it)")
        return value

    @model_validator(mode="after")
    def _complete_grant(self) -> OAuth2Settings:
        missing = [key for key in self._needed() if not getattr(self, key)]
        if missing:
            raise _custom_error("oauth2_grant", f"grant_type {self.grant_type} needs {' and '.join(missing)}")
        if self.grant_type == "client_credentials" and self.refresh_token is not None:
            raise _custom_error("oauth2_grant", "refresh_token is only used with grant_type refresh_token")
        return self

    def _needed(self) -> tuple[str, ...]:
        if self.grant_type == "client_credentials":
            return ("client_secret", "scope")  # app-only access: the app's secret, a `…/.default` scope
        return ("refresh_token",)  # a public client (M365 delegated) has no secret


def _one_way_to_sign_in(password: SecretStr | None, oauth2: OAuth2Settings | None, *, required: bool) -> None:
    if password is not None and oauth2 is not None:
        raise _custom_error("sign_in", "give password or oauth2, not both")
    if required and password is None and oauth2 is None:
        raise _custom_error("sign_in", "password or oauth2 is required")


class ImapSettings(_Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Security = "ssl"
    username: str
    password: SecretStr | None = None  # required unless `oauth2` is given
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    sent_folder: str | None = None
    idle: bool = False
    batch_size: int = Field(100, ge=1, le=10_000)
    ca_file: Path | None = None  # extra CA bundle for a server with a private certificate
    timeout_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _signs_in(self) -> ImapSettings:
        _one_way_to_sign_in(self.password, self.oauth2, required=True)
        return self


class SmtpSettings(_Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Security = "starttls"
    username: str | None = None  # with oauth2: the mailbox signed in to
    password: SecretStr | None = None
    oauth2: OAuth2Settings | None = None
    from_address: OfficeAddress
    from_name: str = ""  # the display name in From (from_address is the address alone)
    timeout_seconds: float = Field(30.0, gt=0)
    concurrency: int = Field(4, ge=1, le=64)
    # Extra CA certificates (PEM) to trust, for a relay with a private CA; None: the system's.
    ca_file: Path | None = None
    # How long a sender owns the outbox rows it claimed; after a crash they are sent
    # again once it runs out. A batch stops starting new messages well before it ends.
    claim_lease_seconds: float = Field(300.0, ge=10)
    # Retry delay after a transient failure: base * 2^(attempt-1), capped, with jitter.
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_max_seconds: float = Field(7200.0, gt=0)

    @model_validator(mode="after")
    def _signs_in(self) -> SmtpSettings:
        _one_way_to_sign_in(self.password, self.oauth2, required=False)  # a relay may need no login
        if self.oauth2 is not None and not self.username:
            raise _custom_error("sign_in", "oauth2 needs username (the mailbox signed in to)")
        return self


# The databases mailbot runs on, with the drivers it installs (pyproject.toml): `postgresql://`
# and `postgres://` get psycopg (`db_engine.make_engine`). Any other would fail at the first connect,
# with a traceback about a missing module.
SUPPORTED_DATABASES = frozenset({"sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg"})


class DatabaseSettings(_Section):
    # May hold a password: kept out of repr, and errors never quote it.
    url: str = Field("sqlite:///mailbot.sqlite3", repr=False)

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str) -> str:
        from pydantic_core import PydanticCustomError
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise PydanticCustomError("database_url", "not a database URL (dialect://user:password@host:port/"
                                      "database or sqlite:///file)") from None
        if url.drivername not in SUPPORTED_DATABASES:
            raise PydanticCustomError(
                "database_url", "unsupported database {name}: mailbot runs on SQLite (sqlite:///file) or "
                "PostgreSQL with psycopg (postgresql://user:password@host:port/database)",
                {"name": repr(url.drivername)})
        return value


class OfficeSettings(_Section):
    name: str
    reference_prefix: str = Field("VO", pattern=r"^[A-Z]{1,8}$")
    phone: str = ""
    address: str = ""
    website: str = ""
    # Mail domains of the office's own staff (`staff`): their mail is never a citizen's. Only
    # what the office owns: a city's shared domain, or a public provider's, holds citizens too.
    staff_domains: list[str] = []

    @field_validator("staff_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower().removeprefix("@") for v in values]
        bad = [v for v in cleaned if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", v)]
        if bad:
            raise ValueError(f"not a mail domain: {bad[0]!r} (write it as vlaamseombudsdienst.be)")
        return cleaned

    @field_validator("website")
    @classmethod
    def _a_link(cls, value: str) -> str:
        # Replies link to it: "www.example.be" would be a broken relative link in the HTML part.
        if value and not value.lower().startswith(("https://", "http://")):
            raise ValueError(f"not a web address: {value!r} (write it with https://)")
        return value


class ScheduleSettings(_Section):
    poll_interval_seconds: int = Field(60, ge=1)
    outbox_interval_seconds: int = Field(30, ge=1)
    digest_time: time = time(7, 30)
    timezone: str = "Europe/Brussels"
    # Added for `mailbot run` (issue 7); every key has a default.
    retention_time: time = time(3, 15)  # daily retention job, local time
    idle_reissue_seconds: int = Field(25 * 60, ge=1, le=29 * 60)  # RFC 2177: re-issue IDLE < 29 min
    reconnect_max_seconds: int = Field(300, ge=1)  # backoff cap when the IMAP server drops us
    lease_seconds: int = Field(60, ge=2)  # a poller's claim on its mailbox; renewed every third
    # `mailbot status --check` fails when a mailbox's last poll is older than this;
    # None: 3 poll intervals (idle: one re-issue period) plus a minute.
    max_poll_age_seconds: int | None = Field(None, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}") from err
        return value


class DigestSettings(_Section):
    recipients: list[Recipient] = []
    # Per team: who receives that team's digest (only its cases), on top of `recipients`.
    teams: dict[str, list[Recipient]] = {}
    first_reaction_working_days: int = Field(3, ge=1, le=60)
    # Office closing days besides the Belgian public holidays (e.g. 11 July, bridge days).
    extra_holidays: list[date] = []
    chart_days: int = Field(30, ge=1, le=90)
    # An open case with no activity for this many days is listed on the day it crosses it, and
    # again every as many days while it stays idle; 0: not listed. At least a week: each
    # multiple back to the oldest open case is one range of the digest's query.
    idle_after_days: int = Field(90, ge=0, le=3650)

    @field_validator("idle_after_days")
    @classmethod
    def _off_or_a_week(cls, value: int) -> int:
        if 0 < value < MIN_IDLE_DAYS:
            raise ValueError(f"0 (off) or at least {MIN_IDLE_DAYS} days")
        return value


MIN_IDLE_DAYS = 7


class RetentionSettings(_Section):
    closed_case_days: int = Field(5 * 365, ge=1)
    quarantine_days: int = Field(90, ge=1)
    # Sent digests (staff mail with personal data) are deleted from the outbox after this.
    digest_days: int = Field(30, ge=1)
    # Personal data that belongs to no case (automatic mail, silenced mail, replies to it such
    # as the undeliverable notice, their events, address_status rows) is purged after this.
    caseless_days: int = Field(90, ge=1)
    # The mail copies of what is purged are deleted from the IMAP folders too (processed,
    # quarantine and sent folder of every mailbox; `folder_retention`). Off: only the database.
    imap_folders: bool = True


class LimitSettings(_Section):
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    # Longer reading of one mail is cut off and the mail quarantined; 0: no watchdog.
    parse_timeout_seconds: float = Field(60.0, ge=0)
    replies_per_case_per_day: int = Field(3, ge=1)
    replies_per_address_per_day: int = Field(10, ge=1)
    send_attempts: int = Field(8, ge=1)


class MatchingSettings(_Section):
    # Defaults measured on tests/data/matching (python tests/test_match_quality.py):
    # at 70 precision 1.00 / recall 1.00; every resubmission scores ≥ 55.
    fuzzy_threshold: float = Field(70.0, ge=0, le=100)
    triage_threshold: float = Field(55.0, ge=0, le=100)
    duplicate_window_days: int = Field(30, ge=1)
    recent_case_days: int = Field(365, ge=1)


class Settings(_Section):
    imap: ImapSettings
    smtp: SmtpSettings
    database: DatabaseSettings = DatabaseSettings()
    office: OfficeSettings
    schedule: ScheduleSettings = ScheduleSettings()
    digest: DigestSettings = DigestSettings()
    rules_dir: Path = Path("rules")
    templates_dir: Path = Path("templates")
    retention: RetentionSettings = RetentionSettings()
    limits: LimitSettings = LimitSettings()
    matching: MatchingSettings = MatchingSettings()
    languages: list[Literal["nl", "fr", "en", "de"]] = ["nl", "fr", "en", "de"]
    # Web-form robots whose mails carry the citizen in Reply-To.
    webform_senders: list[str] = []
    # Several mailboxes (e.g. klachten@ and plaintes@), each an `imap` block. When given,
    # `imap` may be left out and defaults to the first; absent: `imap` is the only mailbox.
    mailboxes: list[ImapSettings] = []

    @model_validator(mode="before")
    @classmethod
    def _imap_from_mailboxes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "imap" not in data and data.get("mailboxes"):
            return {**data, "imap": data["mailboxes"][0]}
        return data

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def all_mailboxes(self) -> list[ImapSettings]:
        """Every mailbox to poll: `mailboxes`, else the single `imap`."""
        return list(self.mailboxes) or [self.imap]


def expand_env(value: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        userinfo = _URL_USERINFO.match(value)
        userinfo_end = userinfo.end(1) if userinfo else -1

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            if match.end() <= userinfo_end:  # user:password of a URL
                return quote(environ[name], safe="")
            return environ[name]

        return _ENV_REF.sub(substitute, value)
    return value


def _describe(err: ValidationError, *, imap_given: bool = True) -> str:
    lines = []
    for problem in err.errors():
        if not imap_given and problem["loc"][:1] == ("imap",):
            continue  # `imap` was copied from mailboxes[0]: its problems are told there
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def settings_from_mapping(data: Mapping[str, Any], *, base_dir: Path | None = None,
                          environ: Mapping[str, str] | None = None) -> Settings:
    """Validate an already parsed config; relative paths are taken from `base_dir`."""
    expanded = expand_env(dict(data), os.environ if environ is None else environ)
    try:
        settings = Settings.model_validate(expanded)
    except ValidationError as err:
        raise ConfigError(f"invalid configuration: {_describe(err, imap_given='imap' in expanded)}") from None
    if base_dir is not None:
        settings = _anchor_paths(settings, base_dir)
    return settings


def _anchor_paths(settings: Settings, base_dir: Path) -> Settings:
    updates: dict[str, Any] = {}
    for key in ("rules_dir", "templates_dir"):
        path: Path = getattr(settings, key)
        if not path.is_absolute():
            updates[key] = base_dir / path
    if settings.smtp.ca_file is not None:
        updates["smtp"] = settings.smtp.model_copy(update={"ca_file": _existing(base_dir, settings.smtp.ca_file,
                                                                                   "smtp.ca_file")})
    updates["imap"] = _anchor_ca(settings.imap, base_dir, "imap")
    updates["mailboxes"] = [_anchor_ca(box, base_dir, f"mailboxes.{i}")
                            for i, box in enumerate(settings.mailboxes)]
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        updates["database"] = DatabaseSettings(url=f"sqlite:///{(base_dir / url[len(prefix):]).resolve()}")
    return settings.model_copy(update=updates)


def _anchor_ca(imap: ImapSettings, base_dir: Path, where: str) -> ImapSettings:
    if imap.ca_file is None:
        return imap
    return imap.model_copy(update={"ca_file": _existing(base_dir, imap.ca_file, f"{where}.ca_file")})


def _existing(base_dir: Path, path: Path, key: str) -> Path:
    """`path` from config.yaml's folder; a missing file is told at start, not at the first poll."""
    anchored = path if path.is_absolute() else (base_dir / path).resolve()
    if not anchored.is_file():
        raise ConfigError(f"{key}: file not found: {anchored}")
    return anchored


def load_settings(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read configuration {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys")
    return settings_from_mapping(data, base_dir=path.resolve().parent, environ=environ)


def default_config_path(explicit: str | None) -> Path:
    """--config, else $MAILBOT_CONFIG, else ./config.yaml."""
    return Path(explicit or os.environ.get("MAILBOT_CONFIG") or "config.yaml")
