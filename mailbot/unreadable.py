"""The notice to a citizen whose mail could not be read: too large, or unreadable.

Every complaint gets a first reaction, also one the robot cannot read: the citizen learns
that it did not arrive as sent and how else to send it (smaller, in parts, by post). Only
the header block is read, so the notice can go out whatever the body holds. The usual
reply rules apply: automatic mail, our own addresses, services, dead addresses and forged
senders (DMARC fail, several From addresses) get none, and the per-address limit holds a
loop's notices for staff.

When the headers show the mail belongs to a case (its reference in the Subject, or
In-Reply-To/References naming a message of the case) and the notice goes to the address on
file for that case, the notice names the case and the quarantined mail is filed on it for
staff. Anyone else learns nothing of a case, not even that it exists. No I/O of its own: the
case look-up is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .classify import classify
from .errors import ParseError
from .match_model import Found
from .model import Address, CaseCandidate, Classification, Mail, Reply
from .parse import parse_message

HEADER_LIMIT = 256 * 1024  # a header block longer than this is not believed


def header_mail(raw: bytes) -> Mail | None:
    """The mail's headers as a Mail without a body, or None when they cannot be read."""
    head = raw[:HEADER_LIMIT]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    if ends:
        head = head[:min(ends)]
    elif len(raw) > HEADER_LIMIT:
        return None
    try:
        return parse_message(head + b"\r\n\r\n")
    except ParseError:
        return None


def header_for_staff(raw: bytes) -> Mail | None:
    """`header_mail` for a mail being quarantined (its sender and subject kept for staff):
    None also when reading the header block fails some other way (a parser bug on hostile
    input), so quarantining never fails for it."""
    try:
        return header_mail(raw)
    except Exception:  # noqa: BLE001 - the mail goes to quarantine either way
        return None


class Notice(NamedTuple):
    mail: Mail  # the header block: the reply threads to it
    reply: Reply
    case: CaseCandidate | None = None  # the case it names, the citizen's own


def notice(raw: bytes, *, max_bytes: int, own_addresses: frozenset[str], default_language: str,
           recipient: Callable[[Mail, Classification], Address | None],
           cases: Callable[[Mail], Found] = lambda _mail: Found()) -> Notice | None:
    """The `undeliverable` reply to a mail that cannot be read, or None when nobody may be
    answered (`recipient`: whom a reply to the mail would go to, under the usual rules;
    `cases`: the cases the headers point to, by reference and by thread)."""
    mail = header_mail(raw)
    if mail is None:
        return None
    classification = classify(mail, own_addresses=own_addresses, default_language=default_language)
    if classification.facts.spoofed:  # the claimed sender may not have sent it: no backscatter
        return None
    to = recipient(mail, classification)
    if to is None:
        return None
    reason = "too_large" if len(raw) > max_bytes else "unreadable"
    reply = Reply(template="undeliverable", to=to, language=classification.language,
                  subject=mail.subject, context={"reason": reason})
    return Notice(mail, reply, citizens_case(cases(mail), to))


def citizens_case(found: Found, to: Address) -> CaseCandidate | None:
    """The case the headers point to whose address on file is `to`: by reference first, then
    by thread, as matching weighs them. A case of someone else is never named."""
    for case in (*found.by_reference, *(case for _, case in found.by_thread)):
        if case.citizen_email.lower() == to.email.lower():
            return case
    return None
