"""Build the outgoing reply: a rendered template becomes the bytes we send. Pure.

Every header value passes through `sanitize` first: nothing a citizen wrote
(subject, display name, message-ids) can add a header or a line to ours.
The bytes have CRLF line ends and are 7-bit ASCII.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from dataclasses import dataclass
from email import base64mime, quoprimime
from email.utils import format_datetime, formataddr
from functools import lru_cache

from . import sanitize
from .model import Address
from .render import RenderedReply

_FOLD_AT = 78  # RFC 5322's recommended line length; 998 is the hard limit
# RFC 2047 §2: an encoded word is at most 75 characters, a line holding one at most 76.
# Mail programs may show a longer word undecoded ("=?utf-8?b?...") instead of the name.
_WORD_MAX, _WORD_LINE = 75, 76
_WORD_MIN = 24  # room for any one character in either encoding; less and the word goes to a new line
_Q_LITERAL = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!*+/ ")  # " " becomes "_"

# Reply/forward markers mail programs put in front of a subject, in our four languages
# and a few common others: Re, Fw, Fwd, Antw, Doorst, Doorgestuurd, Weitergeleitet, TR, Transféré,
# RE[2], AW, WG, SV, Vs, RV, Réf.
_REPLY_MARKER = re.compile(
    r"^\s*(?:(?:re|fw|fwd|antw|antwoord|doorst|doorgestuurd|weitergeleitet|tr|transféré|transfere"
    r"|aw|wg|sv|vs|rv|réf|ref)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
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


# Patterns are compiled once; the reference is compared afterwards (a pattern per
# case reference would be compiled for every reply).
_ANY_TAG = re.compile(r"\s*\[([^\[\]]*)\]\s*")
# A tag shaped like a case reference (`[VO-2026-000123]`; config: a prefix of 1-8 letters).
_REF_SHAPE = re.compile(r"[A-Za-z]{1,8}-\d{4}-\d{6}")


def _other_or_own_tag(tag: str, own: str) -> bool:
    """Whether a `[tag]` goes from the repeated subject of a reply carrying the reference `own`:
    its own reference, or any other case's (a subject with two references would point a
    reply to it at two cases; another case is not the reply's to name)."""
    tag = tag.strip()
    return tag.casefold() == own or _REF_SHAPE.fullmatch(tag) is not None


@lru_cache(maxsize=16)
def _leading_tag(prefix: str) -> re.Pattern[str]:
    """An optional subject prefix followed by a `[tag]` at the start of a subject."""
    prefixes = "|".join(re.escape(p) for p in sorted({prefix, *KNOWN_PREFIXES} - {""}, key=len, reverse=True))
    return re.compile(rf"^(?:(?:{prefixes})\s*)?\[([^\[\]]*)\]\s*", re.IGNORECASE)


def build_subject(prefix: str, case_ref: str, original_subject: str,
                  limit: int = sanitize.SUBJECT_MAX, *, language: str = "") -> str:
    """`<prefix> [REF] <original subject>`, clean and at most `limit` characters.

    Without a reference it is `<prefix>: <original subject>` ("Uw bericht: Scan van mijn
    dossier"; French typography: `Votre message : …`), not one run-on phrase.
    Reply markers and any earlier `<prefix> [REF]` (or `<prefix>:`) are removed from the
    original subject, so a thread does not grow `Re: Uw klacht [REF] Re: Uw klacht [REF] …`.
    With a reference, so is every other `[REF]`-shaped tag: the reply's subject names one
    case, its own (a mail quoting another case's reference gets its own case's).
    """
    prefix = sanitize.header_text(prefix, 60)
    ref = sanitize.header_text(case_ref, 40).strip("[] ")
    original = sanitize.header_text(original_subject, 10 * limit)
    if ref:
        leading, same = _leading_tag(prefix), ref.casefold()
        for _ in range(3):  # "Re: Uw klacht [REF] Re: Uw klacht [REF] x"
            stripped = strip_reply_markers(original)
            found = leading.match(stripped)
            if found and _other_or_own_tag(found.group(1), same):
                stripped = stripped[found.end():]
            if stripped == original:
                break
            original = stripped
        original = _ANY_TAG.sub(lambda m: " " if _other_or_own_tag(m.group(1), same) else m.group(0),
                                original).strip()
    original = strip_reply_markers(original)
    if not ref and prefix:
        for _ in range(3):  # "Re: Uw bericht: Re: Uw bericht: x"
            found = _leading_label(prefix).match(original)
            if not found:
                break
            original = strip_reply_markers(original[found.end():])
    head = " ".join(part for part in (prefix, f"[{ref}]" if ref else "") if part)
    separator = " " if ref else (" : " if language.lower().startswith("fr") else ": ")
    room = limit - len(head) - len(separator)
    if original and room > 10:
        return f"{head}{separator}{sanitize.truncate(original, room)}" if head else sanitize.truncate(original, limit)
    return sanitize.truncate(head, limit)


