"""Real servers for the tests: a private Dovecot, an aiosmtpd sink, PostgreSQL schemas.

Under CI=true a server that cannot start fails the test run; elsewhere the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required test server unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_greeting(port: int, prefix: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(200).startswith(prefix):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {prefix!r} greeting on port {port}")
        time.sleep(0.05)


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_fsync = never
# The process titles say which sessions are in IDLE (Dovecot.idling).
verbose_proctitle = yes
first_valid_uid = 0
first_valid_gid = 0
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
# What a variant adds (OAuthDovecot): read when the file exists, its settings win.
!include_try {root}/extra.conf
"""


def mail_user_ids() -> tuple[int, int]:
    """Dovecot refuses uid 0 for mail: as root, store the mail as `nobody`."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@dataclass
class Dovecot:
    """A private Dovecot instance with one user; stopped by `stop()`."""

    root: Path
    port: int
    username: str = "klachten@example.org"
    password: str = "test-password"
    pid: int | None = None
    # With a certificate: STARTTLS on `port` and implicit TLS on `ssl_port`.
    tls: tuple[Path, Path] | None = None  # (certificate, key)
    ssl_port: int = 0
    instance: str = field(default_factory=lambda: f"mailbot-test-{uuid.uuid4().hex[:8]}")

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(binary).exists():
            raise FileNotFoundError("dovecot is not installed (Debian package dovecot-imapd)")
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        (self.root / "passwd").write_text(f"{self.username}:{{PLAIN}}{self.password}\n")
        os.chmod(self.root / "passwd", 0o644)
        conf = self.root / "dovecot.conf"
        uid, gid = mail_user_ids()
        os.chown(self.root / "home", uid, gid)
        ssl_settings = "ssl = no"
        if self.tls is not None:
            ssl_settings = f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
        conf.write_text(DOVECOT_CONF.format(root=self.root, port=self.port, instance=self.instance,
                                            uid=uid, gid=gid, ssl_settings=ssl_settings,
                                            ssl_port=self.ssl_port))
        with open(os.devnull, "wb") as devnull:
            subprocess.run([binary, "-c", str(conf)], check=True, stdout=devnull, stderr=devnull)
        wait_for_greeting(self.port, b"* OK")
        self.pid = int((self.root / "run" / "master.pid").read_text().strip())

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None

    def discard(self) -> None:
        """Stop it and remove its folder (on /dev/shm: memory, until the machine restarts)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        conf = self.root / "dovecot.conf"
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        with open(os.devnull, "wb") as devnull:
            subprocess.run([binary, "-c", str(conf)], check=True, stdout=devnull, stderr=devnull)
        wait_for_greeting(self.port, b"* OK")
        self.pid = int((self.root / "run" / "master.pid").read_text().strip())

    def idling(self) -> int:
        """How many of this server's IMAP sessions are in IDLE now: the server has answered
        the command, so it reports new mail from then on."""
        prefix, count = f"dovecot-{self.instance}/imap [".encode(), 0
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                title = cmdline.read_bytes()
            except OSError:  # the process ended meanwhile
                continue
            if title.startswith(prefix) and b" IDLE]" in title:
                count += 1
        return count

    def client(self):
        import imapclient

        client = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def reset(self) -> None:
        """Empty every folder of the user between tests."""
        home = self.root / "home" / self.username
        if home.exists():
            shutil.rmtree(home)


def start_dovecot(tls: tuple[Path, Path] | None = None) -> Dovecot:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-", dir=base))
    server = Dovecot(root=root, port=free_port(), tls=tls, ssl_port=free_port() if tls else 0)
    server.start()
    return server


@dataclass
class SmtpSink:
    """An aiosmtpd server on loopback that keeps every message it accepts."""

    port: int
    messages: list = field(default_factory=list)
    controller: object = None
    # Scripted failures: a list of SMTP reply strings for the next DATA commands,
    # e.g. ["451 4.7.1 try later"]; consumed one per message.
    failures: list[str] = field(default_factory=list)

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                if sink.failures:
                    return sink.failures.pop(0)
                sink.messages.append(envelope)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def parsed(self):
        import email
        from email import policy

        return [email.message_from_bytes(e.original_content or e.content, policy=policy.default)
                for e in self.messages]


