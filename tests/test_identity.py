"""A mail's identity under hostile or concurrent input: an oversized or odd Message-ID, NUL
characters, database errors that are one message's fault, and the same complaint arriving
in two of the office's mailboxes at once."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from conftest import base_config, complaint
from helpers import append_all, counts, folder_count, imap_config
from mailbot.db import Event, Outbox
from mailbot.db_engine import database_unavailable, describe_error
from mailbot.parse import MAX_ID_BYTES, parse_message
from mailbot.scheduler import Runner


def long_message_id(seed: int = 1) -> str:
    """990 CJK characters: about 3,000 bytes, over PostgreSQL's 2,704-byte index row."""
    rng = random.Random(seed)
    return "<" + "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(990)) + "@x>"


# -- parse: the identifier as stored and looked up ----------------------------------------

def test_a_long_message_id_becomes_a_bounded_digest_wherever_it_appears():
    long_id = long_message_id()
    mail = parse_message(complaint(message_id=long_id))
    reply = parse_message(complaint(extra_headers=f"In-Reply-To: {long_id}\r\nReferences: <a@b> {long_id}\r\n"))
    assert len(mail.message_id.encode()) <= MAX_ID_BYTES
    assert mail.message_id == reply.in_reply_to[0] == reply.references[1]
    assert reply.references[0] == "a@b"  # ordinary ones are kept as they are
    assert parse_message(complaint(message_id=long_message_id(2))).message_id != mail.message_id


def test_ordinary_and_international_message_ids_are_kept():
    assert parse_message(complaint(message_id="<abc.123@mail.example.be>")).message_id == "abc.123@mail.example.be"
    assert parse_message(complaint(message_id="<brief-één@voorbeeld.be>")).message_id == "brief-één@voorbeeld.be"


def test_nul_characters_are_dropped_from_subject_and_body():
    mail = parse_message(complaint(subject="Klacht\x00 huurpremie", body="Geen\x00 antwoord van het agentschap."))
    assert mail.subject == "Klacht huurpremie"
    assert "\x00" not in mail.text and "Geen antwoord" in mail.text


# -- which database errors keep the batch in the inbox --------------------------------------

@pytest.mark.postgres
def test_a_statement_over_a_postgres_limit_blames_the_message(pg_url):
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    table = Table("limit_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("value", String, index=True), prefixes=["TEMPORARY"])
    with engine.connect() as connection:
        table.create(connection)
        with pytest.raises(OperationalError) as caught:
            connection.execute(table.insert().values(value=long_message_id() * 2))
    engine.dispose()
    assert not database_unavailable(caught.value)
    assert "ProgramLimitExceeded" in describe_error(caught.value)


def test_a_lost_database_is_not_the_message_s_fault(tmp_path):
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    locked_dir = tmp_path / "missing" / "db.sqlite3"
    with pytest.raises(OperationalError) as unopenable:
        create_engine(f"sqlite:///{locked_dir}").connect()
    assert database_unavailable(refused.value) and database_unavailable(unopenable.value)


def test_an_error_description_leaves_out_the_mail_content(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", String, unique=True))
    with engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert().values(v="geheime klachttekst"))
        with pytest.raises(IntegrityError) as caught:
            connection.execute(table.insert().values(v="geheime klachttekst"))
    assert not database_unavailable(caught.value)
    assert "geheime" in str(caught.value)  # SQLAlchemy's own text shows the parameters
    assert describe_error(caught.value) == "IntegrityError: UNIQUE constraint failed: t.v"


# -- through the real poll --------------------------------------------------------------------

@pytest.mark.dovecot
def test_a_mail_with_an_oversized_message_id_or_nul_does_not_block_the_mailbox(make_app, db_url, dovecot):
    """Before, PostgreSQL refused the oversized identifier and the whole batch stayed in the
    inbox at every poll; and a NUL in the body quarantined a readable complaint."""
    app = make_app(db_url=db_url, imap=imap_config(dovecot))
    poisoned = complaint(sender="b@example.be", subject="Klacht twee", message_id=long_message_id())
    append_all(dovecot, [complaint(sender="a@example.be", subject="Klacht een"), poisoned,
                         complaint(sender="c@example.be", subject="Klacht\x00 drie", body="Geen\x00 antwoord.")])
    report = app.poll_once()
    assert (report.processed, report.quarantined) == (3, 0)
    assert folder_count(dovecot, "INBOX") == 0
    append_all(dovecot, [b"X-Trace: second copy\r\n" + poisoned])  # the same mail once more
    assert app.poll_once().duplicates == 1
    assert counts(app)["cases"] == 3


@pytest.mark.dovecot
def test_the_same_complaint_in_two_mailboxes_polled_at_once_opens_one_case(make_app, db_url, dovecot):
    """A citizen writes to klachten@ and plaintes@ at once; each mailbox has its own poll
    job, and both run together. Before, on PostgreSQL most such complaints got two cases
    and two acknowledgments."""
    first = imap_config(dovecot) | {"host": "127.0.0.1", "security": "none"}
    second = first | {"folder": "Plaintes", "processed_folder": "PlaintesDone",
                                     "quarantine_folder": "PlaintesQuarantine"}
    app = make_app(db_url=db_url, mailboxes=[first, second])
    first_box, second_box = app.settings.all_mailboxes
    client = dovecot.client()
    client.create_folder("Plaintes")
    client.logout()
    rounds = 6
    for n in range(rounds):
        raw = complaint(sender=f"burger{n}@example.be", subject=f"Klacht {n} over mijn studietoelage",
                        to="klachten@vlaamseombudsdienst.be, plaintes@vlaamseombudsdienst.be")
        append_all(dovecot, [b"Delivered-To: klachten@vlaamseombudsdienst.be\r\n" + raw])
        append_all(dovecot, [b"Delivered-To: plaintes@vlaamseombudsdienst.be\r\n" + raw], folder="Plaintes")
        together = threading.Barrier(2)
        errors: list[BaseException] = []

        def poll(imap):
            together.wait()
            try:
                app.poll_mailbox(imap)
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=poll, args=(box,)) for box in (first_box, second_box)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
    assert counts(app) | {"sent": 0} == {"cases": rounds, "incoming": rounds, "outbox": rounds, "sent": 0}
    with app.sessions() as session:
        recipients = session.execute(select(Outbox.recipient)).scalars().all()
    assert len(set(recipients)) == rounds
    assert folder_count(dovecot, "INBOX") == folder_count(dovecot, "Plaintes") == 0


