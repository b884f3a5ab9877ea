"""`mailbot import`: backfill cases and threads from an old mailbox, without replying.

Sources (`import_sources`): an mbox file (streamed: one batch in memory at a time) or a
file holding one message, a Maildir, or a folder of the configured IMAP server (read-only:
nothing is moved). Every message goes through the normal intake with `quiet=True`: cases,
threads, flags and events are recorded; no reply is queued. Each message leaves a receipt
keyed by `Source(mailbox="import:<where>", uidvalidity, uid)`, committed in batches, so an
interrupted import resumes where it stopped and a second run skips everything already done.
Mail that cannot be read, or is over `limits.max_message_bytes` (only its head is read),
is quarantined (a row with the reason, shown in the digest) and counted in the final
report; a Maildir entry that cannot be opened at all is named, counted and skipped.
The cases an import opens are the office's past work (`imported_cases`): marked with their
source, and at the end of a complete import closed when their last message is older than
the cut-off; cases other imports opened, or staff reopened, are left alone.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deferred, locks, store
from .db import Message, Receipt
from .db_engine import database_unavailable, describe_error, lock_conflict
from .import_sources import Item
from .imported_cases import Closing, close_old_imported, mark_imported, source_key
from .poll_cycle import BATCH_BYTES
from .prepare import Prepared
from .record import Source, add_receipt, quarantine
from .unreadable import header_for_staff

if TYPE_CHECKING:
    from .app import App
    from .pipeline import Outcome

log = logging.getLogger("mailbot.import")
CONFLICT_TRIES = 5  # a batch that loses a lock conflict is recorded again, up to this often
UNOPENED_LISTED = 10  # names of unopened entries kept for the report


class Progress(Protocol):
    """What the import loop reports to (the CLI's progress bar)."""

    def update(self, count: int, position: int) -> None: ...
    def finish(self) -> None: ...


_DATE = re.compile(rb"^Date:[ \t]*(.+(?:\r?\n[ \t].*)*)", re.I | re.M)


@dataclass
class ImportReport:
    seen: int = 0
    skipped: int = 0          # done by an earlier run
    outcomes: Counter[str] = field(default_factory=Counter)   # processed/duplicate/quarantined
    kinds: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)   # quarantine reasons, abridged
    opened: int = 0           # new cases
    joined: int = 0           # messages threaded into an existing case
    unopened: int = 0         # entries that could not be read at all (skipped, no receipt)
    unopened_names: list[str] = field(default_factory=list)  # the first UNOPENED_LISTED, why
    closing: Closing | None = None  # imported cases closed or kept open at the end (`imported_cases`)
    closed_before: datetime | None = None  # ... as their last message came before this, or not
    opened_refs: list[str] = field(default_factory=list)  # of one batch: to be marked imported
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


# -- the import loop -------------------------------------------------------------------


