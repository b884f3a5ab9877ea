"""Who may receive an automatic reply to a mail. Pure."""

from __future__ import annotations

from collections.abc import Callable, Collection

from .model import Address, Classification, Mail

NON_PERSON_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply",
                         "do-not-reply", "bounce", "bounces")


def reply_recipient(mail: Mail, classification: Classification, *,
                    own_addresses: Collection[str], webform_senders: Collection[str] = (),
                    blocked: Collection[str] = (),
                    is_service: Callable[[str], bool] = lambda _email: False) -> Address | None:
    """The address to answer, or None: never a robot, ourselves, a service or a dead address.

    A web-form robot listed in the config puts the citizen in Reply-To; everyone else
    is answered at their From address (a Reply-To of anyone else is not trusted: it
    could send the office's words to a third party). A web-form mail without Reply-To
    has nobody to answer.
    """
    if classification.is_automatic or mail.from_ is None:
        return None
    target = mail.from_
    if target.email.lower() in {w.lower() for w in webform_senders}:
        if not mail.reply_to:
            return None
        target = mail.reply_to[0]
    email = target.email.lower()
    local = email.partition("@")[0]
    own = {a.lower() for a in own_addresses}
    if (not email or "@" not in email or email in own or email in {b.lower() for b in blocked}
            or local in NON_PERSON_LOCALPARTS or is_service(email)):
        return None
    return target if target.email == email else Address(target.name, email)


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to: lower-cased, without its +tag (`desk+7@` is `desk@`)."""
    local, at, domain = address.lower().rpartition("@")
    if not at:
        return address.lower()
    return f"{local.split('+', 1)[0] or local}@{domain}"
