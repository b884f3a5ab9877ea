"""The exception tree of mailbot. Callers catch the base classes.

    MailbotError
    ├── ConfigError        config.yaml missing, malformed, or invalid
    ├── RulesError         rules/ or templates/ invalid
    ├── StoreError         database unreachable or inconsistent
    ├── FetchError         IMAP connection, login or command failed
    ├── OAuth2Error        no access token from the token endpoint (in oauth2.py; reported
    │                      as the FetchError or SendError of the sign-in that needed it)
    ├── SendError          SMTP failure
    │   └── PermanentSendError   the server rejected the message for good (5xx)
    └── ParseError         a message could not be read at all (quarantine)
        └── ReadingAborted   ... because its reading was cut off (watchdog)
"""


class MailbotError(Exception):
    """Root of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """The configuration cannot be used."""


class RulesError(MailbotError):
    """The routing rules or the templates cannot be used."""


class StoreError(MailbotError):
    """The database failed or holds something unexpected."""


class FetchError(MailbotError):
    """The IMAP server could not be reached or refused a command."""


class SendError(MailbotError):
    """An SMTP delivery failed; it may be retried."""


class PermanentSendError(SendError):
    """The SMTP server rejected the message permanently; do not retry."""


class ParseError(MailbotError):
    """A message cannot be read at all and must be quarantined."""


class ReadingAborted(ParseError):
    """The parse worker gave up on a message (it overran its time or crashed the worker)."""
