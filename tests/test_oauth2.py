"""OAuth 2.0 sign-in (SASL XOAUTH2) for IMAP and SMTP, against real servers: a Dovecot with its
oauth2 passdb and an aiosmtpd server, both checking each token with a token server on loopback
that is also the token endpoint (tests/servers.py: TokenServer, OAuthDovecot, OAuthSmtpSink)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import select

from conftest import REPO, base_config, complaint, serving
from helpers import append_all, folder_count
from mailbot.cli import cli
from mailbot.config import OAuth2Settings, settings_from_mapping
from mailbot.db import Outbox
from mailbot.errors import ConfigError, FetchError, SendError
from mailbot.fetch import ImapMailbox
from mailbot.oauth2 import OAuth2Error, TokenCache, cache_key, read_grant, renew_at
from mailbot.send import Envelope, SmtpTransport
from servers import OAuthSmtpSink, TokenServer, free_port, start_oauth_dovecot, unavailable

# The test SMTP server requires AUTH on a plain loopback connection, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS", "ignore:Session.login_data")

SECRET_VAR = "MAILBOT_TEST_OAUTH2_SECRET"
OFFICE = "klachten@vlaamseombudsdienst.be"


@pytest.fixture(scope="module")
def token_server():
    server = TokenServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth_dovecot_server(token_server):
    try:
        server = start_oauth_dovecot(f"{token_server.url}/introspect")
    except Exception as err:  # noqa: BLE001 - reported as skip/fail
        unavailable(f"cannot start a private Dovecot with the oauth2 passdb: {err}")
    yield server
    server.discard()


@pytest.fixture
def authority(token_server):
    """The token server with a new client for this test, so no token cached by an earlier test
    (the process's cache lives as long as the process) is used."""
    token_server.reset()
    return token_server


@pytest.fixture
def dovecot(oauth_dovecot_server, authority):
    oauth_dovecot_server.reset()
    if oauth_dovecot_server.pid is None:
        oauth_dovecot_server.restart()
    return oauth_dovecot_server


@pytest.fixture
def smtp(authority):
    yield from serving(OAuthSmtpSink(port=free_port(), tokens=authority), "the aiosmtpd server")


def oauth_overrides(dovecot, smtp, authority, *, imap_oauth2=None, smtp_oauth2=None, **more) -> dict:
    """`base_config` overrides that sign in to both servers with tokens, no password."""
    return {"imap": {"port": dovecot.port, "username": dovecot.username, "password": None,
                     "oauth2": imap_oauth2 or authority.oauth2_config()},
            "smtp": {"port": smtp.port, "username": authority.username,
                     "oauth2": smtp_oauth2 or authority.oauth2_config()}, **more}


def oauth_config(*args, **kwargs) -> dict:
    return base_config(**oauth_overrides(*args, **kwargs))


def settings_for(*args, **kwargs):
    return settings_from_mapping(oauth_config(*args, **kwargs))


def reply(key: int = 1) -> Envelope:
    data = (f"From: {OFFICE}\r\nTo: jan@example.be\r\nSubject: Ontvangen {key}\r\n"
            f"Message-ID: <ack-{key}@vlaamseombudsdienst.be>\r\n\r\nUw klacht is ontvangen.\r\n").encode()
    return Envelope(key=key, sender=OFFICE, recipient="jan@example.be", data=data)


def sign_in_imap(settings, tokens: TokenCache) -> None:
    ImapMailbox(settings.imap, tokens=tokens).close()


def secrets_of(authority: TokenServer, *extra: str) -> list[str]:
    return [authority.client_secret, authority.refresh_token, *authority.issued, *extra]


# -- the whole robot -------------------------------------------------------------------


def _mailbot(config: Path, *args: str, secret: str) -> subprocess.CompletedProcess:
    """The real command, verbose (debug logging of mailbot, imapclient and the rest), the
    client secret in the environment as an administrator puts it there."""
    return subprocess.run([sys.executable, "-m", "mailbot.cli", "-v", "--config", str(config), *args],
                          env={**os.environ, SECRET_VAR: secret}, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _write_config(tmp_path: Path, config: dict) -> Path:
    for section in ("imap", "smtp"):
        config[section]["oauth2"]["client_secret"] = f"${{{SECRET_VAR}}}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.dovecot
def test_poll_once_reads_and_acknowledges_with_tokens(tmp_path, dovecot, smtp, authority, db_url):
    """`mailbot poll --once` signs in to IMAP and SMTP with one token from the endpoint, reads
    the complaint and sends the acknowledgment; neither the secret nor the token is printed,
    even with debug logging."""
    config = _write_config(tmp_path, oauth_config(dovecot, smtp, authority, db_url=db_url))
    assert _mailbot(config, "db", "upgrade", secret=authority.client_secret).returncode == 0
    append_all(dovecot, [complaint()])

    polled = _mailbot(config, "poll", "--once", secret=authority.client_secret)

    assert polled.returncode == 0, polled.stderr[-3000:]
    assert "processed 1" in polled.stdout and "replies sent 1" in polled.stdout
    assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "Processed") == 1
    assert [m.rcpt_tos for m in smtp.messages] == [["jan.peeters@example.be"]]
    assert smtp.signed_in == [authority.username]
    assert len(authority.requests) == 1  # one token for the IMAP and the SMTP sign-in
    assert authority.requests[0]["grant_type"] == "client_credentials"
    output = polled.stdout + polled.stderr
    assert "OAuth2 token for client" in output  # the debug log does show the sign-in …
    assert not [s for s in secrets_of(authority) if s in output]  # … but none of its secrets


@pytest.mark.dovecot
@pytest.mark.parametrize("failure", ["wrong_secret", "endpoint_down"])
def test_imap_sign_in_failure_is_reported_and_the_mail_stays(tmp_path, dovecot, smtp, authority, db_url, failure):
    """A wrong client secret or a token endpoint that does not answer: `poll --once` fails with
    one line naming the endpoint's error (no traceback, no secret), `mailbot status` lists it,
    and the complaint stays in the inbox for the next poll."""
    config = oauth_config(dovecot, smtp, authority, db_url=db_url)
    if failure == "endpoint_down":
        config["imap"]["oauth2"]["token_url"] = f"http://127.0.0.1:{free_port()}/token"
    secret = "wrong-secret-0000" if failure == "wrong_secret" else authority.client_secret
    path = _write_config(tmp_path, config)
    assert _mailbot(path, "db", "upgrade", secret=secret).returncode == 0
    append_all(dovecot, [complaint()])

    polled = _mailbot(path, "poll", "--once", secret=secret)

    assert polled.returncode == 2
    [line] = [x for x in polled.stderr.splitlines() if x.startswith("mailbot: ")]
    assert line.startswith(f"mailbot: IMAP sign-in as {dovecot.username} on 127.0.0.1 not possible: "
                           "OAuth2 token endpoint 127.0.0.1:")
    expected = ("refused: invalid_client: AADSTS7000215: Invalid client secret provided. Trace ID: 0f1e (HTTP 401)"
                if failure == "wrong_secret" else "unreachable: [Errno 111] Connection refused")
    assert line.endswith(expected)
    assert "Traceback" not in polled.stderr
    assert not [s for s in secrets_of(authority, secret) if s in polled.stdout + polled.stderr]
    assert folder_count(dovecot, "INBOX") == 1 and not smtp.messages
    status = CliRunner().invoke(cli, ["--config", str(path), "status", "--json"], obj={},
                                env={SECRET_VAR: secret})
    [error] = json.loads(status.output)["last_errors"]
    assert error["type"] == "poll_failed" and expected[:40] in error["error"]


@pytest.mark.dovecot
@pytest.mark.parametrize("failure", ["wrong_secret", "endpoint_down"])
def test_smtp_sign_in_failure_keeps_the_reply_waiting(make_app, dovecot, smtp, authority, db_url, failure, caplog):
    """The SMTP side cannot get a token: the complaint is recorded and leaves the inbox, its
    acknowledgment waits in the outbox (no attempt charged, the endpoint's error shown by
    `mailbot status`), and goes out once the configuration is put right."""
    good = authority.oauth2_config()
    broken = ({**good, "client_secret": "wrong-secret-0000"} if failure == "wrong_secret"
              else {**good, "token_url": f"http://127.0.0.1:{free_port()}/token"})
    app = make_app(**oauth_overrides(dovecot, smtp, authority, db_url=db_url, smtp_oauth2=broken))
    append_all(dovecot, [complaint()])

    with caplog.at_level("DEBUG"):
        assert app.poll_once().processed == 1
        sent = app.send_outbox()

    assert sent.sent == 0 and not smtp.messages and folder_count(dovecot, "INBOX") == 0
    with app.sessions() as session:
        [row] = session.execute(select(Outbox)).scalars()
        assert row.status == "pending" and row.attempts == 0
    error = app.status()["sending"]["last_error"]
    assert error.startswith(f"SMTP sign-in as {authority.username} on 127.0.0.1 not possible: OAuth2 token endpoint")
    assert ("invalid_client: AADSTS7000215" in error) if failure == "wrong_secret" else ("unreachable" in error)
    assert not [s for s in secrets_of(authority, "wrong-secret-0000") if s in caplog.text + error]

    fixed = make_app(**oauth_overrides(dovecot, smtp, authority, db_url=db_url))
    assert fixed.send_outbox(now=datetime.now(timezone.utc) + timedelta(hours=3)).sent == 1  # its retry
    assert len(smtp.messages) == 1 and smtp.signed_in == [authority.username]


# -- tokens: shared, renewed, replaced when refused ---------------------------------------


@pytest.mark.dovecot
def test_one_token_serves_every_sign_in(dovecot, smtp, authority):
    """Several IMAP sign-ins and four parallel SMTP connections ask the endpoint once."""
    settings = settings_for(dovecot, smtp, authority)
    tokens = TokenCache()
    for _ in range(3):
        sign_in_imap(settings, tokens)
    parallel = settings.smtp.model_copy(update={"concurrency": 4})
    results = SmtpTransport(parallel, tokens=tokens).send_many([reply(k) for k in range(1, 9)])

    assert all(r.ok for r in results) and len(smtp.messages) == 8
    assert len(smtp.signed_in) == 4 and set(smtp.signed_in) == {authority.username}
    assert len(authority.requests) == 1


@pytest.mark.dovecot
def test_a_token_is_renewed_shortly_before_it_expires(dovecot, smtp, authority):
    """A one-hour token is used for 55 minutes; after that the next sign-in gets a new one,
    which both servers take."""
    settings = settings_for(dovecot, smtp, authority)
    now = [1000.0]
    tokens = TokenCache(clock=lambda: now[0])
    sign_in_imap(settings, tokens)
    now[0] += 3299
    sign_in_imap(settings, tokens)
    assert len(authority.requests) == 1

    now[0] += 1
    sign_in_imap(settings, tokens)
    [result] = SmtpTransport(settings.smtp, tokens=tokens).send_many([reply()])

    assert result.ok and len(authority.requests) == 2 and len(set(authority.issued)) == 2
    assert smtp.signed_in == [authority.username]


@pytest.mark.dovecot
def test_a_refused_token_is_replaced_once_and_the_sign_in_retried(dovecot, smtp, authority):
    """A token the servers refuse while we hold it as fresh (revoked) is replaced by a new one
    from the endpoint, and the sign-in goes through: IMAP and SMTP (after its 334 challenge)."""
    settings = settings_for(dovecot, smtp, authority)
    tokens = TokenCache()
    sign_in_imap(settings, tokens)
    authority.revoked.add(authority.issued[-1])

    sign_in_imap(settings, tokens)
    assert len(authority.requests) == 2

    authority.revoked.add(authority.issued[-1])
    [result] = SmtpTransport(settings.smtp, tokens=tokens).send_many([reply()])
    assert result.ok and len(smtp.messages) == 1
    assert smtp.signed_in == [None, authority.username]
    assert len(authority.requests) == 3


@pytest.mark.dovecot
def test_a_token_refused_again_is_a_clear_error_without_a_loop(dovecot, smtp, authority):
    """When the servers refuse the new token as well (the app may not use this mailbox), the
    sign-in fails after one replacement, saying what to check, and the reply is not charged."""
    settings = settings_for(dovecot, smtp, authority)
    authority.username = "someone-else@example.org"  # the tokens are good for another mailbox

    with pytest.raises(FetchError) as refused:
        sign_in_imap(settings, TokenCache())
    assert str(refused.value).startswith(f"IMAP sign-in (XOAUTH2) as {dovecot.username} on 127.0.0.1 refused a "
                                         "new token: [AUTHENTICATIONFAILED] Authentication failed.")
    assert "IMAP.AccessAsApp" in str(refused.value)
    assert len(authority.requests) == 2

    [result] = SmtpTransport(settings.smtp, tokens=TokenCache()).send_many([reply()])
    assert isinstance(result.error, SendError) and not result.reached
    assert str(result.error).startswith(f"SMTP sign-in (XOAUTH2) as {dovecot.username} on 127.0.0.1 refused a new "
                                        "token: 535 5.7.3 Authentication unsuccessful (status 401, schemes bearer")
    assert len(authority.requests) == 4 and smtp.signed_in == [None, None] and not smtp.messages


@pytest.mark.dovecot
def test_refresh_token_grant_uses_the_newest_refresh_token(dovecot, smtp, authority):
    """With a refresh token (Google Workspace, delegated Microsoft 365) the sign-in works the
    same; a refresh token the endpoint rotates (Microsoft) is used for the next request."""
    authority.rotate_refresh_tokens = True
    block = authority.oauth2_config("refresh_token", scope="")
    settings = settings_for(dovecot, smtp, authority, imap_oauth2=block, smtp_oauth2=block)
    now = [0.0]
    tokens = TokenCache(clock=lambda: now[0])
    sign_in_imap(settings, tokens)
    now[0] += 3600
    [result] = SmtpTransport(settings.smtp, tokens=tokens).send_many([reply()])

    assert result.ok
    assert [r["grant_type"] for r in authority.requests] == ["refresh_token", "refresh_token"]
    assert [r["refresh_token"] for r in authority.requests] == [authority.refresh_token,
                                                                f"refresh-{authority.issued[0]}"]
    assert "scope" not in authority.requests[0]


# -- configuration -----------------------------------------------------------------------


def _oauth2(**overrides) -> dict:
    block = {"token_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
             "grant_type": "client_credentials", "client_id": "6f1c4d2e", "client_secret": "${OAUTH_SECRET}",
             "scope": "https://outlook.office365.com/.default"}
    return {k: v for k, v in {**block, **overrides}.items() if v is not None}


def _config_error(imap: dict | None = None, smtp: dict | None = None) -> str:
    config = base_config(imap=imap or {}, smtp=smtp or {})
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(config, environ={"OAUTH_SECRET": "s3cret-value"})
    return str(err.value)


def test_an_oauth2_block_replaces_the_password_and_keeps_its_secret():
    """With `oauth2:` no password is needed; the client secret comes from `${VAR}` and is
    never shown in repr."""
    config = base_config(imap={"oauth2": _oauth2()}, smtp={"username": OFFICE, "oauth2": _oauth2()})
    del config["imap"]["password"]
    settings = settings_from_mapping(config, environ={"OAUTH_SECRET": "s3cret-value"})
    assert settings.imap.password is None and settings.imap.oauth2 is not None
    assert settings.imap.oauth2.client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert cache_key(settings.imap.oauth2) == cache_key(settings.smtp.oauth2)  # one token for both


@pytest.mark.parametrize("imap, smtp, message", [
    ({"oauth2": _oauth2()}, None, "imap: give password or oauth2, not both"),
    ({"password": None}, None, "imap: password or oauth2 is required"),
    ({"password": None, "oauth2": _oauth2(client_secret=None)}, None,
     "imap.oauth2: grant_type client_credentials needs client_secret"),
    ({"password": None, "oauth2": _oauth2(scope=None)}, None, "imap.oauth2: grant_type client_credentials needs scope"),
    ({"password": None, "oauth2": _oauth2(grant_type="refresh_token")}, None,
     "imap.oauth2: grant_type refresh_token needs refresh_token"),
    ({"password": None, "oauth2": _oauth2(refresh_token="x")}, None,
     "imap.oauth2: refresh_token is only used with grant_type refresh_token"),
    ({"password": None, "oauth2": _oauth2(grant_type=None)}, None, "imap.oauth2.grant_type: Field required"),
    ({"password": None, "oauth2": _oauth2(tenant="contoso")}, None, "imap.oauth2.tenant: unknown key"),
    ({"password": None, "oauth2": _oauth2(token_url="http://login.example.org/token")}, None,
     "imap.oauth2.token_url: must be https:// (the client secret is sent to it)"),
    (None, {"oauth2": _oauth2()}, "smtp: oauth2 needs username (the mailbox signed in to)"),
    (None, {"username": OFFICE, "password": "x", "oauth2": _oauth2()}, "smtp: give password or oauth2, not both"),
])
def test_an_incomplete_oauth2_configuration_is_named(imap, smtp, message):
    """Each missing or contradictory piece of the sign-in is an error naming its key."""
    error = _config_error(imap, smtp)
    assert message in error and "s3cret-value" not in error


def test_the_readme_examples_are_valid_configurations():
    """The README's Microsoft 365 and Google Workspace examples load as they are written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```yaml\n(.*?)^```", readme, re.S | re.M) if "oauth2:" in b]
    assert len(blocks) >= 2
    for block in blocks:
        example = yaml.safe_load(block)
        config = {**base_config(), **example}
        names = set(re.findall(r"\$\{([A-Z0-9_]+)\}", block))
        settings = settings_from_mapping(config, environ={name: f"value-of-{name}" for name in names})
        assert settings.imap.oauth2 is not None and settings.smtp.oauth2 is not None
    assert "https://login.microsoftonline.com/" in readme and "https://outlook.office365.com/.default" in readme


# -- the token logic itself (no server) --------------------------------------------------


def test_tokens_are_renewed_a_tenth_of_their_life_early_at_most_five_minutes():
    assert renew_at(0, 3600) == 3300
    assert renew_at(100, 60) == 154
    assert renew_at(0, None) == 540  # no expires_in: kept 10 minutes


def test_the_endpoint_answers_are_read_or_told():
    """An error names the endpoint's `error` and `error_description` on one shortened line;
    an answer without a bearer token or without JSON is an error too."""
    refused = json.dumps({"error": "invalid_grant", "error_description": "AADSTS70008: expired.\r\n" + "x" * 500})
    with pytest.raises(OAuth2Error) as err:
        read_grant(400, refused.encode(), "login.example.org")
    text = str(err.value)
    assert text.startswith("OAuth2 token endpoint login.example.org refused: invalid_grant: AADSTS70008: expired. x")
    assert "\n" not in text and len(text) < 330 and text.endswith("… (HTTP 400)")
    with pytest.raises(OAuth2Error, match="answered HTTP 502, not with JSON"):
        read_grant(502, b"<html>Bad gateway</html>", "login.example.org")
    with pytest.raises(OAuth2Error, match="gave no bearer access token"):
        read_grant(200, b'{"token_type": "Bearer"}', "login.example.org")
    with pytest.raises(OAuth2Error, match="gave no bearer access token"):
        read_grant(200, b'{"access_token": "t", "token_type": "mac"}', "login.example.org")
    grant = read_grant(200, b'{"access_token": "tok-1", "token_type": "Bearer", "expires_in": "3599"}', "x")
    assert grant.expires_in == 3599 and "tok-1" not in repr(grant)


def test_an_endpoint_that_echoes_the_secret_does_not_get_it_into_the_message():
    settings = settings_from_mapping(base_config(smtp={"username": OFFICE, "oauth2": _oauth2()}),
                                     environ={"OAUTH_SECRET": "s3cret-value"})

    def echoing_endpoint(url: str, form: dict[str, str]) -> tuple[int, bytes]:
        return 401, json.dumps({"error": "invalid_client",
                                "error_description": f"secret {form['client_secret']} is wrong"}).encode()

    with pytest.raises(OAuth2Error) as err:
        TokenCache(post=echoing_endpoint).token(settings.smtp.oauth2)
    assert "s3cret-value" not in str(err.value) and "secret [hidden] is wrong" in str(err.value)


@pytest.mark.parametrize("blip", ["unreachable", "server error"])
def test_a_rotated_refresh_token_survives_an_endpoint_that_is_away(blip):
    """The endpoint away for a moment (or answering 503) is no reason to go back to the
    configured refresh token, which the provider may have revoked when it rotated it; a refusal
    (`invalid_grant`) is."""
    block = OAuth2Settings(token_url="https://login.example/token", grant_type="refresh_token",
                           client_id="app", refresh_token=SecretStr("R-configured"))
    sent: list[str] = []
    answers = iter([
        (200, json.dumps({"access_token": "A1", "expires_in": 60, "refresh_token": "R-rotated"}).encode()),
        blip,
        (200, json.dumps({"access_token": "A2", "expires_in": 60}).encode()),
        (400, json.dumps({"error": "invalid_grant"}).encode()),
        (200, json.dumps({"access_token": "A3", "expires_in": 60}).encode()),
    ])

    def post(url: str, form: dict[str, str]) -> tuple[int, bytes]:
        sent.append(form["refresh_token"])
        answer = next(answers)
        if answer == "unreachable":
            raise OAuth2Error("OAuth2 token endpoint login.example unreachable: timed out")
        return answer if answer != "server error" else (503, b"<html>Service Unavailable</html>")

    now = [0.0]
    tokens = TokenCache(post=post, clock=lambda: now[0])
    assert tokens.token(block) == "A1"
    for expected in (None, "A2", None, "A3"):
        now[0] += 120  # expired
        if expected is None:
            with pytest.raises(OAuth2Error):
                tokens.token(block)
        else:
            assert tokens.token(block) == expected
    assert sent == ["R-configured", "R-rotated", "R-rotated", "R-rotated", "R-configured"]
