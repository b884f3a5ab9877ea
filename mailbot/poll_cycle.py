"""One poll cycle over one mailbox: fetch the inbox in batches, record each batch, move it.

    fetch ─► record (one transaction per batch; a savepoint per message only when the
             batch is redone around a failing message) ─► move in IMAP

A message leaves the inbox only after its rows are committed. A batch is first recorded in
one transaction; when a message fails, the batch is rolled back and recorded again with a
savepoint per message, so the failing one is quarantined with the reason and the others go
on. What happens to one message is `pipeline.Intake.process`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from . import deferred, locks, store
from .addresses import preload_undeliverable
from .db import MailboxState
from .db_engine import database_unavailable, describe_error
from .errors import FetchError
from .fetch import Mailbox
from .model import Kind
from .pipeline import Intake, Outcome
from .prepare import Prepared, Stopped
from .record import Source, add_receipt, quarantine
from .unreadable import header_for_staff

log = logging.getLogger("mailbot.intake")

MAX_OUTCOMES = 1000  # outcomes kept in a PollReport; the counters count everything
BATCH_BYTES = 64 * 2**20  # a batch is cut at this much mail, however few messages (poll and import)


@dataclass
class PollReport:
    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    duplicates: int = 0
    moved: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    busy_mailboxes: list[str] = field(default_factory=list)  # leased by another poller


class PollCycle:
    """Polls one mailbox through `intake` (its settings name the folders)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def run(self, mailbox: Mailbox, *, stop: threading.Event | None = None) -> PollReport:
        """Fetch, process and move everything in the inbox, batch by batch.

        `stop` (set on SIGTERM) ends the cycle after the batch in flight is committed and moved;
        a batch still waiting for the parse worker then is abandoned instead: rolled back,
        nothing moved, read again at the next poll.
        """
        previous_error = self.intake.routing.last_error
        self.intake.routing.reload_if_changed()
        if self.intake.routing.last_error and self.intake.routing.last_error != previous_error:
            with self.intake.sessions.begin() as session:  # shown in the next digest
                store.add_event(session, "rules_reload_failed", error=self.intake.routing.last_error[:4000])
        elif previous_error and not self.intake.routing.last_error:
            with self.intake.sessions.begin() as session:  # the digest: the refusal was recovered
                store.add_event(session, "rules_reloaded", fingerprint=self.intake.routing.fingerprint[:12])
        report = PollReport()
        self._note_uidvalidity(mailbox)
        self._move_leftovers(mailbox, report)
        uids = mailbox.uids()
        size = self.intake.settings.imap.batch_size
        for start in range(0, len(uids), size):
            chunk = uids[start:start + size]
            for batch in split_by_bytes(chunk, mailbox.sizes(chunk), BATCH_BYTES):
                if stop is not None and stop.is_set():
                    break
                try:
                    self._run_batch(mailbox, batch, report, stop)
                except Stopped:
                    log.info("stopping: a batch of %d message(s) rolled back, left in the inbox", len(batch))
                    break
        with self.intake.sessions.begin() as session:
            state = session.get(MailboxState, mailbox.name)
            state.last_poll_at = self.intake.clock()
        return report

    def _note_uidvalidity(self, mailbox: Mailbox) -> None:
        with self.intake.sessions.begin() as session:
            state = session.get(MailboxState, mailbox.name)
            if state is None:
                session.add(MailboxState(mailbox=mailbox.name, uidvalidity=mailbox.uidvalidity))
            elif state.uidvalidity is None:  # the row was made by the lease: first poll
                state.uidvalidity = mailbox.uidvalidity
            elif state.uidvalidity != mailbox.uidvalidity:
                # The folder was recreated: old UIDs mean nothing now; the
                # Message-ID + sha256 identity still prevents double processing.
                store.add_event(session, "uidvalidity_changed", mailbox=mailbox.name,
                                old=state.uidvalidity, new=mailbox.uidvalidity)
                state.uidvalidity = mailbox.uidvalidity

    def _move_leftovers(self, mailbox: Mailbox, report: PollReport) -> None:
        """Finish the IMAP move of messages committed before a crash."""
        with self.intake.sessions.begin() as session:
            pending = store.unmoved_receipts(session, mailbox.name, mailbox.uidvalidity)
            pending_by_uid = {r.uid: (r.id, r.disposition) for r in pending}
        if pending_by_uid:
            present = set(mailbox.uids())
            self._move(mailbox, {uid: d for uid, (_, d) in pending_by_uid.items() if uid in present},
                       report)
            with self.intake.sessions.begin() as session:
                store.mark_moved(session, [rid for rid, _ in pending_by_uid.values()])

    def _run_batch(self, mailbox: Mailbox, uids: list[int], report: PollReport,
                   stop: threading.Event | None = None) -> None:
        with self.intake.sessions.begin() as session:
            known = store.receipts_for(session, mailbox.name, mailbox.uidvalidity, uids)
            dispositions = {uid: receipt.disposition for uid, receipt in known.items()}
        batch = [(Source(mailbox.name, mailbox.uidvalidity, fetched.uid), fetched.raw)
                 for fetched in mailbox.fetch([uid for uid in uids if uid not in known])]
        ahead = self.intake.preparer.batch([raw for _, raw in batch], self.intake.prepare_options, stop=stop)
        outcomes = self._record_batch(batch, ahead)
        if outcomes is None:
            outcomes = self._record_batch_isolated(batch, ahead)
        for (source, _), outcome in zip(batch, outcomes):
            report.fetched += 1
            if len(report.outcomes) < MAX_OUTCOMES:  # for the demo and tests; bounded memory
                report.outcomes.append(outcome)
            dispositions[source.uid] = outcome.disposition
            _count(report, outcome)
        self._move(mailbox, dispositions, report)
        with self.intake.sessions.begin() as session:
            receipt_ids = [r.id for r in store.receipts_for(session, mailbox.name,
                                                            mailbox.uidvalidity, uids).values()]
            store.mark_moved(session, receipt_ids)

    def _record_batch(self, batch: list[tuple[Source, bytes]],
                      ahead: list[Prepared]) -> list[Outcome] | None:
        """The whole batch in one transaction without a savepoint per message (two
        statements fewer each); None, with everything rolled back, when a message fails."""
        done: list[tuple[Outcome, float]] = []
        try:
            with self.intake.sessions.begin() as session:
                preload_undeliverable(session)
                locks.lock_identities(session, (raw for _, raw in batch))
                for (source, raw), prepared in zip(batch, ahead):
                    started = time.monotonic()
                    outcome = self.intake.process(session, raw, source, known_new=True, prepared=prepared)
                    done.append((outcome, time.monotonic() - started))
        except Exception as err:  # noqa: BLE001 - isolate the failing message below
            if _not_the_mail(err):
                raise  # the server or the database is gone: the batch stays in the inbox
            log.info("batch rolled back after %s; redone with a savepoint per message",
                     type(err).__name__)
            return None
        for (source, _), (outcome, seconds) in zip(batch, done):
            _log_outcome(source, outcome, seconds)
        return [outcome for outcome, _ in done]

    def _record_batch_isolated(self, batch: list[tuple[Source, bytes]],
                               ahead: list[Prepared]) -> list[Outcome]:
        """The batch again, a savepoint per message: a failing message is quarantined."""
        with self.intake.sessions.begin() as session:
            preload_undeliverable(session)
            locks.lock_identities(session, (raw for _, raw in batch))
            return [self.process_isolated(session, raw, source, prepared)
                    for (source, raw), prepared in zip(batch, ahead)]

    def process_isolated(self, session: Session, raw: bytes, source: Source,
                          prepared: Prepared | None = None) -> Outcome:
        started = time.monotonic()
        try:
            with deferred.savepoint(session):
                outcome = self.intake.process(session, raw, source, known_new=True, prepared=prepared)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop the batch
            if _not_the_mail(err):
                # The server or the database is gone: not this message's fault. The batch
                # is rolled back and stays in the inbox for the next poll.
                raise
            reason = f"processing failed: {describe_error(err)}"
            log.error("uid=%s quarantined: %s\n%s", source.uid, reason, traceback.format_exc(limit=5))
            with deferred.savepoint(session):
                sha = store.content_sha(raw)
                existing = store.incoming_by_identity(session, "", sha, "")
                if existing is None:
                    quarantine(session, raw, sha, source, reason, now=self.intake.clock(),
                               header=header_for_staff(raw))
                else:
                    add_receipt(session, source, existing, "quarantined")
            outcome = Outcome("quarantined", str(Kind.UNREADABLE), actions=("quarantine",))
        _log_outcome(source, outcome, time.monotonic() - started)
        return outcome

    def _move(self, mailbox: Mailbox, dispositions: dict[int, str], report: PollReport) -> None:
        imap = self.intake.settings.imap
        quarantined = sorted(uid for uid, d in dispositions.items() if d == "quarantined")
        done = sorted(uid for uid, d in dispositions.items() if d != "quarantined")
        mailbox.move(done, imap.processed_folder)
        mailbox.move(quarantined, imap.quarantine_folder)
        report.moved += len(done) + len(quarantined)


