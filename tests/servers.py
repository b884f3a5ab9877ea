"""Real servers for the tests: a private Dovecot, an aiosmtpd sink, PostgreSQL schemas.

Under CI=true a server that cannot start fails the test run; elsewhere the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import asyncio
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
