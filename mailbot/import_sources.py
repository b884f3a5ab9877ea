"""What `mailbot import` reads: the messages of an mbox file, a single message file, a
Maildir or an IMAP folder, each as an `Item` for the import loop (`importer`).

A message over `limits.max_message_bytes` is not held whole: only its head is kept (enough
for its header block), with its true size, and the import quarantines it as too large, as
a poll would. Messages from files are given the form an IMAP server delivers (CRLF line
ends, without the status headers a mail client writes into an mbox), so a mail that was
polled before and is imported now is known by its content hash, also without Message-ID.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .errors import MailbotError
from .unreadable import HEADER_LIMIT

if TYPE_CHECKING:
    from .config import ImapSettings

HEAD_KEPT = HEADER_LIMIT  # bytes kept of a message too large to import: its header block
LINE_PIECE = 1 << 20  # an mbox is read in lines of at most this much (a line may be huge)


class Item(NamedTuple):
    uid: int  # the receipt key within the source
    raw: bytes  # the message; only its first HEAD_KEPT bytes when `size` is over the limit
    position: int  # for the progress bar (bytes of an mbox, entries otherwise)
    size: int  # the message's size in bytes
    problem: str = ""  # set when the entry could not be read at all: the name and why


class SourceError(MailbotError):
    """The file given to `mailbot import` is not something it can import."""


# -- mbox ------------------------------------------------------------------------------

# A separator is `From <envelope sender> <date>`, as mbox writers produce it: an asctime
# date ("From jan@example.be Tue Mar  1 10:00:00 2016", "From - Tue Mar 01 10:00:00 +0000
# 2016" of Thunderbird and Gmail, "From MAILER-DAEMON Fri Jul  8 12:08:34 CEST 2011"), or,
# from some exporters, a mail date ("Tue, 01 Mar 2016 10:00:00 +0100"). Like mutt, the
# line's shape decides, not a blank line before it: some exporters write none, and a body
# line "From what my neighbours say…" in an mbox that did not escape it is no separator.
_WEEKDAY = rb"(?i:mon|tue|wed|thu|fri|sat|sun)"
_MONTH = rb"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_TIME = rb"\d{1,2}:\d{2}(?::\d{2})?"
_ZONE = rb"(?:[A-Za-z]{1,5}|[+-]\d{4})"
_SEPARATOR = re.compile(
    rb"From (?:(?:\"[^\"\r\n]*\"|[^\s\"])\S* +)?"
    rb"(?:" + _WEEKDAY + rb",? +" + _MONTH + rb" +\d{1,2},? +" + _TIME + rb"(?: +" + _ZONE + rb")* +\d{4}"
    rb"|(?:" + _WEEKDAY + rb", *)?\d{1,2} +" + _MONTH + rb" +\d{4} +" + _TIME + rb"(?: +" + _ZONE + rb")?)"
    rb"(?:[ \t][^\r\n]*)?\r?\n?\Z")
_HEADER_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")  # `Name:` (RFC 5322 field name)
_FROM_QUOTED = re.compile(rb">+From ")
# Written into an mbox by mail clients and mbox servers (mutt, Thunderbird, UW-IMAP, Dovecot),
# never part of the mail as delivered.
_LOCAL_FIELD = re.compile(rb"(?:status|x-status|x-keywords|x-uid|x-imap|x-imapbase|x-mozilla-status2?"
                          rb"|x-mozilla-keys|content-length|lines)[ \t]*:", re.I)
_BARE_LF = re.compile(rb"(?<!\r)\n")


def is_separator(line: bytes) -> bool:
    return line.startswith(b"From ") and _SEPARATOR.match(line) is not None


def mbox_items(handle: BinaryIO, *, max_bytes: int) -> Iterator[Item]:
    """The messages of an mbox stream, or of a file holding one message (headers first).

    Raises SourceError at once when the file is neither: it does not start with a separator
    line nor with a header block. An mbox is streamed, its `>From ` lines unescaped (mboxrd).
    Each message is numbered by its content (`content_uid`), not its position: a mail client
    that compacts the file or appends to it between two runs shifts the positions.
    """
    first, position = _first_line(handle)
    if not first:
        return iter(())
    if is_separator(first):
        return _mbox(handle, position, max_bytes)
    if _HEADER_FIELD.match(first):
        return _single_message(handle, first, position, max_bytes)
    raise SourceError("neither an mbox file (its first line is no 'From <sender> <date>' separator) "
                      "nor one e-mail message (header lines, then a blank line): nothing imported")


def _first_line(handle: BinaryIO) -> tuple[bytes, int]:
    """The first line that is not empty, and the bytes read up to its end."""
    position = 0
    while True:
        line = handle.readline(LINE_PIECE)
        position += len(line)
        if line.strip(b"\r\n") or not line:
            return line, position


def _pieces(handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(piece, starts a line): lines, a long one in pieces of LINE_PIECE bytes."""
    at_start = True
    while line := handle.readline(LINE_PIECE):
        yield line, at_start
        at_start = line.endswith(b"\n")


