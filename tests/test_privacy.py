"""`mailbot privacy erase --email`: a data-subject request pseudonymises every trace of the
address, and its audit event holds no personal data."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from mailbot.db import Case, Event, Message, Outbox
from mailbot.cli import cli
from test_digest_seed import seed


def test_erase_pseudonymises_every_case_and_message_of_the_address(tmp_path, make_app, db_url):
    """Both of Jan's cases, his messages and the replies to him lose his data; others keep theirs;
    the audit event has counts only."""
    app = make_app(db_url=db_url)
    with app.sessions.begin() as session:
        seed(session)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url)))
    dry = CliRunner().invoke(cli, ["--config", str(config), "privacy", "erase", "--email", "Jan.Peeters@example.be",
                                   "--dry-run"], obj={}, catch_exceptions=False)
    assert dry.exit_code == 0 and "2 case(s)" in dry.output and "would be" in dry.output
    result = CliRunner().invoke(cli, ["--config", str(config), "privacy", "erase", "--email",
                                      "jan.peeters@example.be"], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        dump = json.dumps([[c.citizen_email, c.citizen_name, c.subject] for c in session.execute(select(Case)).scalars()]
                          + [[m.from_email, m.from_name, m.subject, m.body_text, m.original_sender or ""]
                             for m in session.execute(select(Message)).scalars()]
                          + [[o.recipient, o.mime.decode(errors="replace")] for o in session.execute(select(Outbox)).scalars()]
                          + [e.detail for e in session.execute(select(Event)).scalars()])
        assert "jan.peeters" not in dump.lower() and "Peeters" not in dump.replace("An Peeters", "")
        assert "marie.dubois@example.be" in dump  # somebody else's data stays
        [audit] = session.execute(select(Event).where(Event.type == "privacy_erase")).scalars()
    assert audit.detail["cases"] == 2 and audit.detail["messages"] >= 2
    assert "@" not in json.dumps(audit.detail) and "refs" not in audit.detail


# ---- the audit's finding 3: what erase used to leave behind ---------------------------------

from datetime import date, datetime, timezone  # noqa: E402

from mailbot.db import AddressStatus, RawMail  # noqa: E402
from mailbot.privacy import erase  # noqa: E402
from personal_scan import _texts, dump, scan  # noqa: E402
from test_digest_seed import Seeder, at  # noqa: E402

JAN, GREET, KEES = "jan.peeters@example.be", "greet.prive@example.org", "kees.kopie@example.net"
REFUSED = "550 5.1.1 <Jan.Peeters@example.be>: Recipient address rejected"
STAFF = ["onthaal@vlaamseombudsdienst.be", "directie@vlaamseombudsdienst.be"]
TEAMS = {"onderwijs": ["team-onderwijs@vlaamseombudsdienst.be"], "wonen": ["team-wonen@vlaamseombudsdienst.be"]}
NOW = datetime(2026, 11, 24, 7, tzinfo=timezone.utc)


def _bed(make_app, db_url):
    """The seeded day plus what the audit's p1/p2 held: digests queued and sent, a refused reply
    whose SMTP error quotes Jan's address, a caseless undeliverable notice to him with its
    events, his bounce memory; Greet's case with her contact address; Kees as co-recipient."""
    app = make_app(db_url=db_url, digest={"recipients": STAFF, "teams": TEAMS}, clock=lambda: NOW)
    with app.sessions.begin() as session:
        cases = seed(session)
        s = Seeder(session)
        s.n = 100
        s.outbox(cases["triage"], template="ack_investigation", recipient=JAN, status="failed",
                 created=at(23, 9, 1), last_error=REFUSED)
        sent = Message(case_id=None, direction="out", kind="outgoing", message_id="notice1@vlaamseombudsdienst.be",
                       from_email="klachten@vlaamseombudsdienst.be", to_addrs=[JAN], subject="Uw bericht",
                       body_text="Beste, uw bericht was te groot.", sha256="0" * 64, size=30, received_at=at(23, 13))
        session.add(sent)
        session.flush()
        notice = Outbox(case_id=None, message_pk=sent.id, template="undeliverable", recipient=JAN,
                        message_id="notice1@vlaamseombudsdienst.be", mime=b"To: Jan Peeters <jan.peeters@example.be>\r\n\r\nx",
                        status="failed", attempts=3, next_attempt_at=at(23, 13), created_at=at(23, 13),
                        last_error=REFUSED)
        session.add(notice)
        session.flush()
        session.add_all([
            Event(type="reply_failed", detail={"template": "undeliverable", "outbox_id": notice.id,
                                               "permanent": True, "reason": REFUSED}, created_at=at(23, 14)),
            Event(type="reply_released", detail={"template": "undeliverable", "outbox_id": notice.id,
                                                 "recipient": JAN, "by": "staff"}, created_at=at(23, 15)),
            AddressStatus(email=JAN, source="smtp", reason=REFUSED)])
        greet = s.case(9, name="Greet Vermeulen", email="greet.vermeulen@werk.example", subject="Bouwvergunning",
                       created=at(23, 11), contact_email=GREET, flags=["alternative_email"])
        m = s.message(greet, kind="new_complaint", received=at(23, 11), subject=greet.subject,
                      sender=greet.citizen_email, name=greet.citizen_name)
        m.body_text += f" mail me voortaan op {GREET}"
        session.get(RawMail, m.sha256).data += f" mail me voortaan op {GREET}".encode()
        tom = s.case(10, name="Tom Wouters", email="tom.wouters@example.be", subject="Rioolheffing",
                     created=at(23, 12), co_recipients=[KEES])
        s.message(tom, kind="new_complaint", received=at(23, 12), subject=tom.subject, sender=tom.citizen_email,
                  name=tom.citizen_name, cc_addrs=[KEES])
    for day in (date(2026, 11, 22), date(2026, 11, 23)):
        app.send_digest(day)  # no SMTP server: the copies stay pending
    with app.sessions.begin() as session:
        for row in session.execute(select(Outbox).where(Outbox.template == "digest")).scalars():
            if "2026-11-22" in row.message_id:
                row.status = "sent"
    return app


