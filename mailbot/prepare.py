"""Parse and classify a batch ahead of the database work, on the machine's other core.

Parsing and classifying need no database: while the intake records message i, a worker
process already reads messages i+1, i+2, … of the same batch. Results come back in
order; an exception raised for one message (a ParseError, or a bug on hostile input) is
raised again in the caller for that message only, so quarantine works as before.

With a `timeout` the worker is also a watchdog, and every batch goes to it, however small:
a message whose reading takes longer is cut off (the worker is killed and replaced) and
quarantined with the reason, instead of hanging the robot under its mailbox lease. A
message that makes the worker die twice is quarantined too, once a canary mail shows that
a fresh worker itself is fine.

The worker is started on first use (spawn: no inherited threads or connections), ignores
SIGINT/SIGTERM (the robot stops it), and leaves by itself when the robot dies: at once when
idle, and at the latest after its own per-mail alarm (the backstop) when stuck in a mail. A
batch given a `stop` (SIGTERM, a lost lease) is not waited for once it is set: the worker is
killed and `Stopped` raised, so the caller abandons the batch, uncommitted. Small
batches without a watchdog, single-core machines without one, and workers that cannot run
at all fall back to doing it in process (with no time limit).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import NoReturn, Protocol

from .classify import classify
from .errors import MailbotError, ParseError, ReadingAborted
from .model import Classification, Mail
from .parse import parse_message

log = logging.getLogger("mailbot.prepare")

MIN_BATCH = 16  # below this, shipping the batch to the worker costs more than it saves
STARTUP_GRACE = 30.0  # seconds a new worker may take to start, on top of the first mail's timeout
WAITS_PER_MAIL = 3  # the mail, once more when its worker died under it, then a canary mail


def longest_wait(timeout: float) -> float:
    """The longest a batch waits for the parse worker over one mail (`Preparer`): the mail's
    timeout plus a new worker's start-up, up to `WAITS_PER_MAIL` times (the worker dies under
    it, the mail is tried once more, a canary then tells a bad worker from a bad mail). No
    timeout (0): no bound to give; the measured reads take about a second, and only a hanging
    one waits long, which the database may then end (`db_engine.idle_limit`)."""
    return WAITS_PER_MAIL * (timeout + STARTUP_GRACE) if timeout else 0.0
CLOSE_GRACE = 5.0  # seconds a closing worker may take to finish the mail in hand
STOP_CHECK = 0.5  # seconds between looks at the batch's `stop` while waiting for the worker
CANARY = b"From: canary@example.org\r\nSubject: canary\r\n\r\nklacht\r\n"


@dataclass(frozen=True)
class Options:
    max_bytes: int
    own_addresses: frozenset[str]
    default_language: str


def prepare(raw: bytes, options: Options) -> tuple[Mail, Classification]:
    """Parse and classify one message (raises ParseError for unreadable mail). Pure.

    A mail with no sender is unreadable too, unless it is automatic (a bounce without From
    still tells which address failed): binary garbage, a text file, or a mail that lost its
    headers would open a case for nobody, which no reply can reach and no later mail can join.
    """
    mail = parse_message(raw, max_bytes=options.max_bytes)
    classification = classify(mail, own_addresses=options.own_addresses,
                              default_language=options.default_language)
    if mail.from_ is None and not classification.is_automatic:
        raise ParseError(no_sender_reason(mail))
    return mail, classification


def no_sender_reason(mail: Mail) -> str:
    """The quarantine reason for a mail without sender; it starts as the parser's own
    "unreadable message" reasons do, the category retention keeps of it."""
    if not any(mail.header(name) for name in ("date", "subject", "message-id", "to")):
        return "unreadable message: no e-mail headers (no From, Date, Subject, Message-ID or To)"
    return "unreadable message: no sender (no From address)"


Work = Callable[[bytes, Options], tuple[Mail, Classification]]


class Stop(Protocol):
    def is_set(self) -> bool: ...


class Stopped(MailbotError):
    """The robot is stopping while a message's reading is still awaited: not the message's
    fault, a signal to abandon the batch (nothing committed, read again next time)."""


class Preparer:
    """Hands out `prepare` results for a batch, computed ahead in a worker process.

    `timeout` (seconds per message, None for none) makes the worker a watchdog; `work`
    replaces `prepare` (a module-level function: it is pickled to the worker).
    """

    def __init__(self, *, workers: int | None = None, timeout: float | None = None,
                 work: Work = prepare) -> None:
        self.workers = (1 if timeout or _usable_cores() > 1 else 0) if workers is None else workers
        self.timeout = timeout
        self.work = work
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._proven = False  # a worker has returned a result: it can run at all
        self._warm: ProcessPoolExecutor | None = None  # the worker that has started up
        # The worker's own limit per mail, a backstop for when the robot is gone and cannot
        # kill it: well beyond the robot's own timeout, which normally acts first.
        self.backstop = 2 * timeout + STARTUP_GRACE if timeout else 0.0
        # The last batch, to submit again together when its worker is lost (weak: the
        # caller decides how long a batch's mail stays in memory).
        self._ahead: list[weakref.ref[Prepared]] = []

    def batch(self, raws: Sequence[bytes], options: Options, *,
              stop: Stop | None = None) -> list[Prepared]:
        """One `Prepared` per raw message, in order; `.result()` waits for each, until
        `stop` is set: then it raises `Stopped` and the worker is killed."""
        batch = [Prepared(raw, options, self, stop=stop) for raw in raws]
        if self._pool_for(len(raws)) is not None:
            self._submit(batch)
            self._ahead = [weakref.ref(p) for p in batch]
        return batch

    def result(self, prepared: Prepared) -> tuple[Mail, Classification]:
        """Wait for one message: a reading that overruns the timeout is cut off and a
        ParseError; a worker that dies under it is replaced and the message tried once more."""
        for attempt in (1, 2):
            if prepared.future is None:
                return self.work(prepared.raw, prepared.options)
            try:
                found = self._wait(prepared)
            except FutureTimeout:
                log.warning("reading a message took longer than %g s: worker replaced", self.timeout)
                self._replace(prepared, kill=True)
                raise prepared.set_aside(f"reading the message took longer than {self.timeout:g} s")
            except (BrokenProcessPool, CancelledError):
                if prepared.stop is not None and prepared.stop.is_set():
                    self._abandon(prepared)
                self._replace(prepared, again=attempt == 1)
                continue
            self._proven, self._warm = True, prepared.pool
            return found
        if self._worker_runs(prepared.options):
            raise prepared.set_aside("reading the message made the parser crash")
        self._give_up("a new worker died at once")
        return self.work(prepared.raw, prepared.options)

    def _wait(self, prepared: Prepared) -> tuple[Mail, Classification]:
        """The future's result within `_limit` (else FutureTimeout), looking at the batch's
        `stop` every STOP_CHECK seconds."""
        assert prepared.future is not None
        limit, stop = self._limit(prepared), prepared.stop
        if stop is None:
            return prepared.future.result(timeout=limit)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if stop.is_set() and not prepared.future.done():
                self._abandon(prepared)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise FutureTimeout()
            try:
                return prepared.future.result(timeout=STOP_CHECK if left is None else min(STOP_CHECK, left))
            except FutureTimeout:
                continue

    def _abandon(self, prepared: Prepared) -> NoReturn:
        """Stop waiting: kill the worker (it may be stuck in a mail) and give the batch up."""
        self._drop(prepared.pool, kill=True)
        log.info("stopping: the parse worker is stopped, its batch is left for the next poll")
        raise Stopped("stopping while a message was being read")

    def _drop(self, pool: ProcessPoolExecutor | None, *, kill: bool) -> None:
        """Stop `pool` (killing it when it may hang) and stop handing it work."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        if pool is not None:
            _stop(pool, kill=kill)

    def _submit(self, batch: Sequence[Prepared]) -> None:
        pool = self._pool_for(MIN_BATCH)
        if pool is None:
            return
        try:
            for prepared in batch:
                prepared.pool = pool
                prepared.future = pool.submit(_guarded, self.work, prepared.raw, prepared.options,
                                              self.backstop)
        except (BrokenProcessPool, RuntimeError) as err:
            self._give_up(str(err))
            for prepared in batch:
                prepared.pool = prepared.future = None

    def _replace(self, failed: Prepared, *, kill: bool = False, again: bool = False) -> None:
        """Drop `failed`'s worker (killing it when it hangs) and submit what it still owed of
        the last batch to a new one, `failed` itself only when it gets another chance."""
        pool = failed.pool
        self._drop(pool, kill=kill)
        owed = [p for p in (ref() for ref in self._ahead)
                if p is not None and p is not failed and p.pool is pool and _lost(p)]
        failed.pool = failed.future = None
        self._submit([failed, *owed] if again else owed)

    def _worker_runs(self, options: Options) -> bool:
        """Whether a worker can run at all: it has before, or a fresh one reads a canary."""
        if self._proven:
            return True
        canary = Prepared(CANARY, options, self)
        self._submit([canary])
        if canary.future is None:
            return False
        try:
            canary.future.result(timeout=self._limit(canary))
        except Exception:  # noqa: BLE001 - whatever broke, the worker is not usable
            self._replace(canary, kill=True)
            return False
        self._proven, self._warm = True, canary.pool
        return True

    def _limit(self, prepared: Prepared) -> float | None:
        """How long to wait for a mail: a new worker's start-up does not count against it."""
        if not self.timeout:
            return None
        return self.timeout + (0.0 if prepared.pool is self._warm else STARTUP_GRACE)

    def _pool_for(self, size: int) -> ProcessPoolExecutor | None:
        if self.workers < 1 or (size < MIN_BATCH and not self.timeout):
            return None
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 initializer=_start_worker, initargs=(os.getpid(),))
            return self._pool

    def _give_up(self, reason: str) -> None:
        log.warning("parse worker unusable (%s); parsing in process from now on", reason)
        self.workers = 0
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool, kill=True)

    def close(self) -> None:
        """Stop the worker: it may finish the mail in hand (CLOSE_GRACE); one stuck in a mail
        is killed, so a Ctrl-C or a SIGTERM never waits on it (nor does the interpreter's exit)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(CLOSE_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
        pool.shutdown(wait=True)


@dataclass(eq=False)
class Prepared:
    """One message's parse and classification, done ahead (`future`) or on demand."""

    raw: bytes
    options: Options
    preparer: Preparer | None = None
    future: Future[tuple[Mail, Classification]] | None = None
    pool: ProcessPoolExecutor | None = None  # the worker `future` waits for
    error: ParseError | None = None  # set aside by the watchdog: never read again
    stop: Stop | None = None  # the batch's: set, the result is not waited for

    def result(self) -> tuple[Mail, Classification]:
        """The parse (again, when a batch is redone); a mail set aside raises its ParseError
        every time, never to be read in process, where nothing could cut it off."""
        if self.error is not None:
            raise self.error
        if self.preparer is None:
            return prepare(self.raw, self.options)
        return self.preparer.result(self)

    def set_aside(self, reason: str) -> ParseError:
        self.error = ReadingAborted(reason)
        return self.error