PG_URL = os.environ.get("MAILBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_target() -> str:
    """The PostgreSQL the tests use, for messages: MAILBOT_TEST_PG or the default, password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).render_as_string(hide_password=True)


def pg_schema_url() -> tuple[str, str]:
    """A fresh schema in the test database and a URL whose search_path points at it."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


class SlowSmtpHandler:
    """aiosmtpd handler answering EHLO, MAIL, RCPT and the end of DATA after `delay` seconds
    (the greeting and 354 at once), and QUIT after `quit_delay`; keeps what it received."""

    def __init__(self, delay: float, quit_delay: float = 0.0) -> None:
        self.delay, self.quit_delay = delay, quit_delay
        self.received: list[bytes] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        await asyncio.sleep(self.delay)
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(self.delay)
        self.received.append(envelope.content)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(self.quit_delay)
        return "221 Bye"


@dataclass
class TokenServer:
    """An OAuth 2.0 authorization server on loopback: the token endpoint (`/token`, client
    credentials and refresh token grants, checking the client id, secret, grant and scope, as
    Microsoft's and Google's do) and token introspection (`/introspect`, RFC 7662) for the mail
    servers. Tokens are random; `revoke` makes the servers refuse one it issued."""

    client_id: str = "mailbot-test-client"
    client_secret: str = "test-client-secret"
    refresh_token: str = "test-refresh-token"
    scope: str = "https://outlook.office365.com/.default"
    username: str = "klachten@example.org"  # the mailbox the tokens are good for
    expires_in: int = 3600
    rotate_refresh_tokens: bool = False  # answer with a new refresh token, as Microsoft does
    port: int = 0
    requests: list = field(default_factory=list)  # the form of each token request
    issued: list = field(default_factory=list)  # access tokens, in order
    revoked: set = field(default_factory=set)
    _server: object = None

    def start(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                answer = {"/token": authority.grant, "/introspect": authority.introspect}.get(self.path)
                status, body = answer(form) if answer else (404, {"error": "not_found"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """A new client for the next test (its own token cache key), nothing issued yet."""
        self.client_id = f"mailbot-test-{uuid.uuid4().hex[:8]}"
        self.username = "klachten@example.org"
        self.requests.clear()
        self.issued.clear()
        self.revoked.clear()
        self.expires_in, self.rotate_refresh_tokens = 3600, False

    def oauth2_config(self, grant_type: str = "client_credentials", **overrides) -> dict:
        """The `oauth2:` block of config.yaml for this server's client."""
        config = {"token_url": f"{self.url}/token", "grant_type": grant_type, "client_id": self.client_id,
                  "client_secret": self.client_secret, "scope": self.scope}
        if grant_type == "refresh_token":
            config["refresh_token"] = self.refresh_token
        return {**config, **overrides}

    def grant(self, form: dict) -> tuple[int, dict]:
        self.requests.append(form)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0f1e"}
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials" and form.get("scope") != self.scope:
            return 400, {"error": "invalid_scope", "error_description": "The scope is not valid."}
        refresh_tokens = {self.refresh_token} | {f"refresh-{t}" for t in self.issued}
        if grant_type == "refresh_token" and form.get("refresh_token") not in refresh_tokens:
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        if grant_type not in ("client_credentials", "refresh_token"):
            return 400, {"error": "unsupported_grant_type"}
        token = f"tok-{uuid.uuid4().hex}"
        self.issued.append(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        if grant_type == "refresh_token" and self.rotate_refresh_tokens:
            body["refresh_token"] = f"refresh-{token}"
        return 200, body

    def accepts(self, token: str, username: str | None) -> bool:
        return token in self.issued and token not in self.revoked and username == self.username

    def introspect(self, form: dict) -> tuple[int, dict]:
        token = form.get("token", "")
        if not self.accepts(token, self.username):
            return 200, {"active": False}
        return 200, {"active": True, "email": self.username, "client_id": self.client_id}


OAUTH2_DOVECOT_CONF = """\
auth_mechanisms = plain login xoauth2 oauthbearer
# A refused token is answered at once (default: after 2 s). Nor does the auth penalty delay the
# next sign-ins from 127.0.0.1 (2 s, 4 s … 15 s): its anvil socket is closed to the auth process,
# which then turns it off (login_trusted_networks does not, in 2.3).
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
"""

# Dovecot 2.3's oauth2 passdb: the token is POSTed to introspection_url, which must say
# active: true and name the user signing in.
DOVECOT_OAUTH2_PASSDB = """\
introspection_url = {url}
introspection_mode = post
force_introspection = yes
username_attribute = email
active_attribute = active
active_value = true
"""


@dataclass
class OAuthDovecot(Dovecot):
    """A private Dovecot that also signs in with XOAUTH2 and OAUTHBEARER, each token checked by
    the `introspection_url` (TokenServer); the password login of `client()` still works."""

    introspection_url: str = ""

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "extra.conf").write_text(OAUTH2_DOVECOT_CONF.format(root=self.root))
        (self.root / "oauth2.conf").write_text(DOVECOT_OAUTH2_PASSDB.format(url=self.introspection_url))
        os.chmod(self.root / "oauth2.conf", 0o644)  # read by Dovecot's auth process
        super().start()


def start_oauth_dovecot(introspection_url: str) -> OAuthDovecot:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-", dir=base))
    server = OAuthDovecot(root=root, port=free_port(), introspection_url=introspection_url)
    server.start()
    return server


@dataclass
class OAuthSmtpSink(SmtpSink):
    """An SmtpSink that takes mail only after AUTH XOAUTH2 with a token `tokens` accepts; a
    refused token gets the 334 challenge with a JSON error, then 535, as Microsoft 365 and
    Gmail answer. `signed_in` records each AUTH: the user on success, None on a refusal."""

    tokens: TokenServer | None = None
    signed_in: list = field(default_factory=list)

    def start(self) -> None:
        import base64

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import MISSING, AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                sink.messages.append(envelope)
                return "250 OK"

            async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd API
                blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
                if blob is MISSING:
                    return AuthResult(success=False, handled=True)
                fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
                user, token = fields.get("user"), fields.get("auth", "").removeprefix("Bearer ")
                if sink.tokens is not None and sink.tokens.accepts(token, user):
                    sink.signed_in.append(user)
                    return AuthResult(success=True, auth_data=user)
                sink.signed_in.append(None)
                error = {"status": "401", "schemes": "bearer", "scope": "https://outlook.office.com/SMTP.Send"}
                if await server.challenge_auth(json.dumps(error)) is MISSING:
                    return AuthResult(success=False, handled=True)
                return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, auth_required=True,
                                     auth_require_tls=False, auth_exclude_mechanism=["LOGIN", "PLAIN"])
        self.controller.start()
