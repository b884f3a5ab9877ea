"""`mailbot` whose parse worker gets stuck on marked mails, for the shutdown tests:

    python tests/stuck_parser.py --config C run

A mail holding STUCK hangs the worker for an hour; the worker first writes its pid to the
file named by $STUCK_PARSER_NOTE, so a test knows when (and which process) to look at.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STUCK = b"X-Test-Parser: stuck"


def stuck(raw: bytes, options):
    """Hangs on a STUCK mail (after noting the worker's pid); parses the others."""
    from mailbot.prepare import prepare

    if STUCK in raw:
        note = os.environ.get("STUCK_PARSER_NOTE")
        if note:
            Path(note).write_text(str(os.getpid()))
        time.sleep(3600)
    return prepare(raw, options)


if __name__ == "__main__":
    import functools
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mailbot

    import mailbot.app
    from mailbot.cli import main
    from mailbot.prepare import Preparer
    from stuck_parser import stuck as work  # by module name: the spawned worker imports it so

    mailbot.app.Preparer = functools.partial(Preparer, work=work)  # type: ignore[misc]
    main()
