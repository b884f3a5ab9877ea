"""Two workers, one citizen: the same citizen's mails with Message-IDs of their own, taken
by two workers at once (two mailboxes, or two pollers), are matched as one after the other
would be: one case, the second mail flagged possible_duplicate, not a second case."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import complaint
from helpers import append_all, counts, folder_count, poll_together, two_mailboxes
from mailbot import locks
from mailbot.db import Case, Message

CITIZENS = 4
BODY = ("Geachte,\n\nIk wacht al {n} maanden op een beslissing over mijn huurpremie bij het "
        "Agentschap Wonen in Vlaanderen. Mijn dossier {n}7{n} is volledig, maar niemand antwoordt "
        "op mijn mails of telefoons.\n\nMet vriendelijke groeten,\nBurger {n}")


def _mail(n: int, box: str) -> bytes:
    """Citizen n's complaint to one of our mailboxes: sent twice, a new Message-ID each time."""
    return complaint(sender=f"burger{n}@example.be", name=f"Burger {n}", body=BODY.format(n=n),
                     subject=f"Klacht over mijn huurpremie {n}", to=f"{box}@vlaamseombudsdienst.be")


def _per_citizen(app) -> dict[str, tuple[int, int, bool]]:
    """citizen address -> (cases, incoming mails, a case flagged possible_duplicate)."""
    with app.sessions() as session:
        cases = session.execute(select(Case.citizen_email, Case.id, Case.flags)).all()
        mails = dict(session.execute(select(Message.case_id, func.count()).where(Message.direction == "in")
                                     .group_by(Message.case_id)).all())
    found: dict[str, tuple[int, int, bool]] = {}
    for email, case_id, flags in cases:
        n, incoming, flagged = found.get(email, (0, 0, False))
        found[email] = (n + 1, incoming + mails.get(case_id, 0), flagged or "possible_duplicate" in flags)
    return found


@pytest.mark.dovecot
def test_the_same_citizen_s_two_mails_in_two_mailboxes_at_once_make_one_case(make_app, db_url, dovecot):
    """Each citizen sends the complaint to klachten@ and again, with a new Message-ID, to
    plaintes@; the two mailboxes are polled at once, their batches in opposite order (the
    locks must not deadlock). As one after the other: one case per citizen with both mails,
    flagged possible_duplicate. Before, on PostgreSQL the second worker matched against
    cases without the first one's uncommitted case: two cases, two acknowledgments."""
    app = two_mailboxes(make_app, db_url, dovecot)
    append_all(dovecot, [_mail(n, "klachten") for n in range(CITIZENS)])
    append_all(dovecot, [_mail(n, "plaintes") for n in reversed(range(CITIZENS))], folder="Plaintes")
    poll_together(app)
    assert _per_citizen(app) == {f"burger{n}@example.be": (1, 2, True) for n in range(CITIZENS)}
    assert counts(app)["outbox"] == CITIZENS
    assert folder_count(dovecot, "INBOX") == folder_count(dovecot, "Plaintes") == 0


# -- which keys a mail locks ----------------------------------------------------------------

def _keys(headers: str) -> set[int]:
    return set(locks._identity_keys((headers + "\r\n\r\nTekst\r\n").encode("utf-8")))


def test_a_sender_is_locked_by_the_address_matching_compares():
    """The address as parse normalises it (case, display name, folding, encoded name), so
    two spellings of one citizen's address share a lock, and two citizens do not."""
    plain = _keys("From: jan@example.be")
    assert plain == _keys("From: =?utf-8?q?Jan_P=C3=A9eters?=\r\n <JAN@Example.BE>")
    assert plain == _keys("\ufeffFrom: \"Peeters, Jan\" <jan@example.be>, other@example.be")
    assert plain == _keys("Sender: Jan <jan@example.be>")  # no From: the Sender is the author
    assert plain != _keys("From: an@example.be")
    assert len(_keys("From: jan@example.be\r\nMessage-ID: <1@x>")) == 2


def test_a_web_form_mail_locks_the_citizen_it_names_in_reply_to():
    """A web form's mail comes From the form robot; matching takes the citizen from
    Reply-To, so that address is locked as well as the robot's."""
    direct = _keys("From: An <an@example.be>")
    form = _keys("From: webformulier@vlaamseombudsdienst.be\r\nReply-To: An <an@example.be>")
    assert direct < form and len(form) == 2


def test_a_mail_without_an_address_locks_nothing_but_its_message_id():
    """No From, Sender or Reply-To address (a name alone never joins a case by identity)."""
    assert _keys("From: Jan Peeters") == set()
    assert len(_keys("From: undisclosed-recipients:;\r\nMessage-ID: <2@x>")) == 1
