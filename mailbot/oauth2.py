"""OAuth 2.0 access tokens for signing in to IMAP and SMTP with SASL XOAUTH2.

    token_form(settings, refresh_token)    the form POSTed to the token endpoint (pure)
    read_grant(status, body, endpoint)     its answer: a Grant, or OAuth2Error (pure)
    TokenCache                             one token per endpoint, client, scope and grant,
                                           kept until shortly before it expires; `refused`
                                           drops one a server refused
    post_form(url, form)                   the HTTP request (urllib): the only I/O here

An OAuth2Error carries the endpoint's `error` and `error_description`, never the client
secret, the refresh token or an access token: the adapters report it as a failed sign-in
(fetch: FetchError, send: SendError).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from pydantic import SecretStr

from .config import OAuth2Settings
from .errors import MailbotError

log = logging.getLogger("mailbot.oauth2")

TIMEOUT_SECONDS = 30.0  # per token request
EARLY_SECONDS = 300.0  # a token is replaced this long before it expires (at most a tenth of its life)
LIFETIME_UNKNOWN = 600.0  # seconds a token without `expires_in` is kept
MAX_DETAIL = 240  # characters of the endpoint's error description kept in a message
# What an administrator checks when a mail server refuses a token the endpoint issued.
TOKEN_REFUSED_HINT = (" (the token endpoint issued it, the mail server refuses it: check that the app may use this "
                      "mailbox; Microsoft 365: IMAP.AccessAsApp or SMTP.SendAsApp and the mailbox permission of its "
                      "service principal; Google: scope https://mail.google.com/)")

Post = Callable[[str, dict[str, str]], tuple[int, bytes]]
CacheKey = tuple[str, ...]


class OAuth2Error(MailbotError):
    """The token endpoint could not be reached or gave no access token."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # the endpoint answered with an OAuth2 `error` (invalid_grant, …)


@dataclass(frozen=True)
class Grant:
    """What the token endpoint gave: an access token, its lifetime, maybe a new refresh token."""

    access_token: str = field(repr=False)
    expires_in: float | None
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    renew_at: float  # on the cache's clock

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


def renew_at(now: float, expires_in: float | None) -> float:
    """When to fetch the next token: shortly before this one expires, so a sign-in never
    presents one that runs out on the way."""
    lifetime = LIFETIME_UNKNOWN if expires_in is None else expires_in
    return now + lifetime - min(EARLY_SECONDS, lifetime / 10)


def token_form(settings: OAuth2Settings, refresh_token: str | None = None) -> dict[str, str]:
    """The token request (RFC 6749 4.4 and 6), client credentials in the body."""
    form = {"grant_type": settings.grant_type, "client_id": settings.client_id}
    if settings.client_secret is not None:
        form["client_secret"] = settings.client_secret.get_secret_value()
    if settings.scope:
        form["scope"] = settings.scope
    if settings.grant_type == "refresh_token":
        assert settings.refresh_token is not None  # config: a refresh_token grant has one
        form["refresh_token"] = refresh_token or settings.refresh_token.get_secret_value()
    return form


