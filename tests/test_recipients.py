"""Who an automatic reply may go to: `recipients.reply_recipient`, pure."""

from __future__ import annotations

from mailbot.model import Address, Classification, Kind, Mail
from mailbot.recipients import reply_recipient

OWN = frozenset({"klachten@vlaamseombudsdienst.be"})
NEW = Classification(Kind.NEW_COMPLAINT, "nl")


def _mail(sender: str = "jan@example.be", *, reply_to: tuple[str, ...] = (), name: str = "Jan") -> Mail:
    return Mail(message_id="m@example.be", subject="Klacht", from_=Address(name, sender),
                reply_to=tuple(Address("", r) for r in reply_to))


def test_sender_is_answered() -> None:
    """An ordinary complaint is answered at its From address."""
    assert reply_recipient(_mail(), NEW, own_addresses=OWN) == Address("Jan", "jan@example.be")


def test_reply_to_of_an_ordinary_sender_is_not_trusted() -> None:
    """A Reply-To set by anyone but a listed web-form robot is ignored: the sender is answered."""
    mail = _mail(reply_to=("someone.else@example.org",))
    assert reply_recipient(mail, NEW, own_addresses=OWN).email == "jan@example.be"


def test_webform_robot_is_answered_at_reply_to() -> None:
    """A mail from a web-form robot listed in config is answered at its Reply-To (the citizen)."""
    mail = _mail("webform@vlaamseombudsdienst.be", reply_to=("an@example.be",))
    got = reply_recipient(mail, NEW, own_addresses=OWN, webform_senders=["WebForm@vlaamseombudsdienst.be"])
    assert got is not None and got.email == "an@example.be"


def test_webform_robot_without_reply_to_gets_nothing() -> None:
    """A web-form mail without Reply-To has no citizen to answer; the robot itself is not answered."""
    mail = _mail("webform@vlaamseombudsdienst.be")
    assert reply_recipient(mail, NEW, own_addresses=OWN,
                           webform_senders=["webform@vlaamseombudsdienst.be"]) is None


def test_webform_reply_to_pointing_at_us_gets_nothing() -> None:
    """A web-form Reply-To that is our own address is not answered (no mail to ourselves)."""
    mail = _mail("webform@vlaamseombudsdienst.be", reply_to=("klachten@vlaamseombudsdienst.be",))
    assert reply_recipient(mail, NEW, own_addresses=OWN,
                           webform_senders=["webform@vlaamseombudsdienst.be"]) is None


def test_automatic_mail_gets_nothing() -> None:
    """Automatic mail (auto-reply, bounce, list) is never answered."""
    automatic = Classification(Kind.AUTOMATIC, "nl", auto_reason="auto-submitted")
    assert reply_recipient(_mail(), automatic, own_addresses=OWN) is None


def test_own_address_gets_nothing() -> None:
    """Mail from our own address is never answered, whatever its case."""
    assert reply_recipient(_mail("Klachten@VlaamseOmbudsdienst.be"), NEW, own_addresses=OWN) is None


def test_robot_localparts_get_nothing() -> None:
    """noreply@, mailer-daemon@ and the like are never answered."""
    for sender in ("noreply@agency.be", "mailer-daemon@mx.example.be", "no-reply@example.org"):
        assert reply_recipient(_mail(sender), NEW, own_addresses=OWN) is None


def test_service_address_gets_nothing() -> None:
    """A known service or agency address (routing's `is_service`) is never answered."""
    got = reply_recipient(_mail("info@onderwijs.vlaanderen.be"), NEW, own_addresses=OWN,
                          is_service=lambda email: email.endswith("@onderwijs.vlaanderen.be"))
    assert got is None


def test_blocked_address_gets_nothing() -> None:
    """An address known to be undeliverable is not answered."""
    assert reply_recipient(_mail(), NEW, own_addresses=OWN, blocked={"jan@example.be"}) is None


def test_no_sender_gets_nothing() -> None:
    """A mail without a usable From is not answered."""
    mail = Mail(message_id="", subject="x", from_=None)
    assert reply_recipient(mail, NEW, own_addresses=OWN) is None
