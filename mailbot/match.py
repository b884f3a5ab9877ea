"""Which case does a message belong to? Pure: the store passes the candidates in.

Evidence is tried strongest first: our case reference (only from someone who
may use it), then In-Reply-To/References to Message-IDs we know.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .model import CaseCandidate, Evidence, Mail, Match

NO_MATCH = Match(case_id=None, ref=None)


def reference_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(prefix)}-(\d{{4}})-(\d{{6}})\b")


def find_references(mail: Mail, prefix: str) -> list[str]:
    """Case references in the subject first, then the body; each once, in order."""
    pattern = reference_pattern(prefix)
    found: list[str] = []
    for text in (mail.subject, mail.text):
        for m in pattern.finditer(text or ""):
            if m.group(0) not in found:
                found.append(m.group(0))
    return found


def may_use_reference(mail: Mail, case: CaseCandidate, trusted_senders: frozenset[str]) -> bool:
    """A reference is accepted from the case's citizen, a co-recipient, or a known service."""
    sender = mail.from_.email if mail.from_ else ""
    return bool(sender) and (sender == case.citizen_email or sender in case.co_recipients
                             or sender in trusted_senders)


def match_message(mail: Mail, *, by_reference: Sequence[CaseCandidate],
                  by_thread: Sequence[tuple[str, CaseCandidate]],
                  trusted_senders: frozenset[str] = frozenset()) -> Match:
    """The best case for `mail` among the candidates, with its evidence."""
    weak: Evidence | None = None
    for case in by_reference:
        evidence = Evidence("reference", f"{case.ref} in subject or body", 100.0)
        if may_use_reference(mail, case, trusted_senders):
            return Match(case.case_id, case.ref, (evidence,))
        # A stranger quoting someone else's reference: never attach on that alone.
        weak = weak or Evidence("reference", f"{case.ref} quoted by a sender unknown to the case", 40.0)
    for message_id, case in by_thread:
        evidence = Evidence("in-reply-to", f"refers to <{message_id}> of {case.ref}", 95.0)
        return Match(case.case_id, case.ref, (evidence,))
    if weak is not None:
        return Match(None, None, (weak,), needs_triage=True, candidates=(weak,))
    return NO_MATCH
