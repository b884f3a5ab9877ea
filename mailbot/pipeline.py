"""The intake pipeline of one message: the only module that knows the order of its stages.

    known? ─► parse ─► classify ─► match ─► route ─► decide ─► record + queue replies

inside the caller's transaction. The mailbox around it (fetch in batches, one transaction
per batch, move in IMAP) is `poll_cycle`; the outbox sender sends the replies.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import candidates, store
from .addresses import record_bounce, undeliverable_among
from .db import Case, Message
from .decide import MAX_OVERVIEW, CaseView, RoutingOutcome, decide
from .errors import ParseError, ReadingAborted
from .match import find_references
from .match_model import Found
from .matching_stage import MatchingStage, Result as MatchResult
from .model import Address, Classification, Decision, Kind, Mail, Match
from .prepare import Options, Prepared, Preparer
from .recipients import reply_recipient
from .record import Source, add_receipt, apply_decision, quarantine, write_rows
from .replies import queue_reply
from .routing_stage import RoutedComplaint, RoutingStage
from .staff_notice import queue_notices
from .unreadable import Notice, header_for_staff, notice

log = logging.getLogger("mailbot.intake")

def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Outcome:
    disposition: str  # processed | quarantined | duplicate | known
    kind: str = ""
    case_ref: str | None = None
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What the robot would do with one message, before anything is written."""

    matched: MatchResult  # the match and every candidate considered
    case: Case | None  # the case it joins
    routed: RoutedComplaint | None  # for a new case: the rules' verdict and the investigator
    decision: Decision

    @property
    def match(self) -> Match:
        return self.matched.match


