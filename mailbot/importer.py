"""`mailbot import`: backfill cases and threads from an old mailbox, without replying.

Sources: an mbox file (streamed: one batch in memory at a time), a Maildir, or a folder of
the configured IMAP server (read-only: nothing is moved). Every message goes through the
normal intake with `quiet=True`: cases, threads, flags and events are recorded; no reply is
queued. Each message leaves a receipt keyed by `Source(mailbox="import:<where>", uidvalidity,
uid)`, committed in batches, so an interrupted import resumes where it stopped and a second
run skips everything already done. Mail that cannot be read is quarantined (a
row with the reason, shown in the digest) and counted in the final report.
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deferred, store
from .db import Message, Receipt, database_unavailable, describe_error
from .pipeline import BATCH_BYTES
from .prepare import Prepared
from .record import Source, add_receipt, quarantine

if TYPE_CHECKING:
    from .app import App
    from .config import ImapSettings
    from .pipeline import Outcome

log = logging.getLogger("mailbot.import")



class Progress(Protocol):
    """What the import loop reports to (the CLI's progress bar)."""

    def update(self, count: int, position: int) -> None: ...
    def finish(self) -> None: ...


# (uid, raw bytes, position for the progress bar)
Item = tuple[int, bytes, int]

_DATE = re.compile(rb"^Date:[ \t]*(.+(?:\r?\n[ \t].*)*)", re.I | re.M)
_FROM_QUOTED = re.compile(rb"^>+From ")


@dataclass
class ImportReport:
    seen: int = 0
    skipped: int = 0          # done by an earlier run
    outcomes: Counter[str] = field(default_factory=Counter)   # processed/duplicate/quarantined
    kinds: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)   # quarantine reasons, abridged
    opened: int = 0           # new cases
    joined: int = 0           # messages threaded into an existing case
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.seen - self.skipped) / self.seconds if self.seconds else 0.0


class ImportClock:
    """The intake's clock during an import: the mail's own Date, so old cases keep their dates."""

    def __init__(self) -> None:
        self.current: datetime | None = None

    def __call__(self) -> datetime:
        return self.current or datetime.now(timezone.utc)

    def set_from(self, raw: bytes) -> None:
        now = datetime.now(timezone.utc)
        self.current = None
        head = raw[:65536].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        found = _DATE.search(head)
        if not found:
            return
        try:
            when = parsedate_to_datetime(found.group(1).decode("ascii", "replace").strip())
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        if datetime(1990, 1, 1, tzinfo=timezone.utc) <= when <= now:
            self.current = when.astimezone(timezone.utc)


# -- sources ---------------------------------------------------------------------------


def iter_mbox(handle: BinaryIO) -> Iterator[Item]:
    """Messages of an mbox stream, in order, `>From ` lines unescaped (mboxrd).

    Each is numbered by its content (`content_uid`), not its position: a mail client that
    compacts the file or appends to it between two runs shifts the positions, and a resumed
    import would take new mail at an old position for mail it already has.
    """
    started, blank_before, position = False, True, 0
    lines: list[bytes] = []
    for line in handle:
        if line.startswith(b"From ") and blank_before:
            if started:
                raw = _join(lines)
                yield content_uid(raw), raw, position
            started, lines = True, []
        elif started:
            lines.append(line[1:] if _FROM_QUOTED.match(line) else line)
        position += len(line)
        blank_before = line in (b"\n", b"\r\n")
    if started:
        raw = _join(lines)
        yield content_uid(raw), raw, position


def content_uid(raw: bytes) -> int:
    """A stable 63-bit number for a message's bytes."""
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") >> 1


def _join(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]  # the separator line before the next "From "
    return b"".join(lines)


def maildir_uid(key: str) -> int:
    """A stable 63-bit number for a Maildir file: its unique name, without the flags."""
    unique = key.split(":", 1)[0]
    return int.from_bytes(hashlib.sha256(unique.encode()).digest()[:8], "big") >> 1


def maildir_items(path: Path) -> tuple[int, Iterator[Item]]:
    box = mailbox.Maildir(path, factory=None, create=False)
    keys = sorted(box.keys())

    def items() -> Iterator[Item]:
        for number, key in enumerate(keys, 1):
            with box.get_file(key) as handle:
                yield maildir_uid(key), handle.read(), number

    return len(keys), items()


def imap_items(settings: ImapSettings, folder: str) -> tuple[str, int, int, Iterator[Item], Callable[[], None]]:
    """(name, uidvalidity, count, items, close) for an IMAP folder opened read-only."""
    from .fetch import connect_imap, mailbox_name

    client = connect_imap(settings)
    selected = client.select_folder(folder, readonly=True)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    uids = sorted(client.search(["ALL"]))
    name = mailbox_name(settings.model_copy(update={"folder": folder}))

    def items() -> Iterator[Item]:
        for start in range(0, len(uids), 100):
            chunk = uids[start:start + 100]
            response = client.fetch(chunk, ["BODY.PEEK[]"])
            for number, uid in enumerate(chunk, start + 1):
                data = response.get(uid, {}).get(b"BODY[]")
                if data is not None:
                    yield uid, bytes(data), number

    def close() -> None:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may be gone
            pass

    return name, uidvalidity, len(uids), items(), close


# -- the import loop -------------------------------------------------------------------


