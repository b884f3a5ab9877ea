"""The SMTP adapter: STARTTLS, implicit TLS and login against aiosmtpd, and how failures are classified."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from conftest import base_config
from mailbot.config import settings_from_mapping
from mailbot.errors import PermanentSendError, SendError
from mailbot.send import Envelope, RecipientRejected, SmtpTransport, classify_error
from servers import free_port

from certs import certificates as _certificates  # test extra `cryptography` makes them

MESSAGE = (b"From: klachten@vlaamseombudsdienst.be\r\nTo: jan@example.be\r\nSubject: test\r\n"
           b"Message-ID: <tls-1@vlaamseombudsdienst.be>\r\n\r\nHallo\r\n")


class Recorder:
    """aiosmtpd handler that keeps what it received and whether the session was TLS + logged in."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, bool, object]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        login = session.auth_data.login if session.authenticated and session.auth_data else None
        self.received.append((envelope.content, session.ssl is not None, login))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"klachten" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _certificates(tmp_path_factory.mktemp("tls"))


def _server_context(certs: tuple[Path, Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs[1]), str(certs[2]))
    return context


@pytest.fixture
def tls_server(certs, request) -> Iterator[tuple[int, Recorder]]:
    """An aiosmtpd on loopback: STARTTLS required (param "starttls") or implicit TLS ("ssl"), login required."""
    from aiosmtpd.controller import Controller

    recorder, port = Recorder(), free_port()
    mode = getattr(request, "param", "starttls")
    options = dict(authenticator=_authenticator, auth_required=True)
    if mode == "ssl":
        # aiosmtpd does not see implicit TLS as TLS: allow AUTH on it explicitly.
        controller = Controller(recorder, hostname="127.0.0.1", port=port,
                                ssl_context=_server_context(certs), auth_require_tls=False, **options)
    else:
        controller = Controller(recorder, hostname="127.0.0.1", port=port,
                                tls_context=_server_context(certs), require_starttls=True, **options)
    controller.start()
    yield port, recorder
    controller.stop()


def _transport(port: int, security: str, **smtp: object) -> SmtpTransport:
    config = base_config(smtp={"port": port, "security": security, **smtp})
    return SmtpTransport(settings_from_mapping(config).smtp)


def _send(transport: SmtpTransport):
    [result] = transport.send_many([Envelope(1, "klachten@vlaamseombudsdienst.be", "jan@example.be", MESSAGE)])
    return result


def test_starttls_with_login_delivers(tls_server, certs):
    """security: starttls upgrades the connection, trusts the configured CA, logs in, and delivers."""
    port, recorder = tls_server
    result = _send(_transport(port, "starttls", username="klachten", password="s3cret", ca_file=str(certs[0])))
    assert result.ok, result.error
    [(content, was_tls, login)] = recorder.received
    assert was_tls and login == b"klachten" and b"Message-ID: <tls-1@" in content


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("tls_server", ["ssl"], indirect=True)
def test_implicit_tls_with_login_delivers(tls_server, certs):
    """security: ssl speaks TLS from the first byte (port 465 style) and delivers."""
    port, recorder = tls_server
    result = _send(_transport(port, "ssl", username="klachten", password="s3cret", ca_file=str(certs[0])))
    assert result.ok, result.error
    assert recorder.received[0][2] == b"klachten"


def test_untrusted_certificate_is_a_transient_setup_error(tls_server):
    """A certificate the client does not trust fails the send as retryable, never as the citizen's fault."""
    port, recorder = tls_server
    result = _send(_transport(port, "starttls", username="klachten", password="s3cret"))
    assert isinstance(result.error, SendError) and not isinstance(result.error, PermanentSendError)
    assert recorder.received == []


def test_wrong_password_is_transient(tls_server, certs):
    """A refused login (535) is our configuration, retried; it does not fail the reply for good,
    and as the server never saw the message no attempt is charged for it."""
    port, recorder = tls_server
    result = _send(_transport(port, "starttls", username="klachten", password="wrong", ca_file=str(certs[0])))
    assert isinstance(result.error, SendError) and not isinstance(result.error, PermanentSendError)
    assert "set-up" in str(result.error) and recorder.received == []
    assert result.attempted and not result.reached


def test_plain_server_refuses_starttls_transiently(smtp_sink):
    """Asking for STARTTLS from a server that does not offer it is a (retryable) set-up error."""
    result = _send(_transport(smtp_sink.port, "starttls"))
    assert type(result.error) is SendError and smtp_sink.messages == []


def test_refused_recipient_is_recipient_rejected():
    """550 on RCPT TO means the address is bad."""
    err = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown user", "x@y.be")])
    assert isinstance(classify_error(err), RecipientRejected)


@pytest.mark.parametrize("code, message, kind", [
    (550, "5.1.1 no such user", RecipientRejected),
    (550, "mailbox unavailable", RecipientRejected),
    (552, "5.2.2 mailbox full", PermanentSendError),
    (554, "5.7.1 rejected as spam", PermanentSendError),
    (550, "5.1.8 bad sender domain", PermanentSendError),
    (451, "4.7.1 greylisted", SendError),
    (421, "service not available", SendError),
])
def test_data_replies_are_classified(code, message, kind):
    """After DATA: 5.1.x says the address is bad, other 5xx are permanent, 4xx are transient."""
    error = classify_error(aiosmtplib.SMTPDataError(code, message))
    assert type(error) is kind


