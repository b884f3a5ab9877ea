"""`Mail` → `Classification`: what kind of message this is, in which language, and what it
says. Pure. Whether it follows up an existing case is decided later, by the matcher.

Order of precedence, strongest first: automatic (never answer a robot) → a forwarded
message (news for a case, even when it also asks for the status) → status request →
new complaint. Every decision carries its evidence in `reasons`.

A complaint referred to us by another ombudsman service is the citizen's: `for_referral`
takes the language and the facts from the citizen's forwarded text instead of the service's
cover note (only the matching stage knows, from the services directory, that the sender is
an ombudsman service and which forwarded part is the citizen's).
"""

from __future__ import annotations

import re
from dataclasses import replace

from mailbot import intent, language
from mailbot.automatic import auto_reason
from mailbot.model import Classification, ForwardedMessage, Kind, Mail
from mailbot.parse import SEVERAL_FROM

MIN_TEXT_FOR_LANGUAGE = 40  # below this the subject is added to the language sample
_COMMENT = re.compile(r"\([^()]*\)")
_DMARC_FAIL = re.compile(r"(?:^|[\s;])dmarc\s*=\s*fail\b", re.IGNORECASE)


def dmarc_failed(mail: Mail) -> bool:
    """Our receiving server's verdict: the topmost Authentication-Results (RFC 8601) says
    `dmarc=fail`. Lower ones were added before the mail reached us and prove nothing."""
    for name, value in mail.headers:
        if name == "authentication-results":
            return bool(_DMARC_FAIL.search(_COMMENT.sub(" ", value[:4000])))
    return False


def unproven_sender(mail: Mail) -> str | None:
    """Why the From address is not proven, as the flag staff see, or None: our server's DMARC
    verdict failed (`spoofed_sender`), or the From field names several mailboxes
    (`multiple_from`): the server may have checked another author than the one taken as the
    citizen (the first), so passing DMARC proves nothing about them."""
    if dmarc_failed(mail):
        return "spoofed_sender"
    if SEVERAL_FROM in mail.defects:
        return "multiple_from"
    return None


def _language_sample(subject: str, text: str) -> str:
    return f"{subject}\n{text}" if len(text) < MIN_TEXT_FOR_LANGUAGE else text


def classify(
    mail: Mail, *, own_addresses: frozenset[str] = frozenset(), default_language: str = "nl"
) -> Classification:
    """Classify one parsed message; `own_addresses` are the office's (lower-cased) addresses."""
    own = frozenset(a.lower() for a in own_addresses)
    lang = language.detect(_language_sample(mail.subject, mail.new_text or mail.text),
                           default=default_language)
    reason = auto_reason(mail, own)
    if reason is not None:
        return Classification(
            kind=Kind.AUTOMATIC, language=lang, reasons=(reason,), auto_reason=reason, bounce=mail.bounce
        )
    known = own | {a.email for a in (mail.from_,) if a} | {a.email for a in mail.recipients}
    known |= {f.sender.email for f in mail.forwarded if f.sender}
    # Our own mail quoted back to us is history of the case, not news from an agency.
    forwarded = [f for f in mail.forwarded if not (f.sender and f.sender.email in own)]
    forwarded_text = "\n".join(f.body for f in forwarded)
    facts = intent.detect_facts(
        f"{mail.subject}\n{mail.new_text or mail.text}", known_addresses=known, forwarded_text=forwarded_text
    )
    reasons: list[str] = []
    if forwarded:
        first = forwarded[0]
        who = first.sender.email if first.sender else "unknown sender"
        reasons.append(f"forwarded message ({first.source}) from {who}: {first.subject[:60]}")
        kind = Kind.AGENCY_FORWARD
    elif facts.status_request:
        reasons.append("status request in the text")
        kind = Kind.STATUS_REQUEST
    else:
        reasons.append("no automatic header, forward or status request")
        kind = Kind.NEW_COMPLAINT
    if facts.status_request and kind is not Kind.STATUS_REQUEST:
        reasons.append("also asks for the status")
    unproven = unproven_sender(mail)
    if unproven is not None:
        facts = replace(facts, spoofed=True)
        reasons.append("sender not proven: dmarc=fail in Authentication-Results" if unproven == "spoofed_sender"
                       else "sender not proven: several From addresses")
    return Classification(kind=kind, language=lang, reasons=tuple(reasons), facts=facts)


def for_referral(classification: Classification, citizen: ForwardedMessage, *, referred_by: str,
                 known_addresses: frozenset[str] = frozenset(),
                 default_language: str = "nl") -> Classification:
    """The classification of a referral as the citizen's: another ombudsman service (the
    sender, `referred_by`) forwards `citizen`'s complaint. The language and the facts (status
    request, anonymity, phone preference and numbers, another address, first-line contact…)
    come from the citizen's forwarded text, never from the cover note, whose signature holds
    the service's own phone number and whose language is the service's. The kind, and
    whether the sender is proven (dmarc), stay those of the mail. Applied twice, the same."""
    reason = f"referred by {referred_by}: language and facts from the citizen's forwarded text"
    if classification.is_automatic or reason in classification.reasons:
        return classification
    lang = language.detect(_language_sample(citizen.subject, citizen.body), default=default_language)
    facts = intent.detect_facts(f"{citizen.subject}\n{citizen.body}",
                                known_addresses=frozenset(a.lower() for a in known_addresses))
    facts = replace(facts, spoofed=classification.facts.spoofed)
    return replace(classification, language=lang, facts=facts, reasons=(*classification.reasons, reason))
