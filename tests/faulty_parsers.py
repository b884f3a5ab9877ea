"""Stand-ins for `prepare.prepare` that hang or kill the parse worker on marked mails.

Module-level functions, so the spawned worker can import them by name.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time

from mailbot.prepare import Options, prepare

HANG = b"X-Test-Parser: hang"
CRASH = b"X-Test-Parser: crash"


def _in_worker() -> bool:
    return multiprocessing.parent_process() is not None


def hang_or_crash(raw: bytes, options: Options):
    """Hangs on a HANG mail; kills the worker on a CRASH mail; parses the others."""
    if HANG in raw:
        time.sleep(3600)
    if CRASH in raw and _in_worker():
        os._exit(70)
    return prepare(raw, options)


def no_worker_runs(raw: bytes, options: Options):
    """Every worker dies at once, whatever the mail; in process it parses."""
    if _in_worker():
        os._exit(70)
    return prepare(raw, options)


_warmed_up = False


def slow_first(raw: bytes, options: Options):
    """The first mail in each worker takes 2 s longer (a worker slow to start up)."""
    global _warmed_up
    if _in_worker() and not _warmed_up:
        _warmed_up = True
        time.sleep(2)
    return prepare(raw, options)


HOG = b"X-Test-Parser: hog"


def hog_the_interpreter(raw: bytes, options: Options):
    """On a HOG mail: catastrophic backtracking in the standard `re`, which holds the GIL
    (no Python thread of the worker runs until it ends, in years)."""
    if HOG in raw:
        re.match(r"(a+)+$", "a" * 64 + "b")
    return prepare(raw, options)
