"""SMTP adapter (aiosmtplib): deliver prepared MIME bytes, classify failures.

    SendError                  transient: connection refused or lost, timeout, 4xx,
                               and our own set-up (TLS, login, sender refused): retry
    └── PermanentSendError     5xx for this message: do not retry
        └── RecipientRejected  5xx that says the address itself is bad (5.1.x, 5.2.1,
                               or a refused RCPT without an enhanced code)
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from .config import SmtpSettings
from .errors import PermanentSendError, SendError


class RecipientRejected(PermanentSendError):
    """The server says the recipient address does not exist or is disabled."""


@dataclass(frozen=True)
class Envelope:
    key: int  # the outbox row
    sender: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class SendResult:
    key: int
    error: SendError | None = None
    attempted: bool = True  # False: not tried (time budget spent); the row is released

    @property
    def ok(self) -> bool:
        return self.error is None and self.attempted


class Transport(Protocol):
    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]: ...


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


class SmtpTransport:
    """Sends over `smtp.concurrency` parallel connections, each reused for several messages.

    A call stops *starting* messages after `budget_seconds`, so a batch always ends
    before the outbox's claim on its rows runs out (which would let another sender
    take them); the messages it did not start come back with `attempted=False`.
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None,
                 budget_seconds: float | None = None) -> None:
        self.settings = settings
        self.tls_context = tls_context
        lease = settings.claim_lease_seconds
        self.budget_seconds = (budget_seconds if budget_seconds is not None
                               else max(lease - 3 * settings.timeout_seconds, lease / 2))

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_seconds,
            use_tls=s.security == "ssl", start_tls=s.security == "starttls",
            tls_context=self.tls_context,
            cert_bundle=str(s.ca_file) if s.ca_file and self.tls_context is None else None,
            username=s.username, password=s.password.get_secret_value() if s.password else None,
        )

    async def _worker(self, queue: asyncio.Queue[Envelope], results: list[SendResult],
                      deadline: float) -> None:
        client: aiosmtplib.SMTP | None = None
        while not queue.empty():
            if time.monotonic() > deadline:
                break
            envelope = queue.get_nowait()
            if client is None or not client.is_connected:
                client = self._client()
                try:
                    await client.connect()
                except (aiosmtplib.SMTPException, *_SETUP_ERRORS, *_CONNECTION_ERRORS) as err:
                    # The server is down or refuses us: nothing in this batch can go now.
                    error = classify_error(err)
                    results.append(SendResult(envelope.key, error))
                    while not queue.empty():
                        results.append(SendResult(queue.get_nowait().key, error))
                    return
            try:
                await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
                results.append(SendResult(envelope.key))
            except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as err:
                # aiosmtplib sends RSET itself after a refused message.
                results.append(SendResult(envelope.key, classify_error(err)))
                if isinstance(err, _CONNECTION_ERRORS):
                    client.close()
                    client = None
            except ValueError as err:  # an address aiosmtplib cannot parse
                results.append(SendResult(envelope.key, RecipientRejected(f"unusable address: {err}")))
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
                client.close()

    async def send_many_async(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue()
        for envelope in envelopes:
            queue.put_nowait(envelope)
        results: list[SendResult] = []
        deadline = time.monotonic() + self.budget_seconds
        workers = min(self.settings.concurrency, len(envelopes)) or 1
        await asyncio.gather(*(self._worker(queue, results, deadline) for _ in range(workers)))
        done = {r.key for r in results}
        results += [SendResult(e.key, attempted=False) for e in envelopes if e.key not in done]
        return results

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        if not envelopes:
            return []
        return asyncio.run(self.send_many_async(envelopes))

