"""Embedded servers for `mailbot demo`: an in-memory IMAP server and an SMTP sink.

Nothing to install: the IMAP server is pymap (pure Python, dict backend) run
in-process on its own asyncio loop in a background thread, and the SMTP sink
is an aiosmtpd `Controller`. Both listen on 127.0.0.1 on a free port and keep
everything in memory; stopping them discards it all.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from argparse import Namespace
from collections.abc import Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import imapclient

__all__ = ["EmbeddedImap", "EmbeddedSmtp", "SmtpMessage"]

_HOST = "127.0.0.1"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0

# pymap's loggers: they would print tracebacks of connections cut at shutdown.
_QUIET_LOGGERS = ("pymap", "proxyprotocol")


def _silence(names: Iterable[str]) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if logger.level < logging.CRITICAL:
            logger.setLevel(logging.CRITICAL)


class EmbeddedImap:
    """pymap with its in-memory backend, one user and an empty INBOX.

    Plain-text LOGIN is allowed (no TLS: it only listens on loopback); the
    password is stored and compared in clear, so logging in costs nothing.
    """

    def __init__(self, username: str, password: str, *, host: str = _HOST) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port: int = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> EmbeddedImap:
        if self._thread is not None:
            raise RuntimeError("EmbeddedImap already started")
        _silence(_QUIET_LOGGERS)
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="embedded-imap", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.stop()
            raise RuntimeError("embedded IMAP server did not start in time")
        if self._error is not None:
            error, self._error = self._error, None
            self.stop()
            raise RuntimeError(f"embedded IMAP server failed to start: {error}") from error
        return self

    def stop(self) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # the loop closed in between
                pass
        thread.join(_STOP_TIMEOUT)
        self._thread = None

    def __enter__(self) -> EmbeddedImap:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- convenience ---------------------------------------------------------

    def append(self, raw: bytes, folder: str = "INBOX", *, flags: Iterable[str | bytes] = ()) -> None:
        """Deliver one message into `folder` (created if missing), as a client would."""
        with self._client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=tuple(flags))

    def create_folders(self, *folders: str) -> None:
        """Create the folders that do not exist yet, as the office's mailbox already has them."""
        with self._client() as client:
            for folder in folders:
                if not client.folder_exists(folder):
                    client.create_folder(folder)

    @contextmanager
    def _client(self) -> Iterator[imapclient.IMAPClient]:
        if self._thread is None:
            raise RuntimeError("EmbeddedImap is not running")
        client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
            yield client
        finally:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - best effort
                client.shutdown()

    # -- the server thread ---------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        # Our private loop: its stray "Task exception was never retrieved" and
        # connection-reset reports go nowhere instead of the root logger.
        loop.set_exception_handler(lambda _loop, _context: None)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as err:  # noqa: BLE001 - reported to start()
            self._error = err
        finally:
            try:
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    async def _serve(self) -> None:
        from proxyprotocol.reader import ProxyProtocolReader
        from pymap.backend.dict import DictBackend, Login
        from pymap.concurrent import Subsystem
        from pymap.imap import IMAPServer
        from pymap.user import UserMetadata
        from pysasl.hashing import Cleartext

        self._stop_event = asyncio.Event()
        # What pymap's argparse would have produced; only these are read.
        args = Namespace(debug=False, passlib_cfg=None, proxy_protocol=None,
                         inherited_sockets=None)
        config = _demo_config_type()(
            args, host=self.host, port=0,
            tls_enabled=False,                      # no STARTTLS, so LOGIN in clear is allowed
            ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),  # unused; skips loading CA certs
            demo_data=False,                        # an empty INBOX, no sample mail
            demo_user=self.username, demo_password=self.password,
            hash_context=Cleartext(),               # no 500k-round PBKDF2 on every login
            cpu_subsystem=Subsystem.for_asyncio(),  # no worker thread pool left behind
            invalid_user_sleep=0.0,
            reject_dnsbl=False,
        )
        config.apply_context()
        login = Login(config)
        # The one user (what `pymap dict --demo-user/--demo-password` creates).
        await login.demo_user_identity.set(
            UserMetadata(config, self.username, password=self.password))
        backend = DictBackend(login, config)
        handler = ProxyProtocolReader(config.proxy_protocol).get_callback(
            IMAPServer(backend.login, config))
        server = await asyncio.start_server(handler, host=self.host, port=0)
        self.port = int(server.sockets[0].getsockname()[1])
        async with AsyncExitStack() as stack:
            await backend.start(stack)
            self._ready.set()
            await self._stop_event.wait()
        server.close()
        # Connection handlers still running are cancelled by _run's clean-up.


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _demo_config_type() -> type:
    from pymap.backend.dict import Config

    class DemoConfig(Config):
        @property
        def greeting(self) -> bytes:
            # The stock greeting calls socket.getfqdn() on every connection,
            # which stalls on machines with slow reverse DNS.
            return b"Server ready (mailbot demo)"

    return DemoConfig


# -- SMTP -------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


@dataclass
class _Sink:
    messages: list[SmtpMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        with self.lock:
            self.messages.append(SmtpMessage(mail_from=envelope.mail_from or "",
                                             rcpt_tos=tuple(envelope.rcpt_tos),
                                             content=bytes(content)))
        return "250 Message accepted for delivery"


class EmbeddedSmtp:
    """An SMTP sink on loopback that keeps every accepted message in `messages`."""

    def __init__(self, *, host: str = _HOST) -> None:
        self.host = host
        self.port: int = 0
        self._sink = _Sink()
        self._controller: Any = None

    @property
    def messages(self) -> list[SmtpMessage]:
        with self._sink.lock:
            return list(self._sink.messages)

    def start(self) -> EmbeddedSmtp:
        from aiosmtpd.controller import Controller

        class FreePortController(Controller):
            """Binds port 0 and reads back the port the kernel chose."""

            def _trigger_server(self) -> None:
                if self.port == 0 and self.server is not None:
                    self.port = int(cast(asyncio.Server, self.server).sockets[0].getsockname()[1])
                super()._trigger_server()

        if self._controller is not None:
            raise RuntimeError("EmbeddedSmtp already started")
        controller = FreePortController(self._sink, hostname=self.host, port=0,
                                        server_hostname="mailbot-demo",
                                        ready_timeout=_START_TIMEOUT)
        controller.start()
        self._controller = controller
        self.port = int(controller.port)
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> EmbeddedSmtp:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
