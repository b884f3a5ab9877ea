"""Matching against the database: load candidate cases with indexed queries, then
let the pure `match` module decide."""

from __future__ import annotations

from sqlalchemy.orm import Session

from . import store
from .db import Case, Message
from .match import find_references, match_message
from .model import CaseCandidate, Classification, Mail, Match


def candidate(case: Case) -> CaseCandidate:
    return CaseCandidate(case_id=case.id, ref=case.ref, citizen_email=case.citizen_email,
                         citizen_name=case.citizen_name, subject=case.subject, status=case.status,
                         created_at=case.created_at)


class MatchingStage:
    def __init__(self, settings, routing) -> None:
        self.settings = settings
        self.routing = routing

    def match(self, session: Session, mail: Mail, classification: Classification | None = None) -> Match:
        refs = find_references(mail, self.settings.office.reference_prefix)
        by_reference = [candidate(c) for c in store.cases_by_refs(session, refs)]
        by_reference.sort(key=lambda c: refs.index(c.ref))
        thread_ids = list(mail.in_reply_to) + list(reversed(mail.references))
        if classification is not None and classification.bounce is not None:
            thread_ids.insert(0, classification.bounce.original_message_id or "")
        by_thread = []
        for message_id, case_id in store.case_ids_by_message_ids(session, thread_ids):
            case = session.get(Case, case_id)
            if case is not None:
                by_thread.append((message_id, candidate(case)))
        return match_message(mail, by_reference=by_reference, by_thread=by_thread,
                             trusted_senders=self.routing.trusted_senders())

    def remember(self, session: Session, case: Case | None, message: Message, mail: Mail,
                 match: Match) -> None:
        """After a message is recorded: keep what later matching needs (agency references…)."""