class Importer:
    """Feeds messages through the intake in quiet mode, a batch per transaction."""

    def __init__(self, app: App, clock: ImportClock, *, batch_size: int = 200,
                 progress: Progress | None = None) -> None:
        self.app = app
        self.clock = clock
        self.batch_size = batch_size
        self.progress = progress
        self.max_bytes = app.settings.limits.max_message_bytes
        self.source = ""  # `imported_cases.source_key` of the source `run` reads

    def done_uids(self, name: str, uidvalidity: int) -> set[int]:
        with self.app.sessions() as session:
            query = select(Receipt.uid).where(Receipt.mailbox == name, Receipt.uidvalidity == uidvalidity)
            return set(session.execute(query).scalars())

    def run(self, name: str, uidvalidity: int, items: Iterator[Item]) -> ImportReport:
        """Import every item not done before; commit every `batch_size` messages (or
        BATCH_BYTES of mail, whichever comes first)."""
        report = ImportReport()
        started = time.monotonic()
        self.source = source_key(name, uidvalidity)
        done = self.done_uids(name, uidvalidity)
        batch: list[tuple[Source, Item]] = []
        held = 0
        try:
            for item in items:
                report.seen += 1
                if item.problem:
                    _unopened(report, item.problem)
                elif item.uid in done:  # imported before, or the same bytes twice in one mbox
                    report.skipped += 1
                else:
                    done.add(item.uid)
                    batch.append((Source(name, uidvalidity, item.uid), item))
                    held += len(item.raw)
                    if len(batch) >= self.batch_size or held >= BATCH_BYTES:
                        _merge(report, self._record_again_on_conflict(batch))
                        batch, held = [], 0
                if self.progress is not None:
                    self.progress.update(report.seen, item.position)
            if batch:
                _merge(report, self._record_again_on_conflict(batch))
        except KeyboardInterrupt:
            report.interrupted = True  # the batch in flight is rolled back; committed ones stay
        finally:
            report.seconds = time.monotonic() - started
            if self.progress is not None:
                self.progress.finish()
        return report

    def close_old_cases(self, before: datetime) -> Closing:
        """Close the cases the import of this source opened whose last message came before
        `before`, keep the others open (`imported_cases`); run once the import is complete."""
        return close_old_imported(self.app.sessions, self.source, before=before, now=datetime.now(timezone.utc))

    def _record_again_on_conflict(self, batch: list[tuple[Source, Item]]) -> ImportReport:
        """`_record`, tried again when the batch lost a conflict with another writer: an
        import of years of mail runs beside the robot, whose batches hold locks the import
        waits for (`lock_timeout`) or deadlocks with. A database that is gone stops it."""
        attempt = 1
        while True:
            try:
                return self._record(batch)
            except Exception as err:  # noqa: BLE001 - only a conflict is tried again
                if not lock_conflict(err) or attempt == CONFLICT_TRIES:
                    raise
                log.warning("import batch rolled back after a conflict with another writer, tried again "
                            "(%d of %d): %s", attempt + 1, CONFLICT_TRIES, describe_error(err))
                time.sleep(attempt)  # the other writer's batch commits meanwhile
                attempt += 1

    def _record(self, batch: list[tuple[Source, Item]]) -> ImportReport:
        """One transaction for the batch, without a savepoint per message (two statements
        and a flush fewer each); when a message fails, the batch is rolled back and recorded
        again with a savepoint per message, so only that one is quarantined. The batch is
        parsed ahead in the parse worker, also the watchdog for mail whose reading hangs;
        mail over the size limit is not parsed: it is quarantined as too large."""
        intake = self.app.intake
        readable = [item.raw for _, item in batch if not self._too_large(item)]
        ahead = iter(intake.preparer.batch(readable, intake.prepare_options))
        todo = [(source, item, None if self._too_large(item) else next(ahead)) for source, item in batch]
        counted = ImportReport()
        try:
            with self.app.sessions.begin() as session:
                locks.lock_identities(session, readable)
                for source, item, prepared in todo:
                    self.clock.set_from(item.raw)
                    if prepared is None:
                        self._quarantine(session, source, item, self._size_reason(item), counted)
                        continue
                    outcome = intake.process(session, item.raw, source, quiet=True, prepared=prepared)
                    _count(session, outcome, counted)
                mark_imported(session, counted.opened_refs, self.source)
            return counted
        except Exception as err:  # noqa: BLE001 - find the failing message below
            if database_unavailable(err):
                raise  # the database is gone: stop; the committed batches stay
            log.info("import batch rolled back after %s; redone with a savepoint per message",
                     type(err).__name__)
        counted = ImportReport()
        with self.app.sessions.begin() as session:
            locks.lock_identities(session, readable)
            for source, item, prepared in todo:
                self._one(session, source, item, counted, prepared)
            mark_imported(session, counted.opened_refs, self.source)
        return counted

    def _one(self, session: Session, source: Source, item: Item, pending: ImportReport,
             prepared: Prepared | None) -> None:
        self.clock.set_from(item.raw)
        if prepared is None:
            self._quarantine(session, source, item, self._size_reason(item), pending)
            return
        try:
            with deferred.savepoint(session):
                outcome = self.app.intake.process(session, item.raw, source, quiet=True, prepared=prepared)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop the import
            if database_unavailable(err):
                raise
            reason = f"processing failed: {describe_error(err)}"
            log.debug("import %s uid=%s: %s\n%s", source.mailbox, source.uid, reason,
                      traceback.format_exc(limit=5))
            with deferred.savepoint(session):
                self._quarantine(session, source, item, reason, pending)
            return
        _count(session, outcome, pending)

    def _too_large(self, item: Item) -> bool:
        return item.size > self.max_bytes

    def _size_reason(self, item: Item) -> str:
        # The wording of the parser's own limit (parse_message), which a poll quarantines with.
        return f"message of {item.size} bytes exceeds the limit of {self.max_bytes}"

    def _quarantine(self, session: Session, source: Source, item: Item, reason: str,
                    pending: ImportReport) -> None:
        """Quarantine `item` (of a message too large to read, only its head is kept, with its
        true size), or receipt it to the quarantined copy already there. Dated now, not by
        the mail's Date: the digest lists what was quarantined on its day."""
        sha = store.content_sha(item.raw)
        existing = store.incoming_by_identity(session, "", sha, "")
        if existing is None:
            message = quarantine(session, item.raw, sha, source, reason, now=datetime.now(timezone.utc),
                                 header=header_for_staff(item.raw))
            message.size = item.size
        else:
            add_receipt(session, source, existing, "quarantined")
        pending.outcomes["quarantined"] += 1
        pending.kinds["unreadable"] += 1
        pending.problems[_abridge(reason)] += 1


