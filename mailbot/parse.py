"""Raw bytes → `Mail`: headers, addresses, bodies, attachments, forwards, quotes. Pure.

Built on the standard library's `email` parser with the compat32 policy: it is about
three times faster than `policy.default` and never raises on broken MIME; the decoding
it skips (RFC 2047 words, 8-bit headers, lying charsets) is done here, leniently.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import quopri
import re
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Callable, TypeVar

from mailbot import automatic, forwards, quotes
from mailbot.errors import ParseError
from mailbot.forwards import make_address
from mailbot.htmltext import html_to_text
from mailbot.model import Address, Attachment, Bounce, ForwardedMessage, Mail
from mailbot.office_time import storable

T = TypeVar("T")
GUESS_SAMPLE = 64 * 1024  # bytes the charset detector looks at
MAX_DEPTH = 12  # nesting of multiparts/attached messages we follow; deeper is junk
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
_FOLD = re.compile(r"\r?\n[ \t]*")
_MSGID = re.compile(r"<([^<>\s]+)>")
# Control characters mean nothing in a header once it is unfolded (line breaks and tabs are
# only whitespace there) and PostgreSQL refuses NUL in text: a NUL in a From address failed
# the whole batch. None reaches a header value, an address or a display name.
_WHITESPACE_CONTROL = re.compile(r"[\t\n\r\x0b\x0c]")
_OTHER_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Message-IDs are indexed: PostgreSQL's btree rows hold at most 2,704 bytes, and a mail
# must never fail on its own identifier. Longer or unprintable ones become their digest.
MAX_ID_BYTES = 250
# Noted in `Mail.defects` when the From field(s) name more than one mailbox (RFC 5322 allows
# it with a Sender): our server's DMARC verdict may be about another one than `from_`, the first.
SEVERAL_FROM = "SeveralFromMailboxes"
# Labels that legacy mail mislabels: WHATWG maps them the same way browsers do.
_CHARSET_ALIASES = {
    "latin-1": "cp1252", "latin1": "cp1252", "iso-8859-1": "cp1252", "iso8859-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "ansi_x3.4-1968": "cp1252",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "iso-8859-9": "cp1254", "tis-620": "cp874",
    "shift_jis": "cp932", "x-sjis": "cp932", "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7",
}


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Bytes → text, trusting valid UTF-8 over a declared legacy charset (a common lie).

    NUL characters are dropped: they carry no meaning in mail and PostgreSQL refuses them
    in text columns, which would quarantine an otherwise readable complaint.
    """
    return _decode_bytes(data, declared).replace("\x00", "")


def _decode_bytes(data: bytes, declared: str | None) -> str:
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = _codec(declared)
    if codec and codec != "utf-8":
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
    if codec is None and len(data) > 64:  # undeclared: worth a statistical guess
        from charset_normalizer import from_bytes

        # On a sample: over megabytes of binary junk the detector costs seconds and ~40x the
        # input in memory, and the opening tells the charset as well as the whole does.
        best = from_bytes(data[:GUESS_SAMPLE]).best()
        if best is not None:
            return data.decode(best.encoding, errors="replace")
    return data.decode(codec or "cp1252", errors="replace")


def _codec(label: str | None) -> str | None:
    """A usable Python codec for a MIME charset label, or None when unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    import codecs

    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _unsurrogate(value: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogates: decode them for real."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return decode_bytes(value.encode("ascii", "surrogateescape"))


def header_text(value: str) -> str:
    """`value` without control characters: the whitespace ones become spaces, the rest go."""
    return _OTHER_CONTROL.sub("", _WHITESPACE_CONTROL.sub(" ", value))


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words leniently (bad padding, split multibyte, unknown charset);
    the result is header text (no control characters)."""
    return header_text(_decode_words(_unsurrogate(value).replace("\x00", "")))


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    value = _BETWEEN_WORDS.sub(r"\1\2", value)  # whitespace between words is not text
    out: list[str] = []
    pending: list[bytes] = []
    charset = ""
    last = 0
    for m in _ENCODED_WORD.finditer(value):
        cs = m.group(1).split("*", 1)[0]  # RFC 2231 language suffix: utf-8*nl
        if m.start() != last or cs.lower() != charset:
            if pending:
                out.append(decode_bytes(b"".join(pending), charset))
                pending = []
            out.append(value[last:m.start()])
        charset = cs.lower()
        pending.append(_word_bytes(m.group(2), m.group(3)))
        last = m.end()
    if pending:
        out.append(decode_bytes(b"".join(pending), charset))
    out.append(value[last:])
    return "".join(out)