def read_grant(status: int, body: bytes, endpoint: str) -> Grant:
    """The endpoint's answer as a Grant; an OAuth2Error naming its `error` otherwise."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise OAuth2Error(f"OAuth2 token endpoint {endpoint} answered HTTP {status}, not with JSON")
    if status != 200 or "error" in answer:
        raise OAuth2Error(f"OAuth2 token endpoint {endpoint} refused: {_described(answer)} (HTTP {status})",
                          refused="error" in answer)
    token, token_type = answer.get("access_token"), str(answer.get("token_type", "bearer"))
    if not isinstance(token, str) or not token or token_type.lower() != "bearer":
        raise OAuth2Error(f"OAuth2 token endpoint {endpoint} gave no bearer access token")
    expires_in = answer.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else None  # Microsoft once sent strings
    except (TypeError, ValueError):
        lifetime = None
    refresh = answer.get("refresh_token")
    return Grant(token, lifetime, refresh if isinstance(refresh, str) and refresh else None)


def _described(answer: dict[str, object]) -> str:
    """`error: error_description` on one line, the description shortened."""
    error = str(answer.get("error") or "no error code")
    detail = " ".join(str(answer.get("error_description") or "").split())
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL - 1] + "…"
    return f"{error}: {detail}" if detail else error


def _redacted(text: str, settings: OAuth2Settings) -> str:
    """`text` without the client secret or refresh token, should an endpoint echo one."""
    for secret in (settings.client_secret, settings.refresh_token):
        value = secret.get_secret_value() if secret is not None else ""
        if len(value) >= 4:
            text = text.replace(value, "[hidden]")
    return text


def post_form(url: str, form: dict[str, str]) -> tuple[int, bytes]:
    """POST `form`; (HTTP status, body), an error status included. Unreachable: OAuth2Error."""
    request = urllib.request.Request(url, data=urlencode(form).encode("ascii"), method="POST",
                                     headers={"Accept": "application/json",
                                              "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise OAuth2Error(f"OAuth2 token endpoint {_endpoint(url)} unreachable: {reason}") from None


def _endpoint(url: str) -> str:
    """The endpoint as messages name it: host and port (the path is long and says little)."""
    return urlsplit(url).netloc


def cache_key(settings: OAuth2Settings) -> CacheKey:
    """Equal for blocks that get the same token (IMAP and SMTP of one mailbox, usually). The
    credentials count as digests: a block with a wrong secret must not borrow another's token."""
    def digest(secret: SecretStr | None) -> str:
        value = secret.get_secret_value() if secret is not None else ""
        return hashlib.sha256(value.encode()).hexdigest()

    return (settings.token_url, settings.client_id, settings.scope, settings.grant_type,
            digest(settings.client_secret), digest(settings.refresh_token))


class TokenCache:
    """Access tokens shared by every sign-in of the process, fetched when missing or about to
    expire. Thread-safe: one request per key at a time, the other sign-ins wait for its token."""

    def __init__(self, *, post: Post = post_form, clock: Callable[[], float] = time.monotonic) -> None:
        self._post, self._clock = post, clock
        self._tokens: dict[CacheKey, Token] = {}
        # Microsoft returns a new refresh token with each access token: the latest is used next.
        self._refresh_tokens: dict[CacheKey, str] = {}
        self._locks: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def token(self, settings: OAuth2Settings) -> str:
        """A fresh access token for `settings`; OAuth2Error when the endpoint fails."""
        key = cache_key(settings)
        with self._lock(key):
            held = self._tokens.get(key)
            if held is None or not held.fresh(self._clock()):
                held = self._fetch(settings, key)
                self._tokens[key] = held
            return held.value

    def refused(self, settings: OAuth2Settings, value: str) -> None:
        """A server refused `value` (revoked, or expired early): the next `token` fetches a new
        one, unless another sign-in already replaced it."""
        key = cache_key(settings)
        with self._lock(key):
            held = self._tokens.get(key)
            if held is not None and held.value == value:
                del self._tokens[key]

    def _lock(self, key: CacheKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fetch(self, settings: OAuth2Settings, key: CacheKey) -> Token:
        asked_at = self._clock()
        form = token_form(settings, self._refresh_tokens.get(key))
        try:
            status, body = self._post(settings.token_url, form)
            grant = read_grant(status, body, _endpoint(settings.token_url))
        except OAuth2Error as err:
            # A refused newer refresh token: the configured one next. An endpoint that is away
            # or answers a server error keeps it: the provider may have revoked the older one.
            if err.refused:
                self._refresh_tokens.pop(key, None)
            raise OAuth2Error(_redacted(str(err), settings)) from None
        if grant.refresh_token and settings.grant_type == "refresh_token":
            self._refresh_tokens[key] = grant.refresh_token
        log.debug("OAuth2 token for client %s from %s, valid %s s", settings.client_id,
                  _endpoint(settings.token_url), "?" if grant.expires_in is None else f"{grant.expires_in:g}")
        return Token(grant.access_token, renew_at(asked_at, grant.expires_in))


# The process's tokens: IMAP and SMTP, every mailbox and thread, share them.
TOKENS = TokenCache()
