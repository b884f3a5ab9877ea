"""Rule (c) of `match`: a forwarded agency mail → the sender's open case about that agency. Pure.

The agency is evidence only for a letter that is the case's: addressed to the citizen (by
address or name, or to a person the case names: a social worker writes for a client) or
to nobody we can read. A letter addressed to someone else is tied by its text alone, so a
social worker's second client does not land in the first client's case.
"""

from __future__ import annotations

from .match_model import Candidate, MessageFacts
from .model import Address, Evidence
from .normalize import name_key, words
from .similarity import text_scores


def agency_forward(facts: MessageFacts, own_open: list[Candidate]) -> tuple[Candidate, Evidence] | None:
    """The case a forwarded agency mail belongs to, with the evidence; None when the sender
    has no open case it could be about."""
    agencies = set(facts.forward_agencies)
    names = ", ".join(facts.forward_agencies)
    about = [c for c in own_open if agencies & set(c.agencies)]
    unknown_agency = not about and len(own_open) == 1 and not own_open[0].agencies
    if unknown_agency:
        about = own_open
    if not about:
        return None
    theirs = [c for c in about if addressed_to_case(facts, c)]
    if not theirs:  # someone else's letter: only its text ties it to a case
        case, score = _closest(facts, about)
        to = ", ".join(a.email or a.name for a in facts.forward_to)
        return case, Evidence("agency-forward", f"{case.ref}: forwarded mail from {names} addressed to {to}, "
                              f"not to the case's citizen (text {score:.0f})", round(score, 1))
    if len(theirs) == 1 and unknown_agency:
        return theirs[0], Evidence("agency-forward", f"{theirs[0].ref}: forwarded mail from {names}; "
                                   "the citizen's only open case, no agency recorded on it", 85.0)
    if len(theirs) == 1:
        return theirs[0], Evidence("agency-forward", f"{theirs[0].ref}: forwarded mail from {names}; "
                                   "the citizen's open case about it", 90.0)
    case, score = _closest(facts, theirs)
    return case, Evidence("agency-forward", f"{case.ref}: forwarded mail from {names}; one of {len(theirs)} "
                          f"open cases about it (text {score:.0f})", round(60.0 + 0.4 * score, 1))


def _closest(facts: MessageFacts, cases: list[Candidate]) -> tuple[Candidate, float]:
    """The case whose text is most like the mail's (the first of equals), with the combined score."""
    scores = text_scores(facts.subject, facts.body, [c.text for c in cases])
    best = max(range(len(cases)), key=lambda i: scores[i][2])
    return cases[best], scores[best][2]


def addressed_to_case(facts: MessageFacts, case: Candidate) -> bool:
    """Whether the forwarded agency mail may be the case's: addressed to nobody we can read,
    or to the case's citizen or a co-recipient, a name of the complainant, or a person the
    case's text names (two words or more, from the display name or the address)."""
    readable = [a for a in facts.forward_to if a.email or name_key(a.name)]
    if not readable:
        return True
    addresses = {case.citizen_email, facts.identity_email, *case.co_recipients} - {""}
    names = {case.name_key, facts.name_key} - {""}
    return any(a.email in addresses or name_key(a.name) in names or _named_in(a, case.text)
               for a in readable)


def _named_in(person: Address, text: str) -> bool:
    """Whether every word of the person's name (the display name, else the address's local
    part: "fatima.elamrani") is a word of the text, or two of its words written together."""
    name = set(words(person.name or person.email.partition("@")[0]))
    if len(name) < 2:
        return False
    found = text.split()
    return name <= {*found, *(a + b for a, b in zip(found, found[1:]))}
