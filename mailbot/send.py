"""SMTP adapter (aiosmtplib): deliver prepared MIME bytes, classify failures.

    SendError                  transient: connection refused or lost, timeout, 4xx,
                               and our own set-up (TLS, login, sender refused): retry
    └── PermanentSendError     5xx for this message: do not retry
        └── RecipientRejected  5xx that says the address itself is bad (5.1.x, 5.2.1,
                               or a refused RCPT without an enhanced code)

A result also says whether the server saw the message at all (`reached`): when
the connection, STARTTLS or login already failed, it did not, and the outbox
charges no attempt for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiosmtplib

from .config import SmtpSettings
from .errors import PermanentSendError, SendError
from .oauth2 import TOKEN_REFUSED_HINT, TOKENS, OAuth2Error, TokenCache


_DEFAULT: Any = aiosmtplib.smtp.Default.token  # aiosmtplib's "use the client's timeout"
QUIT_ON_STOP = 1.0  # seconds a stopping sender waits for the answer to QUIT


class RecipientRejected(PermanentSendError):
    """The server says the recipient address does not exist or is disabled."""


@dataclass(frozen=True)
class Envelope:
    key: int  # the outbox row
    sender: str
    recipient: str
    data: bytes


class Stop(Protocol):
    """What the sender checks before each message (`threading.Event`: set on SIGTERM)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class SendResult:
    key: int
    error: SendError | None = None
    # False: not tried (too little claim time left, or the robot is stopping); the row is released
    attempted: bool = True
    # False: the server never saw this message (connecting, STARTTLS or login failed
    # first), so no attempt is charged for it.
    reached: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None and self.attempted


OnResult = Callable[[SendResult], None]


class Transport(Protocol):
    def send_many(self, envelopes: Sequence[Envelope], *,
                  stop: Stop | None = None, on_result: OnResult | None = None) -> list[SendResult]: ...


class _Results(list[SendResult]):
    """The results so far; each is also handed to `on_result` the moment it is known, so the
    outbox can record it before the batch ends (a crash then re-sends only what was in flight)."""

    def __init__(self, on_result: OnResult | None) -> None:
        super().__init__()
        self.on_result = on_result

    def append(self, result: SendResult) -> None:
        super().append(result)
        if self.on_result is not None:
            self.on_result(result)


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Failures of our own set-up, not of the message: retried, never blamed on the citizen.
_SETUP_ERRORS = (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPNotSupported,
                 aiosmtplib.SMTPSenderRefused, ssl.SSLError)
# After one of these the connection is unusable: drop it (and, at connect time, the batch).
_CONNECTION_ERRORS = (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                      aiosmtplib.SMTPConnectTimeoutError, aiosmtplib.SMTPTimeoutError,
                      OSError, asyncio.TimeoutError)


def _address_problem(code: int, message: str, at_rcpt: bool) -> bool:
    enhanced = _ENHANCED.search(message)
    if enhanced:
        subject, detail = int(enhanced.group(2)), int(enhanced.group(3))
        return (subject == 1 and detail not in (7, 8)) or (subject, detail) == (2, 1)
    return at_rcpt or code in (550, 551, 553)


def classify_error(err: BaseException) -> SendError:
    """Map an aiosmtplib/OS error to our tree; see the module docstring."""
    if isinstance(err, SendError):
        return err
    if isinstance(err, _SETUP_ERRORS):
        return SendError(f"SMTP set-up failed (check smtp: in config.yaml): {err}")
    code = getattr(err, "code", None)
    message = str(getattr(err, "message", "") or err)
    at_rcpt = isinstance(err, (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPRecipientRefused))
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        refused = err.recipients
        code = max((getattr(r, "code", 0) for r in refused), default=0)
        message = "; ".join(str(getattr(r, "message", r)) for r in refused) or message
    if isinstance(code, int) and 500 <= code < 600:
        text = f"rejected by the SMTP server ({code} {message})"
        if _address_problem(code, message, at_rcpt):
            return RecipientRejected(text)
        return PermanentSendError(text)
    return SendError(f"SMTP delivery failed: {type(err).__name__}: {err}")


class _CutOff(aiosmtplib.SMTPException):
    """Too little claim time left to begin DATA: the message is abandoned before it."""


