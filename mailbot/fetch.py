"""IMAP adapter: list new UIDs, download bodies without setting \\Seen, move what is done;
`ImapFolders` reads and deletes mail in the robot's other folders for retention. Both sign in
with the password, or with an OAuth 2.0 token (XOAUTH2, `oauth2.TokenCache`)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from .config import ImapSettings
from .errors import FetchError
from .oauth2 import TOKEN_REFUSED_HINT, TOKENS, OAuth2Error, TokenCache

log = logging.getLogger("mailbot.fetch")

_NETWORK_ERRORS = (IMAPClientError, OSError, socket.timeout, ssl.SSLError, EOFError)


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes


class Mailbox(Protocol):
    """What the pipeline needs from a mailbox."""

    name: str
    uidvalidity: int

    def uids(self) -> list[int]: ...
    def sizes(self, uids: Sequence[int]) -> dict[int, int]: ...
    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMail]: ...
    def move(self, uids: Sequence[int], folder: str) -> None: ...
    def close(self) -> None: ...


def mailbox_name(settings: ImapSettings) -> str:
    """The key under which receipts of this mailbox are stored."""
    return f"{settings.username}@{settings.host}:{settings.port}/{settings.folder}"


def connect_imap(settings: ImapSettings, *, ssl_context: ssl.SSLContext | None = None,
                 tokens: TokenCache | None = None) -> imapclient.IMAPClient:
    """A logged-in client, over plain, STARTTLS or implicit TLS as configured; with
    `imap.oauth2`, signed in with an access token from `tokens` (default: the process's)."""
    try:
        context = ssl_context or ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        client = imapclient.IMAPClient(settings.host, port=settings.port,
                                       ssl=settings.security == "ssl", ssl_context=context,
                                       timeout=settings.timeout_seconds)
        if settings.security == "starttls":
            client.starttls(context)
        # imapclient writes commands in pieces; without NODELAY each costs a 40 ms ack delay.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if settings.oauth2 is not None:
            _sign_in_with_token(client, settings, tokens or TOKENS)
        else:
            assert settings.password is not None  # config: password or oauth2
            client.login(settings.username, settings.password.get_secret_value())
    except LoginError as err:
        raise FetchError(f"IMAP login as {settings.username} on {settings.host} refused") from err
    except OAuth2Error as err:
        raise FetchError(f"IMAP sign-in as {settings.username} on {settings.host} not possible: {err}") from err
    except _NETWORK_ERRORS as err:
        raise FetchError(f"IMAP connection to {settings.host}:{settings.port} failed: {err}"
                         f"{_tls_hint(err)}") from err
    return client


def _sign_in_with_token(client: imapclient.IMAPClient, settings: ImapSettings, tokens: TokenCache) -> None:
    """AUTHENTICATE XOAUTH2. A token the server refuses though we hold it as fresh (revoked,
    or its lifetime cut short) is replaced once; a new one refused too is a FetchError."""
    assert settings.oauth2 is not None
    if not client.has_capability("AUTH=XOAUTH2"):
        raise FetchError(f"IMAP server {settings.host} offers no AUTH=XOAUTH2: sign in with imap.password instead")
    token = tokens.token(settings.oauth2)
    try:
        client.oauth2_login(settings.username, token)
        return
    except LoginError:
        tokens.refused(settings.oauth2, token)
    token = tokens.token(settings.oauth2)
    try:
        client.oauth2_login(settings.username, token)
    except LoginError as err:
        raise FetchError(f"IMAP sign-in (XOAUTH2) as {settings.username} on {settings.host} refused a new "
                         f"token: {err}{TOKEN_REFUSED_HINT}") from err


def _tls_hint(err: BaseException) -> str:
    """What to change in config.yaml for the two TLS failures an administrator meets at set-up."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return (" (the server's certificate is not trusted: set imap.ca_file to the CA certificate "
                "(PEM) that signed it; changing imap.security does not help)")
    if isinstance(err, ssl.SSLError) and err.reason == "WRONG_VERSION_NUMBER":
        return (" (imap.port and imap.security do not match: the server does not speak TLS on this "
                "port; 993 is ssl, 143 is starttls or none)")
    return ""


class ImapMailbox:
    """One IMAP folder, selected read-write."""

    def __init__(self, settings: ImapSettings, *, ssl_context: ssl.SSLContext | None = None,
                 tokens: TokenCache | None = None) -> None:
        self.settings = settings
        self.name = mailbox_name(settings)
        self._client = connect_imap(settings, ssl_context=ssl_context, tokens=tokens)
        try:
            for folder in (settings.processed_folder, settings.quarantine_folder):
                if not self._client.folder_exists(folder):
                    self._client.create_folder(folder)
                    log.warning("IMAP folder %r did not exist on %s: created it (check imap.processed_folder "
                                "and imap.quarantine_folder for a typo)", folder, self.name)
            selected = self._client.select_folder(settings.folder)
            self.uidvalidity = int(selected[b"UIDVALIDITY"])
            self._can_move = self._client.has_capability("MOVE")
            self._has_uidplus = self._client.has_capability("UIDPLUS")
        except _NETWORK_ERRORS as err:
            self.close()
            raise FetchError(f"IMAP folder {settings.folder!r} unusable: {err}") from err

    @property
    def client(self) -> imapclient.IMAPClient:
        return self._client

    def uids(self) -> list[int]:
        try:
            return sorted(self._client.search(["NOT", "DELETED"]))
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP SEARCH failed: {err}") from err

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """The size in bytes of each message (RFC822.SIZE), without fetching it."""
        return _sizes(self._client, uids, "IMAP FETCH failed")

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMail]:
        """Bodies in UID order; BODY.PEEK[] so a failed run leaves \\Seen untouched."""
        if not uids:
            return
        try:
            response = self._client.fetch(list(uids), ["BODY.PEEK[]"])
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP FETCH failed: {err}") from err
        for uid in sorted(response):
            data = response[uid].get(b"BODY[]")
            if data is not None:
                yield FetchedMail(uid=uid, raw=bytes(data))

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        try:
            if self._can_move:
                self._client.move(list(uids), folder)
            else:
                self._client.copy(list(uids), folder)
                self._client.delete_messages(list(uids))
                if self._has_uidplus:
                    self._client.uid_expunge(list(uids))
                else:
                    self._client.expunge()
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP MOVE to {folder!r} failed: {err}") from err

    def append(self, folder: str, raw: bytes) -> None:
        """Store a copy (e.g. of a sent reply) in `folder`."""
        try:
            if not self._client.folder_exists(folder):
                self._client.create_folder(folder)
                log.warning("IMAP folder %r did not exist on %s: created it", folder, self.name)
            self._client.append(folder, raw, flags=[imapclient.SEEN])
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP APPEND to {folder!r} failed: {err}") from err

    def idle_wait(self, seconds: float, stop: object | None = None, *, slice_seconds: float = 1.0) -> bool:
        """IMAP IDLE (RFC 2177) for up to `seconds`: True as soon as the server reports new
        mail (EXISTS/RECENT), False when the time is up or `stop.is_set()`. IDLE is ended
        (DONE) before returning, so the caller may re-issue it; a dropped connection raises
        FetchError."""
        import time

        deadline = time.monotonic() + seconds
        try:
            self._client.idle()
            try:
                while time.monotonic() < deadline:
                    if stop is not None and stop.is_set():  # type: ignore[attr-defined]
                        return False
                    wait = max(0.0, min(slice_seconds, deadline - time.monotonic()))
                    for response in self._client.idle_check(timeout=wait):
                        if response and response[0] == b"BYE":  # the server is going away
                            raise FetchError(f"IMAP server closed the connection: {response!r}")
                        if len(response) > 1 and response[1] in (b"EXISTS", b"RECENT"):
                            return True
                return False
            finally:
                self._client.idle_done()
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP IDLE on {self.settings.folder!r} failed: {err}") from err

    def uidnext(self) -> int:
        """The UID the next message delivered to the folder will get: it moves with every delivery.
        NOOP first: for the selected folder the server answers from the session's last view."""
        try:
            self._client.noop()
            return int(self._client.folder_status(self.settings.folder, [b"UIDNEXT"])[b"UIDNEXT"])
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP STATUS of {self.settings.folder!r} failed: {err}") from err

    def abort(self) -> None:
        """Drop a connection known to be dead, without a LOGOUT that could wait for a timeout."""
        try:
            self._client.shutdown()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self) -> None:
        _log_out(self._client)


