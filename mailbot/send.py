"""SMTP adapter (aiosmtplib): deliver prepared MIME bytes, classify failures."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from .config import SmtpSettings
from .errors import PermanentSendError, SendError


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

    @property
    def ok(self) -> bool:
        return self.error is None


class Transport(Protocol):
    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]: ...


def _classify(err: Exception) -> SendError:
    code = getattr(err, "code", None)
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        codes = [getattr(r, "code", 0) for r in err.recipients]
        code = max(codes, default=0)
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentSendError(f"rejected by the SMTP server ({code}): {err}")
    return SendError(f"SMTP delivery failed: {err}")


class SmtpTransport:
    """Sends over a few parallel connections, each reused for several messages."""

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.tls_context = tls_context

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_seconds,
            use_tls=s.security == "ssl", start_tls=s.security == "starttls",
            tls_context=self.tls_context,
            username=s.username, password=s.password.get_secret_value() if s.password else None,
        )

    async def _worker(self, queue: asyncio.Queue[Envelope], results: list[SendResult]) -> None:
        client: aiosmtplib.SMTP | None = None
        while True:
            try:
                envelope = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            try:
                if client is None or not client.is_connected:
                    client = self._client()
                    await client.connect()
                await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
                results.append(SendResult(envelope.key))
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as err:
                results.append(SendResult(envelope.key, _classify(err)))
                if client is not None and isinstance(err, (aiosmtplib.SMTPServerDisconnected, OSError)):
                    client = None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass

    async def send_many_async(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue()
        for envelope in envelopes:
            queue.put_nowait(envelope)
        results: list[SendResult] = []
        workers = min(self.settings.concurrency, len(envelopes)) or 1
        await asyncio.gather(*(self._worker(queue, results) for _ in range(workers)))
        return results

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        if not envelopes:
            return []
        return asyncio.run(self.send_many_async(envelopes))