class _Collected:
    """One message's lines, as far as `max_bytes`: past it only the head and the size are kept."""

    def __init__(self, max_bytes: int, *, unescape: bool) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.max_bytes = max_bytes
        self.unescape = unescape
        self.cut = False
        self.last = b""

    def add(self, piece: bytes, at_start: bool) -> None:
        if self.unescape and at_start and piece[:1] == b">" and _FROM_QUOTED.match(piece):
            piece = piece[1:]
        self.size += len(piece)
        self.last = piece
        if self.cut:
            return
        self.lines.append(piece)
        if self.size > self.max_bytes:
            self.lines, self.cut = [b"".join(self.lines)[:HEAD_KEPT]], True

    def item(self, position: int, *, mbox: bool) -> Item:
        if self.cut:
            head = crlf(self.lines[0])
            size = self.size - (len(self.last) if mbox and self.last in (b"\n", b"\r\n") else 0)
            return Item(content_uid(b"%d\n" % size + head), head, position, size)
        lines = self.lines
        if mbox and lines and lines[-1] in (b"\n", b"\r\n"):
            lines = lines[:-1]  # the blank line before the next separator
        raw = b"".join(lines)
        delivered = as_delivered(raw)
        return Item(content_uid(raw), delivered, position, len(delivered))


def _mbox(handle: BinaryIO, position: int, max_bytes: int) -> Iterator[Item]:
    message = _Collected(max_bytes, unescape=True)
    for piece, at_start in _pieces(handle):
        if at_start and is_separator(piece):
            yield message.item(position, mbox=True)
            message = _Collected(max_bytes, unescape=True)
        else:
            message.add(piece, at_start)
        position += len(piece)
    yield message.item(position, mbox=True)


def _single_message(handle: BinaryIO, first: bytes, position: int, max_bytes: int) -> Iterator[Item]:
    """A file that starts with a header line: one message, read whole. Refused (SourceError)
    when its header block is not one, or when a separator line follows a blank line: then
    it is an mbox that lost its first separator, and importing it as one mail would bury
    every other mail in its body."""
    message = _Collected(max_bytes, unescape=False)
    message.add(first, True)
    in_header, blank_before = True, False
    for piece, at_start in _pieces(handle):
        if at_start and in_header:
            if piece in (b"\n", b"\r\n"):
                in_header = False
            elif not (piece[:1] in (b" ", b"\t") or _HEADER_FIELD.match(piece)) or message.size > HEADER_LIMIT:
                raise SourceError("neither an mbox file (its first line is no 'From <sender> <date>' separator) "
                                  "nor one e-mail message (its header block ends at a line that is no header)")
        elif at_start and blank_before and is_separator(piece):
            raise SourceError("looks like an mbox file without the separator line ('From <sender> <date>') "
                              "before its first message: nothing imported")
        message.add(piece, at_start)
        position += len(piece)
        blank_before = piece in (b"\n", b"\r\n")
    yield message.item(position, mbox=False)


def as_delivered(raw: bytes) -> bytes:
    """A message from a file in the form an IMAP server delivers it: CRLF line ends, ending
    in one line end, without the status headers an mbox writer adds (see _LOCAL_FIELD)."""
    if not raw:
        return raw
    end = header_end(raw)
    head = raw[:end]
    if _LOCAL_FIELD.search(head):
        head = b"".join(_without_local_fields(head.splitlines(keepends=True)))
    # mbox writers put a blank line between two messages, some two: the message ends before.
    body = raw[end:].rstrip(b"\r\n")
    if body:
        body += b"\n"
    elif not head.endswith(b"\n"):
        head += b"\n"
    return crlf(head + body)