class Intake:
    """Processes raw messages into cases; built by `app.create_app`."""

    def __init__(self, settings, sessions: sessionmaker, routing: RoutingStage, renderer,
                 *, clock: Callable[[], datetime] = utcnow, preparer: Preparer | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.routing = routing
        self.renderer = renderer
        self.clock = clock
        self.preparer = preparer or Preparer(workers=0)
        self.matching = MatchingStage(settings, routing, clock=clock)
        self.own_addresses = frozenset({settings.smtp.from_address.lower(),
                                        settings.imap.username.lower()})
        self.prepare_options = Options(settings.limits.max_message_bytes, self.own_addresses,
                                       settings.default_language)

    # -- one message -------------------------------------------------------------------
    def process(self, session: Session, raw: bytes, source: Source | None = None, *,
                quiet: bool = False, known_new: bool = False,
                prepared: Prepared | None = None) -> Outcome:
        """Handle one message inside the caller's transaction (no commit here).

        `quiet` (importing old mail) records everything but queues no reply;
        `known_new` says the caller already checked that `source` has no receipt;
        `prepared` carries its parse and classification, done ahead (`prepare`).
        """
        if (source is not None and not known_new
                and store.receipt(session, source.mailbox, source.uidvalidity, source.uid) is not None):
            return Outcome("known")
        sha = store.content_sha(raw)
        now = self.clock()
        try:
            mail, classification = (prepared or Prepared(raw, self.prepare_options)).result()
        except ParseError as err:
            existing = store.incoming_by_identity(session, "", sha, "")
            if existing is not None:  # seen before; unreadable mail goes back to quarantine
                disposition = "quarantined" if existing.kind == str(Kind.UNREADABLE) else "duplicate"
                add_receipt(session, source, existing, disposition)
                return Outcome(disposition, existing.kind)
            # A mail whose reading was cut off is not read again here, not even its headers.
            aborted = isinstance(err, ReadingAborted)
            quarantined = quarantine(session, raw, sha, source, str(err), now=now,
                                     header=None if aborted else header_for_staff(raw))
            actions = ["quarantine"]
            if not quiet and not aborted:
                status = self._queue_notice(session, raw, now, quarantined)
                if status is not None:
                    actions.append(f"{status}:undeliverable")
            return Outcome("quarantined", str(Kind.UNREADABLE), actions=tuple(actions))
        sender = mail.from_.email if mail.from_ else ""
        existing = store.incoming_by_identity(session, mail.message_id, sha, sender, raw)
        # A mail quarantined after a processing failure and moved back to the inbox by
        # staff (once the cause is fixed) is processed again.
        if existing is not None and existing.kind != str(Kind.UNREADABLE):
            add_receipt(session, source, existing, "duplicate")
            store.add_event(session, "duplicate_copy", message=existing, sha256=sha)
            return Outcome("duplicate", existing.kind)
        if existing is not None:  # its own quarantine row, read now: it frees the identity
            # (found by content: the mail has no Message-ID, or the row is an older one with it)
            store.free_quarantine_identity(session, existing.id)
        return self._decide_and_record(session, mail, classification, raw, sha, source, now, quiet)

    def plan(self, session: Session, mail: Mail, classification: Classification,
             now: datetime) -> Plan:
        """Match, route and decide, without writing anything (`rules explain` shows this)."""
        classification = self.matching.for_complainant(mail, classification)
        matched = self.matching.match_explained(session, mail, classification)
        match = matched.match
        case_row = session.get(Case, match.case_id) if match.case_id is not None else None
        case_view = (CaseView(case_row.ref, case_row.citizen_email, case_row.language,
                              frozenset(case_row.flags), case_row.status) if case_row else None)
        from_staff = self.matching.from_staff(mail, classification)
        recipient = self.recipient(session, mail, classification)
        own_cases = (self.open_cases_on_file(session, recipient.email)
                     if case_row is None and recipient is not None and classification.kind is Kind.STATUS_REQUEST
                     else ())
        routed = None
        # A colleague's mail opens no case (`decide`): nothing to route.
        if case_row is None and not classification.is_automatic and not from_staff:
            # A mail that opens a case is a new complaint for routing, even when it
            # forwards the agency's letter or comes referred by another service.
            as_new = dataclasses.replace(classification, kind=Kind.NEW_COMPLAINT)
            routed = self.routing.route(session, mail, as_new, now, flags=frozenset(match.flags))
        decision = decide(mail, classification, match, recipient=recipient, case=case_view,
                          routing=routed.outcome if routed else RoutingOutcome(),
                          investigator=routed.investigator if routed else None,
                          agency_in_copy=self.routing.agency_in_copy(
                              mail, case_view.language if case_view else classification.language),
                          own_cases=own_cases, from_staff=from_staff)
        return Plan(matched, case_row, routed, decision)

    def open_cases_on_file(self, session: Session, email: str) -> tuple[CaseView, ...]:
        """The cases not closed whose address on file is `email`, oldest first, one more than a
        status overview lists (decide: "Is er al nieuws?" that names none of them)."""
        rows = session.execute(select(Case).where(Case.citizen_email == email, Case.status != "closed")
                               .order_by(Case.created_at, Case.id).limit(MAX_OVERVIEW + 1)).scalars()
        return tuple(CaseView(c.ref, c.citizen_email, c.language, frozenset(c.flags), c.status) for c in rows)

    def _decide_and_record(self, session: Session, mail: Mail, classification: Classification,
                           raw: bytes, sha: str, source: Source | None, now: datetime,
                           quiet: bool = False) -> Outcome:
        # A referral by another service is the citizen's complaint: read as the citizen's text.
        classification = self.matching.for_complainant(mail, classification)
        planned = self.plan(session, mail, classification, now)
        match, decision = planned.match, planned.decision
        case, message = apply_decision(session, mail, decision, classification, raw=raw,
                                       sha256=sha, source=source,
                                       prefix=self.settings.office.reference_prefix, now=now,
                                       tz=self.settings.schedule.timezone)
        if classification.bounce is not None and "undeliverable" in decision.flags:
            record_bounce(session, classification.bounce,
                          fallback_email=case.citizen_email if case else "", now=now)
        # The first reaction is set before the case row is written (one INSERT, no UPDATE)
        # and taken back below when no reply was queued after all.
        provisional = (case is not None and case.first_reaction_at is None
                       and bool(decision.replies) and not quiet)
        if provisional and case is not None:
            case.first_reaction_at = now
        review = self.matching.complete(session, case, message, mail, match)
        write_rows(session, case, message)
        self.matching.remember(session, case, message, mail, match, review)
        statuses = []
        if quiet and decision.replies:
            store.add_event(session, "replies_suppressed", case=case,
                            templates=[r.template for r in decision.replies], reason="import")
        for reply in () if quiet else decision.replies:
            statuses.append(queue_reply(session, self.settings, self.renderer, reply, case=case,
                                        mail=mail, now=now, message=message))
        if provisional and case is not None and "pending" not in statuses:
            case.first_reaction_at = None  # held or skipped: staff still have to react
        if not quiet and decision.notify:  # staff mail, after the citizen's replies: not a first reaction
            queue_notices(session, self.settings, self.renderer.templates, case=case, mail=mail,
                          notify=decision.notify, fired=planned.routed.routing.fired if planned.routed else (),
                          rules=self.routing.ruleset.routing, now=now)
        actions = [f"{status or 'skipped'}:{reply.template}"
                   for status, reply in zip(statuses, decision.replies)]
        if decision.open_case:
            actions.insert(0, "open_case")
        elif case is not None:
            actions.insert(0, "thread")
        return Outcome("processed", str(decision.kind), case.ref if case else None, tuple(actions))

    def unreadable_notice(self, session: Session, raw: bytes) -> Notice | None:
        """The notice that tells the sender of an unreadable mail it did not arrive, with the
        mail's headers and the citizen's case it names, or None (`unreadable.notice`);
        `rules explain` shows it too."""
        return notice(raw, max_bytes=self.settings.limits.max_message_bytes,
                      own_addresses=self.own_addresses, default_language=self.settings.default_language,
                      recipient=lambda mail, classification: self.recipient(session, mail, classification),
                      cases=lambda mail: self._cases_in_headers(session, mail))

    def _cases_in_headers(self, session: Session, mail: Mail) -> Found:
        """The cases a header block points to, by the look-ups matching uses: our reference in
        the Subject, and In-Reply-To/References to a message of a case."""
        refs = find_references(mail.subject, "", self.settings.office.reference_prefix)
        return Found(by_reference=candidates.by_refs(session, refs),
                     by_thread=candidates.by_message_ids(session, [*mail.in_reply_to, *reversed(mail.references)]))

    def _queue_notice(self, session: Session, raw: bytes, now: datetime, quarantined: Message) -> str | None:
        found = self.unreadable_notice(session, raw)
        if found is None:
            return None
        case = session.get(Case, found.case.case_id) if found.case is not None else None
        if case is not None:  # the citizen's own case: staff find the unreadable mail on it
            quarantined.case_id = case.id
            store.add_event(session, "quarantined_on_case", case=case, message=quarantined)
        return queue_reply(session, self.settings, self.renderer, found.reply, case=case, mail=found.mail,
                           now=now, message=quarantined)

    def recipient(self, session: Session, mail: Mail, classification: Classification) -> Address | None:
        """Whom an automatic reply to `mail` goes to, or None (`recipients.reply_recipient`);
        never one of the office's own staff."""
        if self.matching.from_staff(mail, classification):
            return None
        return reply_recipient(mail, classification, own_addresses=self.own_addresses,
                               webform_senders=self.settings.webform_senders,
                               blocked=self.blocked_addresses(session, mail),
                               is_service=self.routing.is_service_address)

    def blocked_addresses(self, session: Session, mail: Mail) -> frozenset[str]:
        """Candidate reply addresses that are known to be undeliverable."""
        return undeliverable_among(session, {a.email for a in (mail.from_, *mail.reply_to) if a is not None})

def process_files(intake: Intake, raws: Iterable[bytes], *, quiet: bool = False) -> list[Outcome]:
    """Process messages that do not come from IMAP (tests, tools), one commit each."""
    outcomes = []
    for raw in raws:
        with intake.sessions.begin() as session:
            outcomes.append(intake.process(session, raw, quiet=quiet))
    return outcomes
