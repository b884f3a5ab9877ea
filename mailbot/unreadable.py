"""The notice to a citizen whose mail could not be read: too large, or unreadable.

Every complaint gets a first reaction, also one the robot cannot read: the citizen learns
that it did not arrive as sent and how else to send it (smaller, in parts, by post). Only
the header block is read, so the notice can go out whatever the body holds. The usual
reply rules apply: automatic mail, our own addresses, services, dead addresses and forged
senders (DMARC fail) get none, and the per-address limit holds a loop's notices for staff.
No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from .classify import classify
from .errors import ParseError
from .model import Address, Classification, Mail, Reply
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


def notice(raw: bytes, *, max_bytes: int, own_addresses: frozenset[str], default_language: str,
           recipient: Callable[[Mail, Classification], Address | None]) -> tuple[Mail, Reply] | None:
    """The `undeliverable` reply to a mail that cannot be read, and its header Mail (the
    reply threads to it), or None when nobody may be answered (`recipient`: whom a reply
    to the mail would go to, under the usual rules)."""
    mail = header_mail(raw)
    if mail is None:
        return None
    classification = classify(mail, own_addresses=own_addresses, default_language=default_language)
    if classification.facts.spoofed:  # the claimed sender did not send it: no backscatter
        return None
    to = recipient(mail, classification)
    if to is None:
        return None
    reason = "too_large" if len(raw) > max_bytes else "unreadable"
    return mail, Reply(template="undeliverable", to=to, language=classification.language,
                       subject=mail.subject, context={"reason": reason})
