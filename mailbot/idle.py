"""IMAP IDLE: wake the poller as soon as mail arrives, instead of waiting for the interval.

One watcher per mailbox runs on its own IMAP connection and never touches a message: when
the server reports new mail it calls `on_mail()` (the scheduler's poll of that mailbox).
IDLE is re-issued every `reissue_seconds` (servers drop an IDLE after 30 minutes; RFC 2177
asks for less than 29) and each re-issue polls once too, as a safety net; mail delivered
while a poll runs is caught by comparing UIDNEXT before and after it. When the server
drops the connection the watcher reconnects with exponential backoff, capped, and polls
after reconnecting, so mail that came in meanwhile is not left waiting.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Protocol

from .config import ImapSettings
from .errors import FetchError
from .fetch import ImapMailbox

log = logging.getLogger("mailbot.idle")


class IdleConnection(Protocol):
    def idle_wait(self, seconds: float, stop: object | None = None) -> bool: ...
    def uidnext(self) -> int: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


def reconnect_delay(failures: int, cap: float, *, rng: random.Random | None = None) -> float:
    """Exponential backoff (1 s, 2 s, 4 s … cap) with a little jitter."""
    ceiling = min(float(2 ** max(failures - 1, 0)), cap)
    return ceiling * (0.8 + 0.2 * (rng or random).random())


class IdleWatcher:
    """The IDLE loop of one mailbox; `run()` returns when `stop` is set."""

    def __init__(self, settings: ImapSettings, on_mail: Callable[[], None], stop: threading.Event,
                 *, reissue_seconds: float, reconnect_max_seconds: float,
                 connect: Callable[[ImapSettings], IdleConnection] = ImapMailbox) -> None:
        self.settings = settings
        self.on_mail = on_mail
        self.stop = stop
        self.reissue_seconds = reissue_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self.connect = connect
        self.reconnects = 0  # for tests and logs

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                connection = self.connect(self.settings)
            except FetchError as err:
                failures += 1
                delay = reconnect_delay(failures, self.reconnect_max_seconds)
                log.warning("idle: cannot connect (%s); retrying in %.1fs", err, delay)
                self.stop.wait(delay)
                continue
            if failures:
                self.reconnects += 1
                log.info("idle: reconnected after %d failed attempt(s)", failures)
            failures = 0
            try:
                self._listen(connection)
            except FetchError as err:
                connection.abort()
                failures = 1
                log.warning("idle: connection lost (%s); reconnecting", err)
                self.stop.wait(reconnect_delay(failures, self.reconnect_max_seconds))
            else:
                connection.close()

    def _listen(self, connection: IdleConnection) -> None:
        """Poll, then IDLE until news; again and again. Mail delivered while a poll runs is
        reported by no IDLE (the server told of it before IDLE began), so the mailbox's
        UIDNEXT is compared before and after each poll: if it moved, poll once more."""
        seen = connection.uidnext()
        self._wake()  # whatever arrived while we were not listening
        while not self.stop.is_set():
            latest = connection.uidnext()
            if latest != seen:  # delivered during the poll: perhaps after its search
                seen = latest
                self._wake()
                continue
            connection.idle_wait(self.reissue_seconds, self.stop)
            if not self.stop.is_set():
                seen = connection.uidnext()
                self._wake()  # new mail, or the periodic re-issue: poll either way

    def _wake(self) -> None:
        try:
            self.on_mail()
        except Exception:  # noqa: BLE001 - the poller logs its own errors; keep idling
            log.exception("idle: poll after notification failed")