def _digests(app) -> dict[int, str]:
    with app.sessions() as session:
        return {row.id: "\n".join(_texts(row.mime)).lower()
                for row in session.execute(select(Outbox).where(Outbox.template == "digest")).scalars()}


JAN_TERMS = (JAN, "Jan <script>alert(1)</script> Peeters", "Studietoelage", "Premie zonnepanelen")


def test_erase_leaves_nothing_of_the_citizen_anywhere(make_app, db_url):
    """After erase, the audit's scan finds Jan's address, name and subjects nowhere: not in
    stored digests (sent or pending), SMTP errors, caseless events, the undeliverable notice or
    the bounce memory; digests that never named him stay; the dry run reported the same counts
    and changed nothing."""
    app = _bed(make_app, db_url)
    before = _digests(app)
    naming = {i for i, text in before.items()
              if any(t in text for t in (JAN, "vo-2026-000001", "vo-2026-000007"))}
    assert naming and set(before) - naming, "the bed needs digests naming Jan and one that does not"
    assert {hit.split(" ")[0] for hit in scan(app.sessions, *JAN_TERMS)} >= {
        "outbox.mime", "outbox.last_error", "event.detail", "address_status.email", "message.to_addrs"}
    state = dump(app.sessions)
    dry = erase(app.sessions, "Jan.Peeters@Example.be", dry_run=True)
    assert dump(app.sessions) == state
    real = erase(app.sessions, "jan.peeters@example.be")
    assert scan(app.sessions, *JAN_TERMS) == []
    assert real.as_dict() == dry.as_dict()
    assert real.refs == ["VO-2026-000001", "VO-2026-000007"]
    assert real.digests == len(naming) and real.addresses == 1 and real.events >= 2
    assert set(_digests(app)) == set(before) - naming
    assert "would be" in dry.summary(dry_run=True) and f"{real.digests} stored digest(s)" in real.summary(dry_run=False)
    with app.sessions() as session:
        notice = session.execute(select(Outbox).where(Outbox.template == "undeliverable")).scalar_one()
        assert (notice.recipient, notice.mime, notice.status) == ("erased@pseudonymised.invalid", b"", "failed")
        [audit] = session.execute(select(Event).where(Event.type == "privacy_erase")).scalars()
    assert audit.detail["digests"] == real.digests and "@" not in json.dumps(audit.detail)
    assert scan(app.sessions, "marie.dubois@example.be")  # somebody else's data stays