def header_end(raw: bytes) -> int:
    """Where the header block ends: after its blank line, or the end of `raw`."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := raw.find(mark)) >= 0]
    return min(ends) if ends else len(raw)


def _without_local_fields(lines: list[bytes]) -> Iterator[bytes]:
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and dropping:
            continue  # a continuation of the dropped field
        dropping = _LOCAL_FIELD.match(line) is not None
        if not dropping:
            yield line


def content_uid(raw: bytes) -> int:
    """A stable 63-bit number for a message's bytes."""
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") >> 1


# -- Maildir ---------------------------------------------------------------------------

_DELIVERY_SECONDS = re.compile(r"(\d+)(?:[.:_]|$)")


def maildir_uid(key: str) -> int:
    """A stable 63-bit number for a Maildir file: its unique name, without the flags."""
    unique = key.split(":", 1)[0]
    return int.from_bytes(hashlib.sha256(unique.encode()).digest()[:8], "big") >> 1


def maildir_items(path: Path, *, max_bytes: int) -> tuple[int, Iterator[Item]]:
    """(count, items) of the messages in `new/` and `cur/`, oldest delivery first.

    `tmp/` holds deliveries still being written; dot-files (`.DS_Store`) and directories are
    no mail. An entry that cannot be read (a broken link, a file expunged meanwhile) comes
    as an Item with its `problem`: the import reports it and goes on.
    """
    entries = sorted(_maildir_entries(path), key=lambda entry: entry[0])

    def items() -> Iterator[Item]:
        for number, (_, name, file) in enumerate(entries, 1):
            try:
                raw, size = _read_file(file, max_bytes)
            except OSError as err:
                yield Item(0, b"", number, 0, f"{name}: {err.strerror or err}")
                continue
            yield Item(maildir_uid(file.name), raw, number, size)

    return len(entries), items()


def _maildir_entries(path: Path) -> Iterator[tuple[tuple[float, str], str, Path]]:
    """(order, name, path) of each entry: the delivery time at the start of a Maildir name
    (`1456822800.M1P2.host:2,S`), else the file's mtime; numbered names in number order."""
    for sub in ("new", "cur"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") or entry.is_dir():
                continue
            found = _DELIVERY_SECONDS.match(entry.name)
            when = float(found.group(1)) if found else _mtime(entry)
            yield (when, entry.name), f"{sub}/{entry.name}", Path(entry.path)


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:  # a broken link (or gone already): reported when it is read
        try:
            return entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            return 0.0


def _read_file(file: Path, max_bytes: int) -> tuple[bytes, int]:
    """(raw, size): the whole message, or only its head when it is over `max_bytes`."""
    with file.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            return crlf(handle.read(HEAD_KEPT)), size
        raw = crlf(handle.read())
        return raw, len(raw)


def crlf(raw: bytes) -> bytes:
    """CRLF line ends, as IMAP delivers mail (Maildir files have LF)."""
    return _BARE_LF.sub(b"\r\n", raw)


# -- IMAP ------------------------------------------------------------------------------

FETCH_CHUNK = 100


def imap_items(settings: ImapSettings, folder: str, *,
               max_bytes: int) -> tuple[str, int, int, Iterator[Item], Callable[[], None]]:
    """(name, uidvalidity, count, items, close) for an IMAP folder opened read-only; of a
    message over `max_bytes` only the head is fetched."""
    from .fetch import connect_imap, mailbox_name

    client = connect_imap(settings)
    selected = client.select_folder(folder, readonly=True)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    uids = sorted(client.search(["ALL"]))
    name = mailbox_name(settings.model_copy(update={"folder": folder}))
    head = f"BODY.PEEK[]<0.{HEAD_KEPT}>"

    def items() -> Iterator[Item]:
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start:start + FETCH_CHUNK]
            sizes = {uid: int(data.get(b"RFC822.SIZE", 0))
                     for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items()}
            large = [uid for uid in chunk if sizes.get(uid, 0) > max_bytes]
            small = [uid for uid in chunk if uid not in large]
            whole = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            heads = client.fetch(large, [head]) if large else {}
            for number, uid in enumerate(chunk, start + 1):
                if uid in heads:
                    data = heads[uid].get(b"BODY[]<0>")
                    if data is not None:
                        yield Item(uid, bytes(data), number, sizes[uid])
                    continue
                data = whole.get(uid, {}).get(b"BODY[]")
                if data is not None:
                    yield Item(uid, bytes(data), number, len(data))

    def close() -> None:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may be gone
            pass

    return name, uidvalidity, len(uids), items(), close
