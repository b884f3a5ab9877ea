"""Two workers, one complaint, two senders: a referral by another ombudsman service racing the
citizen's own mail, and a citizen writing from two addresses at once. Neither pair shares a
sender address or a Message-ID, so the identity locks do not order them; each must still be
matched as one after the other would be: the referral and the citizen's mail make one case,
the second address's mail is flagged possible_duplicate of the first's case."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from conftest import complaint
from helpers import append_all, counts, folder_count, poll_together, two_mailboxes
from mailbot import locks
from mailbot.db import Case
from mailbot.db_engine import make_engine
from mailbot.explain import explain

CITIZENS = 4
TEXT = ("Geachte,\n\nSinds {m} wacht ik op een antwoord van het Agentschap Opgroeien over de "
        "kinderopvangtoeslag voor mijn dochter {n}. Ik heb drie keer gebeld en twee mails gestuurd, "
        "maar ik krijg geen beslissing en geen uitleg.\n\nMet vriendelijke groeten,\nOuder {n}")
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni")


def _text(n: int) -> str:
    return TEXT.format(n=n, m=MONTHS[n % len(MONTHS)])


def _own(n: int, box: str, address: str | None = None) -> bytes:
    return complaint(sender=address or f"ouder{n}@example.be", name=f"Ouder {n}", body=_text(n),
                     subject=f"Klacht kinderopvangtoeslag {n}", to=f"{box}@vlaamseombudsdienst.be")


def _referral(n: int) -> bytes:
    """Citizen n's complaint forwarded to us by the Ghent ombudsman service."""
    cover = ("Geachte collega,\n\nDeze klacht valt onder uw bevoegdheid. Wij sturen ze door.\n\n"
             "Ombudsdienst Stad Gent\n\n________________________________\n"
             f"Van: Ouder {n} <ouder{n}@example.be>\nVerzonden: maandag 23 november 2026 08:12\n"
             f"Aan: Ombudsdienst Gent <ombudsdienst@stad.gent>\nOnderwerp: Klacht kinderopvangtoeslag {n}\n\n")
    return complaint(sender="ombudsdienst@stad.gent", name="Ombudsdienst Stad Gent", body=cover + _text(n),
                     subject=f"TR: Klacht kinderopvangtoeslag {n}", to="klachten@vlaamseombudsdienst.be")


def _cases(app) -> list[Case]:
    with app.sessions() as session:
        return list(session.execute(select(Case).order_by(Case.id)).scalars())


@pytest.mark.dovecot
def test_a_referral_racing_the_citizen_s_own_mail_joins_one_case(make_app, db_url, dovecot):
    """Mailbox one holds the Ghent service's referrals, mailbox two the citizens' own mails
    (in the opposite order), polled at once. Before, on PostgreSQL each worker matched
    without the other's uncommitted case: two cases per citizen, two acknowledgments."""
    app = two_mailboxes(make_app, db_url, dovecot)
    append_all(dovecot, [_referral(n) for n in range(CITIZENS)])
    append_all(dovecot, [_own(n, "plaintes") for n in reversed(range(CITIZENS))], folder="Plaintes")
    poll_together(app)
    cases = _cases(app)
    assert sorted(c.citizen_email for c in cases) == [f"ouder{n}@example.be" for n in range(CITIZENS)]
    for case in cases:  # as one after the other: the referral joins the citizen's case, or the
        # citizen's mail joins the referral's (flagged for staff as a possible duplicate)
        flags = set(case.flags)
        assert {"multi_addressed"} <= flags or {"referred_by", "possible_duplicate"} <= flags
        assert case.also_sent_to == ["ombudsdienst-gent"]
    assert counts(app)["incoming"] == 2 * CITIZENS
    assert folder_count(dovecot, "INBOX") == folder_count(dovecot, "Plaintes") == 0


@pytest.mark.dovecot
def test_one_complaint_from_two_addresses_at_once_is_flagged_a_duplicate(make_app, db_url, dovecot):
    """Each citizen sends the complaint from a home address to one mailbox and from a work
    address to the other, at once: the second case found is flagged possible_duplicate of
    the first, as when the mails come one after the other."""
    app = two_mailboxes(make_app, db_url, dovecot)
    append_all(dovecot, [_own(n, "klachten") for n in range(CITIZENS)])
    append_all(dovecot, [_own(n, "plaintes", f"ouder{n}@werk.example") for n in reversed(range(CITIZENS))],
               folder="Plaintes")
    poll_together(app)
    cases = _cases(app)
    by_id = {c.id: c for c in cases}
    for n in range(CITIZENS):
        pair = [c for c in cases if c.citizen_email in (f"ouder{n}@example.be", f"ouder{n}@werk.example")]
        assert len(pair) == 2
        first, second = sorted(pair, key=lambda c: c.id)
        assert "possible_duplicate" in second.flags and by_id[second.duplicate_of_id] is first


# -- the lock itself ---------------------------------------------------------------------------

def _opening_locks_held(session) -> int:
    return session.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        f" AND classid = {locks.CASE_OPENING_LOCK}")).scalar_one()


@pytest.mark.postgres
def test_the_opening_lock_is_held_to_commit_and_taken_again_after_a_rolled_back_savepoint(pg_url):
    """Taken once a transaction; a savepoint rolled back releases a lock taken inside it
    (a quarantined message in a redone batch), so the next message takes it again."""
    engine = make_engine(pg_url)
    try:
        with Session(engine) as session, session.begin():
            locks.lock_case_opening(session)
            assert _opening_locks_held(session) == 1
            locks.lock_case_opening(session)  # no second statement, no second hold
            assert _opening_locks_held(session) == 1
        with Session(engine) as session, session.begin():
            assert _opening_locks_held(session) == 0  # released at commit
            try:
                with session.begin_nested():
                    locks.lock_case_opening(session)
                    assert _opening_locks_held(session) == 1
                    raise LookupError
            except LookupError:
                pass
            assert _opening_locks_held(session) == 0
            with session.begin_nested():
                locks.lock_case_opening(session)
            assert _opening_locks_held(session) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_rules_explain_does_not_wait_for_a_worker_opening_a_case(make_app, pg_url):
    """`rules explain` is a dry run: it opens no case, so it never waits for the case-opening
    lock a polling worker holds for its whole batch (nor makes the worker wait)."""
    app = make_app(db_url=pg_url)
    with Session(app.sessions.kw["bind"]) as worker, worker.begin():
        assert locks.lock_case_opening(worker)
        done: list[dict] = []
        thread = threading.Thread(target=lambda: done.append(explain(app, complaint())))
        thread.start()
        thread.join(15)
        assert done and "VO-" in json.dumps(done[0]), "explain waited for the worker's lock"
