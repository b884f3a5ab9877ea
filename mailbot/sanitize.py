"""Header sanitising and address checks for the replies we send. Pure functions.

Every string that ends up in a header of an outgoing mail passes through
`header_text()` (or `display_name()`), every address through `check_address()`.

Why the encoded-word step: the standard library decodes RFC 2047 encoded words
when a header is *assigned* (`msg["Subject"] = ...`) and then folds the decoded
text, so a literal `=?utf-8?q?x=0D=0ABcc:evil?=` in a subject becomes a real
`Bcc:` header. We decode such words ourselves, strip what they decoded to, and
break up any `=?` left over, so no parser downstream can decode anything.
"""

from __future__ import annotations

import re
import unicodedata
from email import policy

from .errors import MailbotError

SUBJECT_MAX = 200
DISPLAY_NAME_MAX = 100
MESSAGE_ID_MAX = 250
REFERENCES_MAX = 20

# Unicode categories removed outright: controls (Cc, includes CR/LF/TAB/NUL/DEL and
# C1), format characters (Cf: zero-width, bidi embeddings/overrides/isolates, BOM,
# soft hyphen), line/paragraph separators (Zl, Zp), surrogates, private use, unassigned.
_DROP = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# ...but these become a space first, so "a\nb" reads as "a b", not "ab".
_AS_SPACE = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
_SPACES = re.compile(r"\s+")
_ENCODED_WORD_START = "=?"
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_MSGID_BODY = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]+$")  # printable ASCII except < >


class HeaderError(MailbotError, ValueError):
    """A value cannot be put in a header of an outgoing mail (e.g. a broken address)."""


def strip_controls(value: str) -> str:
    """Remove control, format and separator characters; line breaks become spaces."""
    if value.isascii() and value.isprintable():  # the usual case: nothing to remove
        return value
    out = []
    for char in value:
        if char in _AS_SPACE:
            out.append(" ")
        elif unicodedata.category(char) not in _DROP:
            out.append(char)
    return "".join(out)


def clean_text(value: str) -> str:
    """One line of visible text: no controls, whitespace collapsed and trimmed."""
    return _SPACES.sub(" ", strip_controls(unicodedata.normalize("NFC", value))).strip()


def _decode_encoded_words(value: str) -> str:
    """What the email package would make of `value` as an unstructured header."""
    if _ENCODED_WORD_START not in value:
        return value
    try:
        return str(policy.default.header_factory("subject", value))
    except Exception:  # the parser is lenient; never let a hostile value crash us
        return value


def truncate(value: str, limit: int) -> str:
    """Cut to at most `limit` characters, on a word boundary when one is near, with an ellipsis."""
    if len(value) <= limit:
        return value
    cut = value[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def header_text(value: str, limit: int = SUBJECT_MAX) -> str:
    """Safe text for an unstructured header: one line, no encoded words, bounded."""
    text = clean_text(value)
    for _ in range(3):  # nested encodings: decode until stable, cleaning each time
        decoded = clean_text(_decode_encoded_words(text))
        if decoded == text:
            break
        text = decoded
    text = text.replace(_ENCODED_WORD_START, "= ?")
    return truncate(text, limit)


def display_name(value: str, limit: int = DISPLAY_NAME_MAX) -> str:
    """Safe display name for From/To/Reply-To; quoting and RFC 2047 are left to the email package."""
    return header_text(value, limit)


def check_address(value: str) -> str:
    """An addr-spec that is safe in a header, lower-cased domain; raises HeaderError otherwise."""
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 254 or len(local) > 64:
        raise HeaderError(f"not an e-mail address: {value!r}")
    if not _ATEXT.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise HeaderError(f"unsupported local part in e-mail address: {value!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise HeaderError(f"bad domain in e-mail address: {value!r}") from None
    if not _DOMAIN.match(ascii_domain) or "." not in ascii_domain:
        raise HeaderError(f"bad domain in e-mail address: {value!r}")
    return f"{local}@{ascii_domain.lower()}"


def is_valid_address(value: str) -> bool:
    """True when `check_address` accepts the value."""
    try:
        check_address(value)
    except HeaderError:
        return False
    return True


def check_domain(value: str) -> str:
    """A host name fit for the right-hand side of a Message-ID."""
    domain = value.strip().lower()
    if not _DOMAIN.match(domain):
        raise HeaderError(f"not a domain name: {value!r}")
    return domain


def message_id(value: str) -> str | None:
    """`<id>` for a Message-ID given with or without brackets; None when it is unusable."""
    body = value.strip().removeprefix("<").removesuffix(">").strip()
    # "=?" would be decoded as an encoded word by the email package, even in a msg-id.
    if not body or len(body) > MESSAGE_ID_MAX or not _MSGID_BODY.match(body) or _ENCODED_WORD_START in body:
        return None
    return f"<{body}>"


def references(ids: list[str] | tuple[str, ...], in_reply_to: str | None = None,
               limit: int = REFERENCES_MAX) -> list[str]:
    """Usable, de-duplicated message-ids, parent last, keeping the first and the last ones."""
    seen: dict[str, None] = {}
    for raw in [*ids, *([in_reply_to] if in_reply_to else [])]:
        mid = message_id(raw)
        if mid is not None:
            seen.pop(mid, None)  # a repeat moves to its latest position
            seen[mid] = None
    result = list(seen)
    if len(result) > limit:
        # RFC 5322 §3.6.4 suggests keeping the thread root: first one plus the most recent.
        result = result[:1] + result[-(limit - 1):] if limit > 1 else result[-1:]
    return result
