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
    is answered at their From address.
    """
    if classification.is_automatic or mail.from_ is None:
        return None
    target = mail.from_
    if target.email in webform_senders and mail.reply_to:
        target = mail.reply_to[0]
    email = target.email
    local = email.partition("@")[0]
    if (not email or "@" not in email or email in own_addresses or email in blocked
            or local in NON_PERSON_LOCALPARTS or is_service(email)):
        return None
    return target