def split_by_bytes(uids: list[int], sizes: dict[int, int], limit: int) -> list[list[int]]:
    """`uids` in order, cut so that no part holds more than `limit` bytes of mail (a larger
    message goes alone): the batch is held in memory, once here and once in the parse worker."""
    parts: list[list[int]] = [[]]
    held = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if parts[-1] and held + size > limit:
            parts.append([])
            held = 0
        parts[-1].append(uid)
        held += size
    return parts if parts[0] else []


def _not_the_mail(err: BaseException) -> bool:
    """The IMAP server or the database failed, or the robot is stopping: not the message."""
    return isinstance(err, (FetchError, Stopped)) or database_unavailable(err)


def _log_outcome(source: Source, outcome: Outcome, seconds: float) -> None:
    log.info("uid=%s kind=%s case=%s actions=%s disposition=%s duration_ms=%.1f",
             source.uid, outcome.kind or "-", outcome.case_ref or "-",
             ",".join(outcome.actions) or "-", outcome.disposition, seconds * 1000)


def _count(report: PollReport, outcome: Outcome) -> None:
    if outcome.disposition == "processed":
        report.processed += 1
    elif outcome.disposition == "quarantined":
        report.quarantined += 1
    elif outcome.disposition == "duplicate":
        report.duplicates += 1