def _word_bytes(kind: str, text: str) -> bytes:
    raw = text.encode("ascii", "surrogateescape")
    if kind in "bB":
        try:
            return base64.b64decode(raw + b"=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            return raw
    return quopri.decodestring(raw.replace(b"_", b" "), header=False)


def header_value(raw: object) -> str:
    return decode_words(_FOLD.sub(" ", str(raw))).strip()


def header_addresses(raw_values: list[str]) -> tuple[Address, ...]:
    """Parse before decoding display names, so an encoded comma cannot split an address."""
    found: dict[Address, None] = {}  # ordered and O(1) (a 20,000-address To: was quadratic)
    raw = [_unsurrogate(_FOLD.sub(" ", str(v))) for v in raw_values]
    try:
        pairs = getaddresses(raw)
    except Exception:  # the stdlib parser has raised on hostile input before
        pairs = []
    for name, addr in pairs:
        # No control character belongs in an address (the parser lets them through).
        address = make_address(decode_words(name), _ANY_CONTROL.sub("", addr))
        if address is not None:
            found.setdefault(address, None)
    return tuple(found)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return storable(parsed)  # no zone: UTC (RFC 5322's -0000)


def message_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    ids = _MSGID.findall(value) or [t.strip("<>,") for t in value.split() if t.strip("<>,")]
    return tuple(bounded_id(i) for i in ids)


def bounded_id(message_id: str) -> str:
    """A Message-ID as it is stored and looked up, whatever its length or bytes."""
    if message_id.isprintable() and len(message_id.encode("utf-8")) <= MAX_ID_BYTES:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{digest}@long-id.invalid"


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken base64/uuencode: keep what the part literally holds
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def part_text(part: Message) -> str:
    """The decoded text of a leaf part, in whatever charset it really uses."""
    return decode_bytes(_payload(part), part.get_param("charset") and part.get_content_charset())


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:
        name = ""
    if isinstance(name, tuple):  # an RFC 2231 value the stdlib did not collapse
        name = name[2]
    return decode_words(str(name)).strip()


BODY_TYPES = ("text/plain", "text/html")


class _Walk:
    """Collects bodies, attachments and forwarded messages from one message tree.

    A text part is body text unless it is disposed `attachment` or carries a file name with
    its disposition. A text part disposed `inline` with a file name ("HasenundFrösche.txt",
    how some mail programs send a text written in a file) is a named inline text: listed as an
    attachment, but the body after all when the mail has no other (`promote_named_text`).
    """

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.forwarded: list[ForwardedMessage] = []
        self.named_text: list[tuple[str, str, Attachment]] = []  # (type, text, its attachment entry)

    def promote_named_text(self) -> None:
        """No body but named inline text parts: they are the body, and no attachment."""
        if any(t.strip() for t in (*self.plain, *self.html)) or not self.named_text:
            return
        for ctype, text, attachment in self.named_text:
            (self.plain if ctype == "text/plain" else self.html).append(text)
            self.attachments.remove(attachment)
        self.named_text = []

    def visit(self, part: Message, depth: int, in_report: bool = False) -> None:
        ctype = part.get_content_type()
        if depth > MAX_DEPTH:
            return
        if ctype == "message/rfc822" or (ctype == "message/global"):
            inner = part.get_payload()
            if in_report:  # the returned original of a bounce is not a forward
                return
            for msg in inner if isinstance(inner, list) else []:
                if isinstance(msg, Message):
                    self.forwarded.extend(_forwarded_from(msg, depth + 1))
            return
        if part.is_multipart():
            report = ctype == "multipart/report"
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    self.visit(sub, depth + 1, in_report or report)
            return
        disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
        filename = _filename(part)
        is_body = disposition != "attachment" and ctype in BODY_TYPES
        if is_body and not (filename and disposition):
            (self.plain if ctype == "text/plain" else self.html).append(part_text(part))
            return
        if in_report and ctype in ("message/delivery-status", "text/rfc822-headers"):
            return
        data = _payload(part)
        # Only an inline image is shown within the text (`has_attachment` does not count it); an
        # inline document (a PDF, a .txt that is not the body) is a file the sender attached.
        attachment = Attachment(filename, ctype, len(data), disposition == "inline" and ctype.startswith("image/"))
        self.attachments.append(attachment)
        if is_body:  # inline, with a file name
            self.named_text.append((ctype, part_text(part), attachment))
        if ctype == "application/ms-tnef" or filename.lower() == "winmail.dat":
            self.attachments.extend(automatic.tnef_attachments(data))


def _forwarded_from(msg: Message, depth: int) -> list[ForwardedMessage]:
    """An attached message becomes a forward; forwards inside it follow it (nested)."""
    mail = _to_mail(msg, 0, depth)
    first = ForwardedMessage(
        sender=mail.from_, date=mail.date, subject=mail.subject, body=mail.text,
        to=mail.to, source="rfc822", message_id=mail.message_id,
    )
    return [first, *mail.forwarded]


def _guarded(step: Callable[[Any], T], fallback: T, defects: list[str], arg: Any) -> T:
    """Run one heuristic; if it trips on odd input, keep the mail and note the defect."""
    try:
        return step(arg)
    except Exception as err:  # noqa: BLE001 — a heuristic must not quarantine a readable mail
        defects.append(f"{step.__module__}.{step.__name__} failed: {type(err).__name__}")
        return fallback


def _to_mail(msg: Message, size: int, depth: int = 0) -> Mail:
    headers = tuple((k.lower(), header_value(v)) for k, v in msg.raw_items())
    raw: dict[str, list[Any]] = {}
    for key, value in msg.raw_items():
        raw.setdefault(key.lower(), []).append(value)
    first = {k: v for k, v in reversed(headers)}  # first occurrence wins
    walk = _Walk()
    walk.visit(msg, depth)  # a top-level message/rfc822 becomes a forward, as attached ones
    walk.promote_named_text()
    plain = "\n\n".join(t for t in walk.plain if t.strip())
    html = "\n".join(walk.html)
    text = plain if plain else (html_to_text(html) if html else "")
    defects = [type(d).__name__ for d in msg.defects]
    authors = header_addresses(raw.get("from", []))  # read from the raw field: encoded words cannot add or hide one
    if len({a.email for a in authors}) > 1:
        defects.append(SEVERAL_FROM)
    subject = first.get("subject", "")
    no_forwards: list[ForwardedMessage] = []
    inline = _guarded(lambda t: forwards.find_inline(t, subject), no_forwards, defects, text)
    return Mail(
        message_id=next(iter(message_ids(first.get("message-id"))), ""),
        subject=subject,
        from_=next(iter(authors if "from" in raw else header_addresses(raw.get("sender", []))), None),
        to=header_addresses(raw.get("to", [])),
        cc=header_addresses(raw.get("cc", [])),
        reply_to=header_addresses(raw.get("reply-to", [])),
        date=_date(first.get("date")),
        in_reply_to=message_ids(first.get("in-reply-to")),
        references=message_ids(first.get("references")),
        text=text,
        new_text=_guarded(quotes.new_text, text, defects, text),
        html=html,
        headers=headers,
        attachments=tuple(walk.attachments),
        forwarded=tuple(walk.forwarded) + tuple(inline),
        size=size,
        bounce=_clean_bounce(_guarded(automatic.parse_dsn, None, defects, msg)),
        defects=tuple(defects),
    )


def _clean_bounce(bounce: Bounce | None) -> Bounce | None:
    """A DSN's fields are read from its text as written: its returned Message-ID is looked up
    and its diagnostic stored, so both lose control characters like any header."""
    if bounce is None:
        return None
    returned = _ANY_CONTROL.sub("", bounce.original_message_id)
    return dataclasses.replace(bounce, original_message_id=bounded_id(returned) if returned else "",
                               diagnostic=header_text(bounce.diagnostic))


def parse_message(raw: bytes, *, max_bytes: int | None = None) -> Mail:
    """Parse one message best-effort; raise ParseError only when it cannot be read at all."""
    if not raw or not raw.strip():
        raise ParseError("empty message")
    if max_bytes is not None and len(raw) > max_bytes:
        raise ParseError(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    raw_in = raw
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM hides every header from the parser
        raw = raw[3:]
    raw = raw.lstrip(b"\r\n")  # leading blank lines would make all headers body
    try:  # the feed parser itself takes a leading mbox "From " line as the envelope
        msg = message_from_bytes(raw, policy=compat32)
        return _to_mail(msg, len(raw_in))
    except RecursionError as err:
        raise ParseError("message nested too deeply to read") from err
    except Exception as err:  # noqa: BLE001 — last net: the batch must go on
        raise ParseError(f"unreadable message: {type(err).__name__}: {err}") from err