@lru_cache(maxsize=16)
def _leading_label(prefix: str) -> re.Pattern[str]:
    """Our own `<prefix>:` at the start of a subject (a reply to a reply without reference)."""
    prefixes = "|".join(re.escape(p) for p in sorted({prefix, *KNOWN_PREFIXES} - {""}, key=len, reverse=True))
    return re.compile(rf"^(?:{prefixes})\s*[:：]\s*", re.IGNORECASE)


# Display names that label a mailbox rather than a person ("Info <info@…>", "Scanner"):
# compared in lower case without punctuation, so "No-Reply" is "noreply".
ROLE_NAMES = frozenset({
    "info", "informatie", "information", "admin", "administrator", "administratie", "administration",
    "scanner", "scan", "noreply", "donotreply", "nepasrepondre", "secretariaat", "secretariat",
    "sekretariat", "secretary", "contact", "kontakt", "office", "bureau", "mail", "email", "postmaster",
    "webmaster", "helpdesk", "support", "onthaal", "accueil", "reception", "receptie", "empfang",
    "klantendienst", "service", "team", "printer", "copier", "mailer", "mailerdaemon",
})


def greeting_name(address: Address) -> str:
    """The name to greet the recipient by, or "" for the neutral greeting.

    A display name that is one word equal to the address's local part ("jpeeters
    <jpeeters@…>") or a role word ("Info", "Scanner", "Secretariaat") names a mailbox,
    not a person: "Beste Info," would be wrong, "Geachte mevrouw, geachte heer," is not.
    """
    words = address.name.split()
    if len(words) == 1:
        word = words[0].strip("\"'()[]<>.,;:").casefold()
        local = address.email.rpartition("@")[0].casefold()
        if not word or word == local or re.sub(r"[\W_]+", "", word) in ROLE_NAMES:
            return ""
    return address.name


def _header_address(header: str, address: Address | tuple[str, str]) -> str:
    """`Header: Name <addr>`; a name that is not plain ASCII becomes RFC 2047 encoded words."""
    name, email = (address.name, address.email) if isinstance(address, Address) else address
    addr_spec = sanitize.check_address(email)
    name = sanitize.display_name(name)
    if name.isascii():  # formataddr quotes a name with specials ("Dupont, Jean")
        return _header_line(header, formataddr((name, addr_spec)))
    # Encoded as a whole: a phrase cannot mix encoded words with quoted ASCII specials.
    return _fold(header, [(name, True), (f"<{addr_spec}>", False)])


@dataclass(frozen=True)
class ComposedReply:
    """A reply ready for the wire: its decoded subject and its bytes (CRLF, 7-bit)."""

    subject: str
    data: bytes

    def __bytes__(self) -> bytes:
        return self.data


