"""Build the outgoing reply: a rendered template becomes an `EmailMessage`. Pure.

Every header value passes through `sanitize` first: nothing a citizen wrote
(subject, display name, message-ids) can add a header or a line to ours.
The message uses `email.policy.SMTP`, so `as_bytes()` gives CRLF line ends.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from . import sanitize
from .model import Address
from .render import RenderedReply

# Reply/forward markers mail programs put in front of a subject, in our four languages
# and a few common others: Re, Fw, Fwd, Antw, Doorst, TR, RE[2], AW, WG, SV, Vs, RV, Réf.
_REPLY_MARKER = re.compile(
    r"^\s*(?:(?:re|fw|fwd|antw|antwoord|doorst|tr|aw|wg|sv|vs|rv|réf|ref)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
# Subject prefixes of the shipped templates, stripped when a citizen replies to our reply.
KNOWN_PREFIXES = ("Uw klacht", "Votre plainte", "Your complaint", "Ihre Beschwerde",
                  "Uw vraag", "Votre demande", "Your request", "Ihre Anfrage",
                  "Uw bericht", "Votre message", "Your message", "Ihre Nachricht")


def make_message_id(domain: str) -> str:
    """A new, unguessable Message-ID `<random@domain>` for a reply we send."""
    return f"<{secrets.token_hex(16)}@{sanitize.check_domain(domain)}>"


def strip_reply_markers(subject: str) -> str:
    """`Re: Fwd: AW: subject` → `subject`."""
    return _REPLY_MARKER.sub("", subject).strip()


def build_subject(prefix: str, case_ref: str, original_subject: str,
                  limit: int = sanitize.SUBJECT_MAX) -> str:
    """`<prefix> [REF] <original subject>`, clean and at most `limit` characters.

    Reply markers and any earlier `<prefix> [REF]` are removed from the original
    subject, so a thread does not grow `Re: Uw klacht [REF] Re: Uw klacht [REF] …`.
    """
    prefix = sanitize.header_text(prefix, 60)
    ref = sanitize.header_text(case_ref, 40).strip("[] ")
    original = sanitize.header_text(original_subject, 10 * limit)
    if ref:
        prefixes = "|".join(re.escape(p) for p in sorted({prefix, *KNOWN_PREFIXES} - {""}, key=len, reverse=True))
        tag = re.escape(f"[{ref}]")
        for _ in range(3):  # "Re: Uw klacht [REF] Re: Uw klacht [REF] x"
            stripped = strip_reply_markers(original)
            stripped = re.sub(rf"^(?:(?:{prefixes})\s*)?{tag}\s*", "", stripped, flags=re.IGNORECASE)
            if stripped == original:
                break
            original = stripped
        original = re.sub(rf"\s*{tag}\s*", " ", original, flags=re.IGNORECASE).strip()
    original = strip_reply_markers(original)
    head = " ".join(part for part in (prefix, f"[{ref}]" if ref else "") if part)
    room = limit - len(head) - 1
    if original and room > 10:
        return f"{head} {sanitize.truncate(original, room)}" if head else sanitize.truncate(original, limit)
    return sanitize.truncate(head, limit)


def _header_address(address: Address | tuple[str, str]) -> HeaderAddress:
    name, email = (address.name, address.email) if isinstance(address, Address) else address
    addr_spec = sanitize.check_address(email)
    local, _, domain = addr_spec.rpartition("@")
    return HeaderAddress(display_name=sanitize.display_name(name), username=local, domain=domain)


def compose_reply(*, rendered: RenderedReply, from_address: str, from_name: str, to: Address,
                  reply_to: Address | None, case_ref: str, original_subject: str,
                  in_reply_to: str | None, references: Sequence[str], message_id: str,
                  date: datetime, extra_headers: Iterable[tuple[str, str]] = ()) -> EmailMessage:
    """The reply as multipart/alternative (text + HTML) with safe threading headers.

    `message_id` comes from `make_message_id` and is stored by the caller so replies to
    it thread back. `date` must be timezone-aware (naive is taken as UTC). Raises
    `sanitize.HeaderError` for an unusable address or Message-ID.
    """
    msg = EmailMessage(policy=policy.SMTP)
    own_id = sanitize.message_id(message_id)
    if own_id is None or "@" not in own_id:
        raise sanitize.HeaderError(f"bad Message-ID for our reply: {message_id!r}")
    msg["From"] = _header_address((from_name, from_address))
    msg["To"] = _header_address(to)
    if reply_to is not None:
        msg["Reply-To"] = _header_address(reply_to)
    msg["Subject"] = build_subject(rendered.subject_prefix, case_ref, original_subject)
    msg["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=timezone.utc))
    msg["Message-ID"] = own_id
    parent = sanitize.message_id(in_reply_to) if in_reply_to else None
    if parent:
        msg["In-Reply-To"] = parent
    refs = sanitize.references(tuple(references), parent)
    if refs:
        msg["References"] = " ".join(refs)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834
    msg["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office back to us
    for name, value in extra_headers:  # e.g. X-Mailbot-Case; names are ours, values are not
        if not re.fullmatch(r"X-[A-Za-z0-9-]{1,60}", name):
            raise sanitize.HeaderError(f"refusing extra header {name!r}")
        msg[name] = sanitize.header_text(value, 200)
    # Quoted-printable: 7-bit safe for any relay, readable in the raw source.
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the parts exist: making the message multipart moves Content-* headers into the first part.
    msg["Content-Language"] = rendered.language
    return msg