def test_a_poll_that_fails_in_the_database_is_recorded_for_staff(make_app, sqlite_url):
    """An SQLAlchemy error out of a poll (here the schema is not upgraded) used to escape to
    the scheduler's log only; it is now a `poll_failed` event, as an IMAP failure is."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        session.connection().exec_driver_sql("DROP TABLE mailbox_state")
    Runner(app).poll(app.settings.imap)
    with app.sessions() as session:
        failed = session.execute(select(Event).where(Event.type == "poll_failed")).scalar_one()
    assert failed.detail["error"].startswith("database: OperationalError: no such table")
    assert base_config()["imap"]["password"] not in failed.detail["error"]


# -- memory: a batch is cut by the bytes of mail it holds ------------------------------------

def test_split_by_bytes_keeps_order_and_puts_a_large_mail_alone():
    from mailbot.poll_cycle import split_by_bytes

    sizes = {1: 40, 2: 40, 3: 500, 4: 10, 5: 10}
    assert split_by_bytes([1, 2, 3, 4, 5], sizes, 100) == [[1, 2], [3], [4, 5]]
    assert split_by_bytes([], {}, 100) == []
    assert split_by_bytes([7, 8], {}, 100) == [[7, 8]]  # sizes unknown: the count limit alone


@pytest.mark.dovecot
def test_a_poll_holds_at_most_the_byte_limit_of_mail_per_batch(make_app, sqlite_url, dovecot, monkeypatch):
    """Ten mails of 30 KB with a 64 KB limit go in five batches of two, not one batch of ten
    (before, a batch of 100 mails of 20 MB each was held whole: gigabytes)."""
    from mailbot import poll_cycle

    monkeypatch.setattr(poll_cycle, "BATCH_BYTES", 64 * 1024)
    app = make_app(db_url=sqlite_url, imap=imap_config(dovecot))
    raws = [complaint(sender=f"b{i}@example.be", body="Lange klacht. " * 2200) for i in range(10)]
    append_all(dovecot, raws)
    held: list[int] = []
    record = poll_cycle.PollCycle._record_batch
    monkeypatch.setattr(poll_cycle.PollCycle, "_record_batch",
                        lambda self, batch, ahead: held.append(sum(len(raw) for _, raw in batch))
                        or record(self, batch, ahead))
    assert app.poll_once().processed == 10
    assert len(held) == 5 and max(held) <= 64 * 1024
    assert folder_count(dovecot, "INBOX") == 0


# -- a failure late in one message must not spill into the next ------------------------------

@pytest.mark.dovecot
@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
def test_a_message_failing_after_its_case_was_written_quarantines_only_itself(make_app, db_url, dovecot,
                                                                               monkeypatch):
    """The batch is redone with a savepoint per message. A message that fails after its case row
    was inserted is rolled back; before, its Case object stayed in the session and, on SQLite
    (which hands the same id out again), the next new complaint failed on it too."""
    from mailbot import pipeline

    app = make_app(db_url=db_url, imap=imap_config(dovecot))
    real = pipeline.queue_reply

    def failing_for_one(session, settings, renderer, reply, **kw):
        if "ontploft" in reply.subject:
            raise RuntimeError("injected failure after the case was written")
        return real(session, settings, renderer, reply, **kw)

    monkeypatch.setattr(pipeline, "queue_reply", failing_for_one)
    append_all(dovecot, [complaint(sender="a@example.be", subject="Klacht een"),
                         complaint(sender="b@example.be", subject="Klacht ontploft"),
                         complaint(sender="c@example.be", subject="Klacht drie"),
                         complaint(sender="d@example.be", subject="Klacht vier")])
    report = app.poll_once()
    assert (report.processed, report.quarantined) == (3, 1)
    assert counts(app)["cases"] == 3


# -- a Message-ID seen before: the same mail again, or another mail ---------------------------

FORM = "formulier@vlaamseombudsdienst.be"
FORM_ID = "<20261123100000@form.vlaamseombudsdienst.be>"


def form_mail(name: str, email: str, text: str) -> bytes:
    """A web form's mail as IMAP delivers it; the form reuses one Message-ID for every mail."""
    raw = complaint(sender=FORM, name="Klachtenformulier", subject="Klachtenformulier", message_id=FORM_ID,
                    body=f"Naam: {name}\n\nUw klacht:\n{text}", extra_headers=f"Reply-To: {name} <{email}>\r\n")
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


