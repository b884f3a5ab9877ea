"""Inline forwarded messages in a text body: Outlook, Gmail, Apple Mail, Thunderbird, in
nl/fr/en/de. Pure.

One reader for all clients: a forward is a block of "label: value" header lines (a sender
plus a date or subject), optionally under a marker line. The marker and the labels tell
which client and language wrote it. Measured alternative: email-forward-parser (a port of
crisp's JS library) finds only the first forward and misses Dutch Thunderbird/Apple blocks.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from mailbot.model import Address, ForwardedMessage
from mailbot.office_time import storable

_LABELS = {
    "from": ("van", "from", "de", "von", "da", "de la part de", "afzender", "expéditeur", "absender"),
    "date": ("datum", "date", "verzonden", "sent", "envoyé", "gesendet", "verstuurd", "verzonden op", "sent on"),
    "subject": ("onderwerp", "subject", "objet", "sujet", "betreff", "betr", "titel", "re"),
    "to": ("aan", "to", "à", "a", "pour", "an", "destinataire", "empfänger"),
    "cc": ("cc", "kopie", "cci", "bcc", "copie à", "copie"),
    "reply-to": ("antwoord aan", "reply-to", "répondre à", "antwort an"),
}
_LABEL_OF = {label: key for key, labels in _LABELS.items() for label in labels}
_LANG_OF_FROM = {"van": "nl", "afzender": "nl", "from": "en", "de": "fr", "de la part de": "fr",
                 "expéditeur": "fr", "von": "de", "absender": "de", "da": "it"}
_HEADER = re.compile(
    r"^[ \t>]*\**(" + "|".join(sorted(map(re.escape, _LABEL_OF), key=len, reverse=True)) + r")\**[ \t\u00a0]*:\**[ \t]*(.*)$",
    re.I,
)
_MARKERS = (  # (client, pattern) — the line that introduces a forward or quoted original
    ("outlook-original", re.compile(r"^[ \t>]*-{3,}\s*(original message|oorspronkelijk bericht|origineel bericht|"
                           r"message d'origine|ursprüngliche nachricht|originalnachricht)\s*-{3,}\s*$", re.I)),
    ("gmail", re.compile(r"^[ \t>]*-{9,}\s*(forwarded message|doorgestuurd bericht|message transféré|"
                         r"weitergeleitete nachricht|messaggio inoltrato|mensaje reenviado)\s*-{3,}\s*$", re.I)),
    ("thunderbird", re.compile(r"^[ \t>]*-{4,8}\s*(forwarded message|doorgestuurd bericht|message transféré|"
                               r"weitergeleitete nachricht|original message|oorspronkelijk bericht)\s*-{4,}\s*$", re.I)),
    ("apple", re.compile(r"^[ \t>]*(begin forwarded message|begin doorgestuurd bericht|doorgestuurd bericht begint|"
                         r"début du message réexpédié|début du message transféré|anfang der weitergeleiteten nachricht)"
                         r"\s*:?\s*$", re.I)),
    ("outlook", re.compile(r"^[ \t>]*_{10,}\s*$")),  # Outlook's rule above a header block
)
_EMAIL = re.compile(r"[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
MAX_HEADER_GAP = 2  # blank lines tolerated between header lines (HTML conversions add them)


def make_address(name: str, email: str) -> Address | None:
    """A normalised Address: address lower-cased, IDN domain in its ASCII (punycode) form."""
    email = email.strip().strip("<>").strip().lower()
    name = " ".join(name.split()).strip("\"' ")
    if "@" not in email:
        return None
    local, _, domain = email.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return Address(name=name if name.lower() != email else "", email=f"{local}@{domain}")


def _address_list(value: str) -> tuple[Address, ...]:
    found = []
    for email in _EMAIL.findall(value):
        name = value.split(email)[0].rsplit(",", 1)[-1].rsplit(";", 1)[-1]
        name = re.sub(r"(\[?mailto:|[<\[(]+$)", "", name).strip(" <[\"'")
        address = make_address(name, email)
        if address is not None and address not in found:
            found.append(address)
    return tuple(found)


def _sender(value: str) -> Address | None:
    """`Name <a@b>`, `Name [mailto:a@b]`, `a@b`, or a bare name (Exchange-internal senders)."""
    found = _address_list(value)
    if found:
        return found[0]
    name = value.strip(" \"'")
    return Address(name=name, email="") if name else None


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], str, int] | None:
    """Read "label: value" lines from `start`; return fields, the from-label and the end index."""
    fields: dict[str, str] = {}
    from_label = ""
    last_key = ""
    i, gap = start, 0
    while i < len(lines) and len(fields) < 8:
        line = lines[i]
        match = _HEADER.match(line)
        if match:
            label = match.group(1).lower()
            key = _LABEL_OF[label]
            if key in fields:
                break  # a second From: is the next block
            fields[key], last_key, gap = match.group(2).strip(), key, 0
            from_label = label if key == "from" else from_label
        elif not line.strip():
            gap += 1
            if gap > MAX_HEADER_GAP or "from" not in fields and not fields:
                break
        elif last_key in ("to", "cc") and gap == 0 and ("@" in line or line.rstrip().endswith((",", ";"))):
            fields[last_key] += " " + line.strip()  # a long recipient list wraps
        else:
            break
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    if "from" not in fields or not ({"date", "subject"} & fields.keys()) or len(fields) < 3 and "to" not in fields:
        return None
    return fields, from_label, i


def _find_blocks(lines: list[str]) -> list[tuple[int, int, str, dict[str, str], str]]:
    """(marker line, body start, client, fields, from-label) for every forward block."""
    blocks = []
    i = 0
    while i < len(lines):
        client = next((name for name, rx in _MARKERS if rx.match(lines[i])), "")
        start = i + 1 if client else i
        while client and start < len(lines) and not lines[start].strip() and start - i < 3:
            start += 1
        parsed = _header_block(lines, start) if client or _HEADER.match(lines[i]) else None
        if parsed is None:
            i += 1
            continue
        fields, from_label, end = parsed
        if not client:
            client = "outlook" if "date" in fields and fields.get("date") and _is_outlook_date(lines, i) else "header"
        blocks.append((i, end, client, fields, from_label))
        i = end
    return blocks


def _is_outlook_date(lines: list[str], start: int) -> bool:
    """Outlook's block says Verzonden/Sent/Envoyé/Gesendet, where others say Date."""
    rx = re.compile(r"^[ \t>]*\**(verzonden|sent|envoyé|gesendet)\**\s*:", re.I)
    return any(rx.match(line) for line in lines[start:start + 8])