def test_erase_finds_the_case_by_its_contact_address_and_co_recipients(make_app, db_url):
    """An erasure for the other address the citizen asked to be contacted at, or for someone
    the citizen wrote with, finds that case and leaves nothing of the address."""
    app = _bed(make_app, db_url)
    greet = erase(app.sessions, GREET)
    assert greet.refs == ["VO-2026-000009"] and greet.raw_mails == 1
    assert scan(app.sessions, GREET, "Greet Vermeulen", "Bouwvergunning") == []
    kees = erase(app.sessions, KEES.upper())
    assert kees.refs == ["VO-2026-000010"]
    assert scan(app.sessions, KEES, "Rioolheffing") == []
    assert scan(app.sessions, JAN)  # nobody asked for Jan


def test_erase_refuses_a_blank_or_non_address(tmp_path, make_app, db_url):
    """`erase --email '  '` pseudonymised every case without an address — an open web-form
    case among them (privacy audit). A blank or non-address is now refused; nothing changes."""
    from conftest import complaint
    from mailbot.pipeline import process_files

    app = make_app(db_url=db_url, webform_senders=["formulier@vlaamseombudsdienst.be"])
    form = complaint(sender="formulier@vlaamseombudsdienst.be", name="Webformulier",
                     body="Naam: Hendrik Quaghebeur\nTelefoon: 0470 12 34 56\n\nUw klacht:\nDe bus stopt niet.")
    process_files(app.intake, [form])
    with app.sessions() as session:
        assert session.execute(select(Case.citizen_email, Case.citizen_name)).all() == [("", "Hendrik Quaghebeur")]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url, webform_senders=["formulier@vlaamseombudsdienst.be"])))
    for bad in ("  ", "", "Hendrik Quaghebeur"):
        result = CliRunner().invoke(cli, ["--config", str(config), "privacy", "erase", "--email", bad], obj={})
        assert result.exit_code == 2 and "must be an e-mail address" in result.output, result.output
    with app.sessions() as session:
        assert session.execute(select(Case.citizen_email, Case.citizen_name)).all() == [("", "Hendrik Quaghebeur")]


def test_erase_by_case_reaches_a_citizen_without_an_address(tmp_path, make_app, db_url):
    """A web-form citizen with no address on file could not be erased at all (privacy audit):
    `--email` finds nothing by name. `--case REF` pseudonymises that case and what is on it,
    and leaves other cases alone."""
    from conftest import complaint
    from mailbot.pipeline import process_files

    forms = ["formulier@vlaamseombudsdienst.be"]
    app = make_app(db_url=db_url, webform_senders=forms)
    form = complaint(sender=forms[0], name="Webformulier",
                     body="Naam: Hendrik Quaghebeur\nTelefoon: 0470 12 34 56\n\nUw klacht:\nDe bus stopt niet.")
    [outcome] = process_files(app.intake, [form])
    process_files(app.intake, [complaint(sender="an@example.be", name="An Peeters")])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(db_url=db_url, webform_senders=forms)))
    run = [cli, ["--config", str(config), "privacy", "erase"]]
    assert CliRunner().invoke(run[0], run[1] + ["--case", "VO-1999-000001"], obj={}).exit_code == 1
    assert CliRunner().invoke(run[0], run[1], obj={}).exit_code == 2  # neither option
    result = CliRunner().invoke(run[0], run[1] + ["--case", outcome.case_ref.lower()], obj={}, catch_exceptions=False)
    assert result.exit_code == 0 and "1 case(s)" in result.output, result.output
    with app.sessions() as session:
        names = dict(session.execute(select(Case.ref, Case.citizen_name)).all())
        texts = " ".join(b for (b,) in session.execute(select(Message.body_text)).all())
    assert names[outcome.case_ref] == "" and "An Peeters" in names.values()
    assert "Quaghebeur" not in texts and "0470" not in texts