AN = form_mail("An Janssens", "an.j@example.be", "De bus 58 stopt niet meer aan onze halte in de Kerkstraat.")
KOEN = form_mail("Koen Claes", "koen.c@example.be", "Mijn groeipakket is al twee maanden niet betaald.")


def test_a_reused_message_id_is_the_same_mail_only_with_the_same_content(make_app, db_url):
    """The identity check: another citizen's mail under the form's reused Message-ID is a mail of
    its own (before, a duplicate: no case, no acknowledgment); the same mail delivered again
    (other trace headers), or its LF copy from an mbox, is the mail we have."""
    from mailbot import store
    from mailbot.pipeline import process_files

    app = make_app(db_url=db_url, webform_senders=[FORM])
    process_files(app.intake, [AN])
    mid = FORM_ID.strip("<>")
    with app.sessions() as session:
        def known(raw: bytes):
            return store.incoming_by_identity(session, mid, store.content_sha(raw), FORM, raw)

        assert known(KOEN) is None
        again = b"Received: from mx2.example.be by mx1.vlaamseombudsdienst.be; Mon, 23 Nov 2026 10:01:00 +0100\r\n" + AN
        assert known(again) is not None and known(AN.replace(b"\r\n", b"\n") + b"\n") is not None


def test_the_content_is_compared_with_a_copy_recorded_in_the_same_transaction(make_app, sqlite_url):
    """The first copy's bytes are not in the database before commit (written in bulk then): the
    comparison finds them among the bytes the transaction holds."""
    from mailbot import store

    app = make_app(db_url=sqlite_url, webform_senders=[FORM])
    again = b"Received: from mx2.example.be\r\n" + AN
    with app.sessions.begin() as session:
        app.intake.process(session, AN)
        found = store.incoming_by_identity(session, FORM_ID.strip("<>"), store.content_sha(again), FORM, again)
        assert found is not None


def test_the_content_hash_is_that_of_the_mail_as_imap_delivers_it():
    """An LF copy hashes as the CRLF one; mail from IMAP keeps the hash it was stored under."""
    import hashlib

    from mailbot.store import content_sha

    assert content_sha(AN.replace(b"\r\n", b"\n")) == content_sha(AN) == hashlib.sha256(AN).hexdigest()
    assert content_sha(KOEN) != content_sha(AN)


@pytest.mark.dovecot
def test_a_web_form_that_reuses_its_message_id_gets_a_case_and_a_reply_per_citizen(make_app, db_url, dovecot):
    app = make_app(db_url=db_url, imap=imap_config(dovecot), webform_senders=[FORM])
    append_all(dovecot, [AN, KOEN])
    report = app.poll_once()
    assert (report.processed, report.duplicates) == (2, 0)
    with app.sessions() as session:
        recipients = sorted(session.execute(select(Outbox.recipient)).scalars())
    assert counts(app)["cases"] == 2 and recipients == ["an.j@example.be", "koen.c@example.be"]


@pytest.mark.dovecot
def test_a_mail_delivered_twice_is_one_case(make_app, db_url, dovecot):
    """The MTA delivered the form's mail twice (another Received line): one case, one reply."""
    app = make_app(db_url=db_url, imap=imap_config(dovecot), webform_senders=[FORM])
    append_all(dovecot, [AN, b"Received: from mx2.example.be by mx1.vlaamseombudsdienst.be\r\n" + AN])
    report = app.poll_once()
    assert (report.processed, report.duplicates) == (1, 1)
    assert counts(app) | {"sent": 0} == {"cases": 1, "incoming": 1, "outbox": 1, "sent": 0}