def test_network_errors_are_transient():
    """Refused connections, timeouts and dropped connections are retried."""
    for err in (ConnectionRefusedError(111, "refused"), aiosmtplib.SMTPConnectError("down"),
                aiosmtplib.SMTPServerDisconnected("gone"), aiosmtplib.SMTPTimeoutError("slow")):
        assert type(classify_error(err)) is SendError


def test_refused_connection_fails_the_whole_batch_quickly():
    """With nobody listening, every envelope of the batch comes back as a transient failure."""
    transport = _transport(free_port(), "none")
    envelopes = [Envelope(i, "klachten@vlaamseombudsdienst.be", f"b{i}@example.be", MESSAGE) for i in range(20)]
    results = transport.send_many(envelopes)
    assert sorted(r.key for r in results) == list(range(20))
    assert all(type(r.error) is SendError and r.attempted for r in results)
    assert not any(r.reached for r in results)  # the server saw none of them: nothing is charged


def test_a_delivered_message_reached_the_server(smtp_sink):
    """A message the server answered counts as an attempt, delivered or refused with 4xx."""
    smtp_sink.failures.append("451 4.7.1 greylisted")
    transport = _transport(smtp_sink.port, "none")
    envelopes = [Envelope(i, "klachten@vlaamseombudsdienst.be", f"b{i}@example.be", MESSAGE) for i in range(2)]
    results = transport.send_many(envelopes)
    # Two connections run at once: the one 451 goes to whichever DATA comes first.
    refused = [r for r in results if r.error is not None]
    delivered = [r for r in results if r.ok]
    assert len(refused) == 1 and type(refused[0].error) is SendError and len(delivered) == 1
    assert sorted(r.key for r in results) == [0, 1] and all(r.reached for r in results)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [[f"b{delivered[0].key}@example.be"]]


def _claim_bound(port: int, claim: float, timeout: float) -> SmtpTransport:
    config = base_config(smtp={"port": port, "security": "none", "timeout_seconds": timeout, "concurrency": 1})
    return SmtpTransport(settings_from_mapping(config).smtp, claim_seconds=claim)


@pytest.mark.parametrize("slow_smtp", [0.6], indirect=True)
def test_data_is_not_begun_without_time_for_its_replies(slow_smtp):
    """EHLO, MAIL and RCPT eat the claim (3 s, 0.3 s margin): DATA is not begun, the message
    comes back as a transient failure the server saw, and the server has no copy."""
    port, server = slow_smtp
    transport = _claim_bound(port, claim=3, timeout=2)
    started = time.monotonic()
    [result] = transport.send_many([Envelope(1, "klachten@vlaamseombudsdienst.be", "jan@example.be", MESSAGE)])
    assert time.monotonic() - started < 2.7
    assert type(result.error) is SendError and result.attempted and result.reached
    assert "cut off before DATA" in str(result.error)
    time.sleep(server.delay)
    assert server.received == []


@pytest.mark.parametrize("slow_smtp", [0.3], indirect=True)
def test_messages_are_started_only_while_the_claim_allows(slow_smtp):
    """With about a second per message and a 6 s claim, some messages go and the rest are cut
    off before DATA or released unstarted; the server got exactly the ones reported sent."""
    port, server = slow_smtp
    transport = _claim_bound(port, claim=6, timeout=1)
    envelopes = [Envelope(i, "klachten@vlaamseombudsdienst.be", f"b{i}@example.be", MESSAGE) for i in range(8)]
    started = time.monotonic()
    results = transport.send_many(envelopes)
    assert time.monotonic() - started < 6 * 0.9 + 0.2
    sent = [r for r in results if r.ok]
    assert 2 <= len(sent) < 8
    assert all(r.ok or not r.attempted or "cut off before DATA" in str(r.error) for r in results)
    time.sleep(1)
    assert len(server.received) == len(sent)


def test_a_server_that_never_greets_is_cut_off_by_the_claim():
    """A connection the server accepts but never answers is given up when the claim (less its
    margin) runs out, not after the per-command timeout; the server saw nothing."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts; nobody ever writes a greeting
    try:
        transport = _claim_bound(silent.getsockname()[1], claim=2, timeout=30)
        started = time.monotonic()
        [result] = transport.send_many([Envelope(1, "klachten@vlaamseombudsdienst.be", "jan@example.be", MESSAGE)])
        assert time.monotonic() - started < 2.5
    finally:
        silent.close()
    assert type(result.error) is SendError and not result.reached
    assert "cut off while connecting" in str(result.error)


@pytest.mark.parametrize("slow_smtp", [0.3], indirect=True)
def test_a_stop_starts_no_new_message(slow_smtp):
    """SIGTERM while a batch goes out to a slow server (about a second per message): the
    message in flight is finished, no other is started; those come back unattempted (the
    outbox releases them) and the server has exactly the one reported sent. Nor does the
    stop wait long for the answer to QUIT."""
    port, server = slow_smtp
    server.quit_delay = 4
    transport = _claim_bound(port, claim=120, timeout=5)
    envelopes = [Envelope(i, "klachten@vlaamseombudsdienst.be", f"b{i}@example.be", MESSAGE) for i in range(6)]
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    results = sorted(transport.send_many(envelopes, stop=stop), key=lambda r: r.key)
    assert time.monotonic() - started < 3  # the rest of the batch would take about 6 s more
    assert results[0].ok and all(not r.attempted and r.error is None for r in results[1:])
    time.sleep(0.5)
    assert len(server.received) == 1