def compose_reply(*, rendered: RenderedReply, from_address: str, from_name: str, to: Address,
                  reply_to: Address | None, case_ref: str, original_subject: str,
                  in_reply_to: str | None, references: Sequence[str], message_id: str,
                  date: datetime) -> ComposedReply:
    """The reply as multipart/alternative (text + HTML) with safe threading headers.

    `message_id` comes from `make_message_id` and is stored by the caller so replies to
    it thread back. `date` must be timezone-aware (naive is taken as UTC). Raises
    `sanitize.HeaderError` for an unusable address or Message-ID.

    Written out directly rather than through `email.generator`: the structure is fixed
    and every value is sanitised first, and the generator's general folding cost more
    than matching the mail. Non-ASCII header text goes through `email.header.Header`
    (RFC 2047), bodies through quoted-printable; the tests parse the result back with
    the standard library.
    """
    own_id = sanitize.message_id(message_id)
    if own_id is None or "@" not in own_id:
        raise sanitize.HeaderError(f"bad Message-ID for our reply: {message_id!r}")
    addresses = [_header_address("From", (from_name, from_address)), _header_address("To", to)]
    if reply_to is not None:
        addresses.append(_header_address("Reply-To", reply_to))
    subject = build_subject(rendered.subject_prefix, case_ref, original_subject, language=rendered.language)
    headers = [("Subject", subject),
                ("Date", format_datetime(date if date.tzinfo else date.replace(tzinfo=timezone.utc))),
                ("Message-ID", own_id)]
    parent = sanitize.message_id(in_reply_to) if in_reply_to else None
    if parent:
        headers.append(("In-Reply-To", parent))
    refs = sanitize.references(tuple(references), parent)
    if refs:
        headers.append(("References", " ".join(refs)))
    headers += [("Auto-Submitted", "auto-replied"),  # RFC 3834
                ("X-Auto-Response-Suppress", "All")]  # Exchange: no out-of-office back to us
    boundary = f"=_{secrets.token_hex(16)}"  # "=_" never occurs in quoted-printable text
    headers += [("Content-Language", rendered.language), ("MIME-Version", "1.0"),
                ("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
    wire = [*addresses, *(_header_line(name, value) for name, value in headers), "",
            f"--{boundary}", *_text_part(rendered.text, "plain"),
            f"--{boundary}", *_text_part(rendered.html, "html"),
            f"--{boundary}--", ""]
    return ComposedReply(subject, "\r\n".join(wire).encode("ascii"))


def compose_plain(*, from_address: str, from_name: str, to: Address, subject: str, text: str,
                  message_id: str, date: datetime, language: str = "nl") -> bytes:
    """A plain-text mail of our own that answers nothing (a staff notice): the headers as
    `compose_reply` writes them, `Auto-Submitted: auto-generated`. Raises
    `sanitize.HeaderError` for an unusable address or Message-ID."""
    own_id = sanitize.message_id(message_id)
    if own_id is None or "@" not in own_id:
        raise sanitize.HeaderError(f"bad Message-ID for our mail: {message_id!r}")
    headers = [("Subject", sanitize.header_text(subject)),
               ("Date", format_datetime(date if date.tzinfo else date.replace(tzinfo=timezone.utc))),
               ("Message-ID", own_id), ("Auto-Submitted", "auto-generated"),  # RFC 3834
               ("X-Auto-Response-Suppress", "All"), ("Content-Language", language)]
    wire = [_header_address("From", (from_name, from_address)), _header_address("To", to),
            *(_header_line(name, value) for name, value in headers), *_text_part(text, "plain"), ""]
    return "\r\n".join(wire).encode("ascii")


def _header_line(name: str, value: str) -> str:
    """`Name: value`, RFC 2047-encoded as a whole when not ASCII, folded near 78 columns."""
    return _fold(name, [(value, True)] if not value.isascii() else [(word, False) for word in value.split(" ")])


def _fold(name: str, atoms: Sequence[tuple[str, bool]]) -> str:
    """`Name: atom atom ...`, folded at spaces near 78 columns, never right after the colon.

    An atom flagged True is text to encode: as many encoded words as the limits need
    (RFC 2047 §2: a word at most 75 characters, a line holding one at most 76), folded
    between them, where decoders drop the space (§6.2). Non-ASCII text is one such atom,
    never mixed with plain words: some decoders lose the space at a fold between the two.
    """
    lines, line, bare, has_word = [], f"{name}:", True, False  # has_word: line holds an encoded word
    for text, encode in atoms:
        if not encode:
            if not bare and len(line) + 1 + len(text) > (_WORD_LINE if has_word else _FOLD_AT):
                lines.append(line)
                line, has_word = "", False
            line, bare = f"{line} {text}", False
            continue
        data = text.encode("utf-8")
        scheme = "q" if len(quoprimime.header_encode(data)) <= len(base64mime.header_encode(data)) else "b"
        while text:
            room = min(_WORD_MAX, _WORD_LINE - len(line) - 1)
            if room < _WORD_MIN and not bare:
                lines.append(line)
                line, room = "", _WORD_MAX
            word, text = _encoded_word(text, room, scheme)
            line, bare, has_word = f"{line} {word}", False, True
    return "\r\n".join([*lines, line])


def _encoded_word(text: str, room: int, scheme: str) -> tuple[str, str]:
    """The longest start of `text` (at least one character) that encodes within `room`
    characters, encoded, and the rest. Never splits a character's UTF-8 bytes, and cuts
    after a space when one is near: Python's address parser puts a space between two
    encoded words of a name, "Mü ller" is worse than a double space between two words."""
    budget, used, end, after_space = room - len("=?utf-8?q??="), 0, 0, 0
    for char in text:
        data = char.encode("utf-8")
        more = used + (sum(1 if byte in _Q_LITERAL else 3 for byte in data) if scheme == "q" else len(data))
        if end and (more if scheme == "q" else -(-more // 3) * 4) > budget:
            end = after_space if after_space > end // 2 else end
            break
        used, end = more, end + 1
        after_space = end if char == " " else after_space
    chunk = text[:end].encode("utf-8")
    encode = quoprimime.header_encode if scheme == "q" else base64mime.header_encode
    return encode(chunk, "utf-8"), text[end:]


def _text_part(body: str, subtype: str) -> list[str]:
    # Quoted-printable: 7-bit safe for any relay, readable in the raw source.
    encoded = quoprimime.body_encode(body.encode("utf-8").decode("latin-1"), eol="\r\n")
    return [f'Content-Type: text/{subtype}; charset="utf-8"', "MIME-Version: 1.0",
            "Content-Transfer-Encoding: quoted-printable", "", encoded]
