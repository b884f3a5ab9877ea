"""IMAP over STARTTLS and implicit TLS against a private Dovecot with its own CA."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from certs import certificates
from conftest import complaint
from helpers import append_all, folder_count
from mailbot.errors import FetchError
from mailbot.fetch import ImapMailbox
from servers import start_dovecot, unavailable

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def tls_dovecot():
    folder = Path(tempfile.mkdtemp(prefix="mailbot-certs-"))
    ca, cert, key = certificates(folder)
    try:
        server = start_dovecot(tls=(cert, key))
    except Exception as err:  # noqa: BLE001 - reported as skip/fail
        unavailable(f"cannot start a private Dovecot with TLS: {err}")
    yield server, ca
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_poll_over_tls(make_app, tls_dovecot, smtp_sink, sqlite_url, security):
    """With the server's CA configured, a poll over STARTTLS or implicit TLS processes the mail."""
    server, ca = tls_dovecot
    server.reset()
    port = server.port if security == "starttls" else server.ssl_port
    app = make_app(imap={"port": port, "security": security, "ca_file": str(ca),
                         "username": server.username, "password": server.password},
                   smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    append_all(server, [complaint()])
    assert app.poll_once().processed == 1
    assert folder_count(server, "Processed") == 1


def test_untrusted_certificate_is_a_clear_error(make_app, tls_dovecot, sqlite_url):
    """Without the CA the connection is refused with a FetchError naming the certificate problem."""
    server, _ca = tls_dovecot
    app = make_app(imap={"port": server.ssl_port, "security": "ssl",
                         "username": server.username, "password": server.password}, db_url=sqlite_url)
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        ImapMailbox(app.settings.imap)
