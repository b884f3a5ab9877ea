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
    server.discard()
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


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate_names_imap_ca_file(make_app, tls_dovecot, sqlite_url, security):
    """Without the CA the connection is refused with a FetchError that names the certificate
    problem and the fix (imap.ca_file), over STARTTLS as over implicit TLS: switching
    `security` is no way out."""
    server, _ca = tls_dovecot
    port = server.port if security == "starttls" else server.ssl_port
    app = make_app(imap={"port": port, "security": security,
                         "username": server.username, "password": server.password}, db_url=sqlite_url)
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
        ImapMailbox(app.settings.imap)
    assert "set imap.ca_file" in str(caught.value) and "port and imap.security" not in str(caught.value)


def test_implicit_tls_on_the_plain_port_names_the_mismatch(make_app, tls_dovecot, sqlite_url):
    """`security: ssl` on the port where the server greets in plain text (143, STARTTLS) fails
    with WRONG_VERSION_NUMBER; the error says that port and security do not match."""
    server, ca = tls_dovecot
    app = make_app(imap={"port": server.port, "security": "ssl", "ca_file": str(ca),
                         "username": server.username, "password": server.password}, db_url=sqlite_url)
    with pytest.raises(FetchError, match="WRONG_VERSION_NUMBER") as caught:
        ImapMailbox(app.settings.imap)
    assert "imap.port and imap.security do not match" in str(caught.value)
    assert "993 is ssl, 143 is starttls or none" in str(caught.value)