class Importer:
    """Feeds messages through the intake in quiet mode, a batch per transaction."""

    def __init__(self, app: App, clock: ImportClock, *, batch_size: int = 200,
                 progress: Progress | None = None) -> None:
        self.app = app
        self.clock = clock
        self.batch_size = batch_size
        self.progress = progress

    def done_uids(self, name: str, uidvalidity: int) -> set[int]:
        with self.app.sessions() as session:
            query = select(Receipt.uid).where(Receipt.mailbox == name, Receipt.uidvalidity == uidvalidity)
            return set(session.execute(query).scalars())

    def run(self, name: str, uidvalidity: int, items: Iterator[Item]) -> ImportReport:
        """Import every item not done before; commit every `batch_size` messages (or
        BATCH_BYTES of mail, whichever comes first)."""
        report = ImportReport()
        started = time.monotonic()
        done = self.done_uids(name, uidvalidity)
        batch: list[tuple[Source, bytes]] = []
        held = 0
        try:
            for uid, raw, position in items:
                report.seen += 1
                if uid in done:  # imported before, or the same bytes twice in one mbox
                    report.skipped += 1
                else:
                    done.add(uid)
                    batch.append((Source(name, uidvalidity, uid), raw))
                    held += len(raw)
                    if len(batch) >= self.batch_size or held >= BATCH_BYTES:
                        _merge(report, self._record(batch))
                        batch, held = [], 0
                if self.progress is not None:
                    self.progress.update(report.seen, position)
            if batch:
                _merge(report, self._record(batch))
        except KeyboardInterrupt:
            report.interrupted = True  # the batch in flight is rolled back; committed ones stay
        finally:
            report.seconds = time.monotonic() - started
            if self.progress is not None:
                self.progress.finish()
        return report

    def _record(self, batch: list[tuple[Source, bytes]]) -> ImportReport:
        """One transaction for the batch, without a savepoint per message (two statements
        and a flush fewer each); when a message fails, the batch is rolled back and recorded
        again with a savepoint per message, so only that one is quarantined. The batch is
        parsed ahead in the parse worker, also the watchdog for mail whose reading hangs."""
        intake = self.app.intake
        todo = list(zip(batch, intake.preparer.batch([raw for _, raw in batch], intake.prepare_options)))
        counted = ImportReport()
        try:
            with self.app.sessions.begin() as session:
                store.lock_identities(session, (raw for _, raw in batch))
                for (source, raw), prepared in todo:
                    self.clock.set_from(raw)
                    outcome = intake.process(session, raw, source, quiet=True, prepared=prepared)
                    _count(session, outcome, counted)
            return counted
        except Exception as err:  # noqa: BLE001 - find the failing message below
            if database_unavailable(err):
                raise  # the database is gone: stop; the committed batches stay
            log.info("import batch rolled back after %s; redone with a savepoint per message",
                     type(err).__name__)
        counted = ImportReport()
        with self.app.sessions.begin() as session:
            store.lock_identities(session, (raw for _, raw in batch))
            for (source, raw), prepared in todo:
                self._one(session, source, raw, counted, prepared)
        return counted

    def _one(self, session: Session, source: Source, raw: bytes, pending: ImportReport,
             prepared: Prepared | None = None) -> None:
        self.clock.set_from(raw)
        try:
            with deferred.savepoint(session):
                outcome = self.app.intake.process(session, raw, source, quiet=True, prepared=prepared)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop the import
            if database_unavailable(err):
                raise
            reason = f"processing failed: {describe_error(err)}"
            log.debug("import %s uid=%s: %s\n%s", source.mailbox, source.uid, reason,
                      traceback.format_exc(limit=5))
            sha = hashlib.sha256(raw).hexdigest()
            with deferred.savepoint(session):
                existing = store.incoming_by_identity(session, "", sha, "")
                if existing is None:
                    quarantine(session, raw, sha, source, reason, now=self.clock())
                else:
                    add_receipt(session, source, existing, "quarantined")
            pending.outcomes["quarantined"] += 1
            pending.problems[_abridge(reason)] += 1
            return
        _count(session, outcome, pending)


def _count(session: Session, outcome: Outcome, counted: ImportReport) -> None:
    counted.outcomes[outcome.disposition] += 1
    counted.kinds[outcome.kind or "-"] += 1
    if outcome.disposition == "quarantined":
        counted.problems[_abridge(_last_reason(session))] += 1
    if "open_case" in outcome.actions:
        counted.opened += 1
    elif outcome.case_ref:
        counted.joined += 1


def _merge(report: ImportReport, batch: ImportReport) -> None:
    report.outcomes.update(batch.outcomes)
    report.kinds.update(batch.kinds)
    report.problems.update(batch.problems)
    report.opened += batch.opened
    report.joined += batch.joined


def _last_reason(session: Session) -> str:
    row = session.execute(select(Message.quarantine_reason).where(Message.quarantine_reason.is_not(None))
                          .order_by(Message.id.desc()).limit(1)).scalar()
    return row or "unreadable"


def _abridge(reason: str) -> str:
    """Group similar reasons: numbers removed, first line, 100 characters."""
    first = reason.splitlines()[0] if reason else "unknown"
    return re.sub(r"\d+", "N", first)[:100]


def report_lines(report: ImportReport, where: str) -> list[str]:
    done = report.seen - report.skipped
    lines = [f"{'interrupted' if report.interrupted else 'imported'} {where}: {report.seen} messages read, "
             f"{report.skipped} already imported, {report.outcomes['processed']} recorded, "
             f"{report.outcomes['duplicate']} duplicates, {report.outcomes['quarantined']} could not be read; "
             f"{report.opened} new cases, {report.joined} joined a case; "
             f"{done} in {report.seconds:.1f} s ({report.rate:.0f} msg/s); "
             "no reply was sent"]
    if report.kinds:
        lines.append("  by kind: " + ", ".join(f"{k} {n}" for k, n in report.kinds.most_common()))
    if report.problems:
        lines.append("  could not read (quarantined, listed in the digest):")
        lines += [f"    {n} × {reason}" for reason, n in report.problems.most_common(10)]
    if report.interrupted:
        lines.append("  run the same command again to resume: finished batches are kept")
    return lines