def _stop(pool: ProcessPoolExecutor, *, kill: bool) -> None:
    """Shut a worker down; `kill` first for one that hangs (its pending work fails)."""
    if kill:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
    pool.shutdown(wait=kill, cancel_futures=True)


def _lost(prepared: Prepared) -> bool:
    """Whether a message's result went down with its worker (or never came)."""
    future = prepared.future
    return (future is None or not future.done() or future.cancelled()
            or isinstance(future.exception(), BrokenProcessPool))


def _usable_cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _guarded(work: Work, raw: bytes, options: Options, backstop: float) -> tuple[Mail, Classification]:
    """`work` in the worker, which the kernel ends if it is still at it after `backstop`
    seconds: SIGALRM keeps its default action, so this works even when the parse is stuck
    in C code holding the GIL, and the robot that should have killed it is gone."""
    if backstop:
        signal.alarm(math.ceil(backstop))
    try:
        return work(raw, options)
    finally:
        if backstop:
            signal.alarm(0)


def _start_worker(robot: int) -> None:
    # The robot decides when the worker stops (pool shutdown); a Ctrl-C or a SIGTERM to
    # the process group must not kill it under a batch in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # `_guarded`'s backstop ends the process
    # The worker holds both ends of its task queue, so a robot killed with SIGKILL would
    # leave it waiting for ever: it leaves when its parent is no longer the robot.
    threading.Thread(target=_leave_with, args=(robot,), name="robot-watch", daemon=True).start()


def _leave_with(robot: int) -> None:
    while os.getppid() == robot:
        time.sleep(1.0)
    os._exit(0)