class _ClaimBoundSMTP(aiosmtplib.SMTP):
    """An SMTP client that begins DATA only while time for both its replies is left.

    `sendmail` calls `data()` after MAIL and RCPT; from here on the server may accept
    the message, so it must never be cut off by the claim's bound (see SmtpTransport).
    """

    data_deadline: float = float("inf")  # monotonic; set per message
    data_reserve: float = 0.0

    async def data(self, message: str | bytes, /, *, timeout: Any = _DEFAULT) -> aiosmtplib.SMTPResponse:
        left = self.data_deadline - time.monotonic()
        if left < self.data_reserve:
            raise _CutOff(f"{max(left, 0):.1f} s of the outbox claim left, "
                          f"{self.data_reserve:.1f} s needed for DATA")
        # Both replies of DATA (354, then the one after end-of-data) arrive in time, or it
        # times out by itself: the claim's bound never cuts the message after end-of-data.
        each = min(float(self.timeout or left), 0.45 * left)
        return await super().data(message, timeout=each)


class SmtpTransport:
    """Sends over `smtp.concurrency` parallel connections, each reused for several messages.

    The outbox has claimed the rows for `smtp.claim_lease_seconds`; once the claim runs
    out another sender may take them and send them again. So each message's whole SMTP
    transaction (connecting, EHLO, STARTTLS and login when needed, MAIL, RCPT, DATA) is
    bounded by the time left on the claim minus a margin (a tenth of the lease, for
    recording the results): a transaction still running then is cut off. DATA is begun
    only while time for both its replies is left (2 × `timeout_seconds`, at most half the
    claim), so a cut-off falls before end-of-data, and the server discards the message.
    A message is not started at all with less than that left: it comes back with
    `attempted=False`. Neither is one once `stop` is set (SIGTERM): a stop waits for the
    transactions in flight only, at most about 2 × `timeout_seconds` plus the time to
    connect, never for the rest of the batch. `claim_seconds` overrides the lease (tests).
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None,
                 claim_seconds: float | None = None, tokens: TokenCache | None = None) -> None:
        self.settings = settings
        self.tls_context = tls_context
        self.tokens = tokens or TOKENS  # with smtp.oauth2: the process's tokens, shared with IMAP
        self.claim_seconds = settings.claim_lease_seconds if claim_seconds is None else claim_seconds
        self.margin = self.claim_seconds / 10
        usable = self.claim_seconds - self.margin
        self.data_reserve = min(2 * settings.timeout_seconds, usable / 2)

    @property
    def budget_seconds(self) -> float:
        """How long after the call new messages are still started."""
        return max(self.claim_seconds - self.margin - self.data_reserve, 0.0)

    def _client(self) -> _ClaimBoundSMTP:
        s = self.settings
        client = _ClaimBoundSMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_seconds,
            use_tls=s.security == "ssl", start_tls=s.security == "starttls",
            tls_context=self.tls_context,
            cert_bundle=str(s.ca_file) if s.ca_file and self.tls_context is None else None,
            # With oauth2, `_sign_in` authenticates after connecting.
            username=None if s.oauth2 else s.username,
            password=s.password.get_secret_value() if s.password else None,
        )
        client.data_reserve = self.data_reserve
        return client

    async def _sign_in(self, client: aiosmtplib.SMTP) -> None:
        """AUTH XOAUTH2 with an access token (smtp.oauth2); a token the server refuses though
        we hold it as fresh is replaced once. A failure is a SendError (the message never left)."""
        oauth2, username = self.settings.oauth2, self.settings.username
        if oauth2 is None:
            return  # aiosmtplib logged in with the password, if any, while connecting
        assert username is not None  # config: oauth2 needs a username
        try:
            token = await asyncio.to_thread(self.tokens.token, oauth2)
            try:
                await auth_xoauth2(client, username, token)
                return
            except aiosmtplib.SMTPAuthenticationError:  # in a thread: it waits while another fetches
                await asyncio.to_thread(self.tokens.refused, oauth2, token)
            token = await asyncio.to_thread(self.tokens.token, oauth2)
            await auth_xoauth2(client, username, token)
        except OAuth2Error as err:
            raise SendError(f"SMTP sign-in as {username} on {self.settings.host} not possible: {err}") from err
        except aiosmtplib.SMTPAuthenticationError as err:
            raise SendError(f"SMTP sign-in (XOAUTH2) as {username} on {self.settings.host} refused a new token: "
                            f"{err.code} {err.message}{TOKEN_REFUSED_HINT}") from err

    async def _worker(self, queue: asyncio.Queue[Envelope], results: list[SendResult],
                      end: float, stop: Stop | None = None) -> None:
        """Send from `queue` until it is empty, `end` (monotonic: claim end − margin) is near,
        or `stop` is set."""
        client: _ClaimBoundSMTP | None = None
        while not queue.empty():
            left = end - time.monotonic()
            if left < self.data_reserve or (stop is not None and stop.is_set()):
                break  # too late to start another message: the rest is released
            envelope = queue.get_nowait()
            connecting = client is None or not client.is_connected
            bound = asyncio.timeout(left)
            try:
                async with bound:
                    if client is None or not client.is_connected:
                        client = self._client()
                        await client.connect()
                        await self._sign_in(client)
                    connecting = False
                    client.data_deadline = end
                    await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
                results.append(SendResult(envelope.key))
            except (aiosmtplib.SMTPException, SendError, *_SETUP_ERRORS, *_CONNECTION_ERRORS) as err:
                cut = isinstance(err, _CutOff) or bound.expired()
                error = _cut_off(err, self.claim_seconds, connecting) if cut else classify_error(err)
                if connecting:
                    # The server is down or refuses us: nothing in this batch can go now,
                    # and the server saw none of it.
                    results.append(SendResult(envelope.key, error, reached=False))
                    while not queue.empty():
                        results.append(SendResult(queue.get_nowait().key, error, reached=False))
                    if client is not None:
                        _drop(client)
                    return
                # aiosmtplib sends RSET itself after a refused message.
                results.append(SendResult(envelope.key, error))
                if client is not None and (cut or isinstance(err, _CONNECTION_ERRORS)):
                    _drop(client)
                    client = None
            except ValueError as err:  # an address aiosmtplib cannot parse
                results.append(SendResult(envelope.key, RecipientRejected(f"unusable address: {err}")))
        if client is not None and client.is_connected:
            try:
                # QUIT must not hold up the recording of the results past the claim, nor a stop.
                wait = max(end - time.monotonic(), 0)
                if stop is not None and stop.is_set():
                    wait = min(wait, QUIT_ON_STOP)
                async with asyncio.timeout(wait):
                    await client.quit()
            except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
                _drop(client)

    async def send_many_async(self, envelopes: Sequence[Envelope], *, stop: Stop | None = None,
                              on_result: OnResult | None = None) -> list[SendResult]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue()
        for envelope in envelopes:
            queue.put_nowait(envelope)
        results = _Results(on_result)
        # The outbox claimed the rows just before this call.
        end = time.monotonic() + self.claim_seconds - self.margin
        workers = min(self.settings.concurrency, len(envelopes)) or 1
        await asyncio.gather(*(self._worker(queue, results, end, stop) for _ in range(workers)))
        done = {r.key for r in results}
        for envelope in envelopes:
            if envelope.key not in done:
                results.append(SendResult(envelope.key, attempted=False))
        return list(results)

    def send_many(self, envelopes: Sequence[Envelope], *, stop: Stop | None = None,
                  on_result: OnResult | None = None) -> list[SendResult]:
        if not envelopes:
            return []
        return asyncio.run(self.send_many_async(envelopes, stop=stop, on_result=on_result))


async def auth_xoauth2(client: aiosmtplib.SMTP, username: str, token: str) -> None:
    """AUTH XOAUTH2 (Google's and Microsoft's SASL mechanism), written here so any aiosmtplib
    from 3.0 works. A refused token is answered with a 334 challenge carrying a base64 JSON
    error; the client's empty reply to it brings the final 5xx, raised with that error."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    if "xoauth2" not in client.server_auth_methods:
        raise aiosmtplib.SMTPNotSupported(f"the server offers no AUTH XOAUTH2 (it offers: "
                                          f"{' '.join(client.server_auth_methods) or 'no AUTH'})")
    initial = base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode())
    response = await client.execute_command(b"AUTH", b"XOAUTH2", initial)
    detail = ""
    if response.code == 334:
        detail = _challenge_error(response.message)
        response = await client.execute_command(b"")
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message + detail)


def _challenge_error(challenge: str) -> str:
    """The server's JSON error of a refused token (`{"status":"401","schemes":"Bearer",…}`), as
    a short text; empty when it is not one."""
    try:
        error = json.loads(base64.b64decode(challenge, validate=True))
    except ValueError:
        return ""
    fields = [f"{key} {value}" for key, value in error.items()
              if isinstance(value, (str, int))] if isinstance(error, dict) else []
    return f" ({', '.join(fields)})" if fields else ""


def _cut_off(err: BaseException, claim_seconds: float, connecting: bool) -> SendError:
    """The claim's bound ended the transaction before DATA: the server has discarded it."""
    where = "while connecting" if connecting else "before DATA"
    return SendError(f"SMTP transaction cut off {where}, not delivered: the server did not finish "
                     f"within the outbox claim ({claim_seconds:g} s, smtp.claim_lease_seconds)"
                     + (f"; {err}" if isinstance(err, _CutOff) else ""))


def _drop(client: aiosmtplib.SMTP) -> None:
    """Close at once, discarding unsent bytes (asyncio's close() would still flush them)."""
    transport = client.transport
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    client.close()
