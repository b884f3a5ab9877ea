"""Parse and classify a batch ahead of the database work, on the machine's other core.

Parsing and classifying need no database: while the intake records message i, a worker
process already reads messages i+1, i+2, … of the same batch. Results come back in
order; an exception raised for one message (a ParseError, or a bug on hostile input) is
raised again in the caller for that message only, so quarantine works as before.

The worker is started on first use (spawn: no inherited threads or connections), ignores
SIGINT/SIGTERM (the robot stops it), and leaves by itself when the robot dies. Small
batches, single-core machines and a broken worker fall back to doing it in process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from .classify import classify
from .model import Classification, Mail
from .parse import parse_message

log = logging.getLogger("mailbot.prepare")

MIN_BATCH = 16  # below this, shipping the batch to the worker costs more than it saves


@dataclass(frozen=True)
class Options:
    max_bytes: int
    own_addresses: frozenset[str]
    default_language: str


def prepare(raw: bytes, options: Options) -> tuple[Mail, Classification]:
    """Parse and classify one message (raises ParseError for unreadable mail). Pure."""
    mail = parse_message(raw, max_bytes=options.max_bytes)
    return mail, classify(mail, own_addresses=options.own_addresses,
                          default_language=options.default_language)


class Preparer:
    """Hands out `prepare` results for a batch, computed ahead in a worker process."""

    def __init__(self, *, workers: int | None = None) -> None:
        self.workers = (1 if _usable_cores() > 1 else 0) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def batch(self, raws: Sequence[bytes], options: Options) -> list[Prepared]:
        """One `Prepared` per raw message, in order; `.result()` waits for each."""
        pool = self._pool_for(len(raws))
        if pool is None:
            return [Prepared(raw, options, None) for raw in raws]
        try:
            return [Prepared(raw, options, pool.submit(prepare, raw, options)) for raw in raws]
        except (BrokenProcessPool, RuntimeError) as err:
            self._broken(err)
            return [Prepared(raw, options, None) for raw in raws]

    def _pool_for(self, size: int) -> ProcessPoolExecutor | None:
        if self.workers < 1 or size < MIN_BATCH:
            return None
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 initializer=_start_worker, initargs=(os.getpid(),))
            return self._pool

    def _broken(self, err: BaseException) -> None:
        log.warning("parse worker unusable (%s); parsing in process from now on", err)
        self.close()
        self.workers = 0

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Prepared:
    """One message's parse and classification, done ahead or on demand."""

    raw: bytes
    options: Options
    future: Future[tuple[Mail, Classification]] | None

    def result(self) -> tuple[Mail, Classification]:
        if self.future is not None:
            try:
                return self.future.result()
            except BrokenProcessPool:
                log.warning("parse worker died; parsing this message in process")
        return prepare(self.raw, self.options)


def _usable_cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _start_worker(robot: int) -> None:
    # The robot decides when the worker stops (pool shutdown); a Ctrl-C or a SIGTERM to
    # the process group must not kill it under a batch in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The worker holds both ends of its task queue, so a robot killed with SIGKILL would
    # leave it waiting for ever: it leaves when its parent is no longer the robot.
    threading.Thread(target=_leave_with, args=(robot,), name="robot-watch", daemon=True).start()


def _leave_with(robot: int) -> None:
    while os.getppid() == robot:
        time.sleep(1.0)
    os._exit(0)