def first_block_line(lines: list[str]) -> int | None:
    """Index of the first line of the first forward/original-message block, if any."""
    blocks = _find_blocks(lines)
    return blocks[0][0] if blocks else None


_FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|antw|sv|réf)\s*:\s*)*\[?(?:fwd?|tr|wg|doorst|fw|rv|enc|i)\s*(?:\[\d+\])?\s*:", re.I)
_EXPLICIT = ("gmail", "thunderbird", "apple", "outlook-original")


def is_forward_subject(subject: str) -> bool:
    """FW:/Fwd:/TR:/WG:/Doorst: — the subject says the sender forwarded something."""
    return bool(_FORWARD_SUBJECT.match(subject))


def find_inline(text: str, subject: str = "") -> list[ForwardedMessage]:
    """Forwarded messages in `text`, outermost first, each with its body.

    A block under a forward marker always counts; a bare Outlook header block only when the
    subject says FW:/TR:/WG:, because Outlook writes the same block above reply history.
    """
    if ":" not in text:
        return []
    lines = text.splitlines()
    blocks = _find_blocks(lines)
    if not is_forward_subject(subject):
        blocks = [b for b in blocks if b[2] in _EXPLICIT]
    found = []
    for n, (_, body_start, client, fields, from_label) in enumerate(blocks):
        client = client.removesuffix("-original")
        body_end = blocks[n + 1][0] if n + 1 < len(blocks) else len(lines)
        body = "\n".join(line[1:].lstrip() if line.startswith(">") else line
                         for line in lines[body_start:body_end]).strip()
        lang = _LANG_OF_FROM.get(from_label, "")
        found.append(ForwardedMessage(
            sender=_sender(fields["from"]),
            date=_date(fields.get("date", "")),
            subject=fields.get("subject", ""),
            body=body,
            to=_address_list(fields.get("to", "")),
            source=f"{client}-{lang}" if lang else client,
        ))
    return found


_MONTHS = {
    **dict.fromkeys(("jan", "januari", "janvier", "januar", "january", "janv", "jän", "jänner"), 1),
    **dict.fromkeys(("feb", "februari", "février", "fevrier", "februar", "february", "févr", "fevr"), 2),
    **dict.fromkeys(("mrt", "maart", "mar", "mars", "märz", "marz", "march", "mär"), 3),
    **dict.fromkeys(("apr", "april", "avril", "avr"), 4),
    **dict.fromkeys(("mei", "may", "mai"), 5),
    **dict.fromkeys(("jun", "juni", "juin", "june"), 6),
    **dict.fromkeys(("jul", "juli", "juillet", "july", "juil"), 7),
    **dict.fromkeys(("aug", "augustus", "août", "aout", "august"), 8),
    **dict.fromkeys(("sep", "sept", "september", "septembre"), 9),
    **dict.fromkeys(("okt", "oct", "oktober", "octobre", "october"), 10),
    **dict.fromkeys(("nov", "november", "novembre"), 11),
    **dict.fromkeys(("dec", "december", "décembre", "decembre", "dezember", "dez", "déc"), 12),
}
_WORD_DATE = re.compile(r"(?:(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{4})|([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4}))", re.I)
_NUM_DATE = re.compile(r"\b(?:(\d{4})-(\d{1,2})-(\d{1,2})|(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}))\b")
_TIME = re.compile(r"\b(\d{1,2})[:.h](\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?", re.I)
try:  # client dates carry no zone: they were written in the office's time zone
    _LOCAL = ZoneInfo("Europe/Brussels")
except Exception:  # no tz database installed: UTC is the least surprising guess
    _LOCAL = timezone.utc  # type: ignore[assignment]


def _date(value: str) -> datetime | None:
    """Dates as mail clients print them, in nl/fr/en/de, with or without a time and zone."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        return storable(parsed if parsed.tzinfo else parsed.replace(tzinfo=_LOCAL))
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    day: int | None = None
    month: int | None = None
    year: int | None = None
    for m in _WORD_DATE.finditer(value):
        d, name, y = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        if name.lower() in _MONTHS:
            day, month, year = int(d), _MONTHS[name.lower()], int(y)
            break
    if year is None and (num := _NUM_DATE.search(value)):
        if num.group(1):
            year, month, day = int(num.group(1)), int(num.group(2)), int(num.group(3))
        else:  # day first, as in Belgium
            day, month, year = int(num.group(4)), int(num.group(5)), int(num.group(6))
    if year is None or month is None or day is None:
        return None
    hour = minute = second = 0
    if clock := _TIME.search(value.split(str(year), 1)[-1]):
        hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        meridiem = (clock.group(4) or "").lower().replace(".", "")
        hour = hour % 12 + (12 if meridiem == "pm" else 0) if meridiem else hour
    try:
        return storable(datetime(year, month, day, hour, minute, second, tzinfo=_LOCAL))
    except ValueError:
        return None