def _unopened(report: ImportReport, problem: str) -> None:
    log.warning("import: skipped, could not be read: %s", problem)
    report.unopened += 1
    if len(report.unopened_names) < UNOPENED_LISTED:
        report.unopened_names.append(problem)


def _count(session: Session, outcome: Outcome, counted: ImportReport) -> None:
    counted.outcomes[outcome.disposition] += 1
    counted.kinds[outcome.kind or "-"] += 1
    if outcome.disposition == "quarantined":
        counted.problems[_abridge(_redate_last_quarantined(session))] += 1
    if "open_case" in outcome.actions:
        counted.opened += 1
        if outcome.case_ref:
            counted.opened_refs.append(outcome.case_ref)
    elif outcome.case_ref:
        counted.joined += 1


def _merge(report: ImportReport, batch: ImportReport) -> None:
    report.outcomes.update(batch.outcomes)
    report.kinds.update(batch.kinds)
    report.problems.update(batch.problems)
    report.opened += batch.opened
    report.joined += batch.joined


def _redate_last_quarantined(session: Session) -> str:
    """The reason of the message the pipeline just quarantined, which is re-dated to now: the
    import's clock dated it by its own Date, so the digest would never list it and retention
    would empty it before anyone looked (as `_quarantine` does for mail too large to read)."""
    message = session.execute(select(Message).where(Message.quarantine_reason.is_not(None))
                              .order_by(Message.id.desc()).limit(1)).scalar()
    if message is None:
        return "unreadable"
    message.received_at = datetime.now(timezone.utc)
    return message.quarantine_reason or "unreadable"


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
    if report.unopened:
        lines.append(f"  {report.unopened} could not be opened, skipped (run the import again once they can be read):")
        lines += [f"    {name}" for name in report.unopened_names]
        if report.unopened > len(report.unopened_names):
            lines.append(f"    … and {report.unopened - len(report.unopened_names)} more (see the warnings)")
    if report.closing is not None and report.closed_before is not None:
        lines.append(f"  {report.closing.closed} imported cases closed: their last message is from before "
                     f"{report.closed_before:%Y-%m-%d} (--open-after), {report.closing.kept_open} newer ones "
                     "stay open; cases an earlier import decided about, or staff reopened, are left alone")
    if report.interrupted:
        lines.append("  run the same command again to resume: finished batches are kept; "
                     "old imported cases are closed once the import is complete")
    return lines