class ImapFolders:
    """One IMAP account, for retention (`folder_retention`) and `mailbot quarantine retry`: one
    folder at a time is selected, read-only for a dry run, its mail searched, read by headers,
    sizes or whole, moved to another folder, and deleted by UID (\\Deleted, then UID EXPUNGE
    with UIDPLUS; without it a plain EXPUNGE, which also removes mail someone else flagged
    \\Deleted in that folder)."""

    def __init__(self, settings: ImapSettings, *, readonly: bool = False,
                 ssl_context: ssl.SSLContext | None = None, tokens: TokenCache | None = None) -> None:
        self.name = f"{settings.username}@{settings.host}:{settings.port}"
        self.readonly = readonly
        self._client = connect_imap(settings, ssl_context=ssl_context, tokens=tokens)
        self._folder = ""

    def select(self, folder: str) -> bool:
        """Select `folder`; False when it does not exist (nothing to delete there)."""
        self._folder = folder
        try:
            if not self._client.folder_exists(folder):
                return False
            self._client.select_folder(folder, readonly=self.readonly)
            return True
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP folder {folder!r} on {self.name} unusable: {err}") from err

    def uids(self, before: date | None = None) -> list[int]:
        """Mail not flagged \\Deleted in the selected folder; `before`: arrived (INTERNALDATE) before that day."""
        criteria: list[object] = ["NOT", "DELETED"]
        if before is not None:
            criteria += ["BEFORE", before]
        try:
            return sorted(self._client.search(criteria))
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP SEARCH in {self._folder!r} failed: {err}") from err

    def search_copies(self, message_id: str | None, size: int) -> list[int]:
        """Mail in the selected folder that may be a given one: with its Message-ID in that
        header (a substring search, so the caller compares the content), else of its exact
        size (RFC822.SIZE)."""
        criteria: list[object] = ["NOT", "DELETED"]
        criteria += (["HEADER", "Message-ID", message_id] if message_id
                     else ["LARGER", max(size - 1, 0), "SMALLER", size + 1])
        try:
            return sorted(self._client.search(criteria))
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP SEARCH in {self._folder!r} failed: {err}") from err

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move mail of the selected folder to `folder` (MOVE, else COPY and delete)."""
        if not uids or self.readonly:
            return
        try:
            if self._client.has_capability("MOVE"):
                self._client.move(list(uids), folder)
                return
            self._client.copy(list(uids), folder)
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP MOVE from {self._folder!r} to {folder!r} failed: {err}") from err
        self.delete(uids)

    def message_ids(self, uids: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        """uid → (its Message-ID header lines as stored, its size in bytes), nothing else fetched."""
        if not uids:
            return {}
        try:
            response = self._client.fetch(list(uids), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "RFC822.SIZE"])
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP FETCH in {self._folder!r} failed: {err}") from err
        found = {}
        for uid, data in response.items():
            header = next((bytes(v) for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
            found[uid] = (header, int(data.get(b"RFC822.SIZE", 0)))
        return found

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        return _sizes(self._client, uids, f"IMAP FETCH in {self._folder!r} failed")

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole mail, without setting \\Seen."""
        if not uids:
            return {}
        try:
            response = self._client.fetch(list(uids), ["BODY.PEEK[]"])
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP FETCH in {self._folder!r} failed: {err}") from err
        return {uid: bytes(data[b"BODY[]"]) for uid, data in response.items() if data.get(b"BODY[]") is not None}

    def delete(self, uids: Sequence[int]) -> None:
        if not uids or self.readonly:
            return
        try:
            self._client.add_flags(list(uids), [imapclient.DELETED], silent=True)
            if self._client.has_capability("UIDPLUS"):
                self._client.uid_expunge(list(uids))
            else:
                self._client.expunge()
        except _NETWORK_ERRORS as err:
            raise FetchError(f"IMAP delete in {self._folder!r} failed: {err}") from err

    def close(self) -> None:
        _log_out(self._client)


def _sizes(client: imapclient.IMAPClient, uids: Sequence[int], failure: str) -> dict[int, int]:
    """RFC822.SIZE of each message; a network failure is a FetchError starting with `failure`."""
    if not uids:
        return {}
    try:
        response = client.fetch(list(uids), ["RFC822.SIZE"])
    except _NETWORK_ERRORS as err:
        raise FetchError(f"{failure}: {err}") from err
    return {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in response.items()}


def _log_out(client: imapclient.IMAPClient) -> None:
    """LOGOUT, or drop the connection when that fails (it may already be gone)."""
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection may already be gone
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass
