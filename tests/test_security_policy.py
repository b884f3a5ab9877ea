"""What a stranger can make the robot do, after the security audit: change a case's contact
details, mail a forged sender, or keep a reply loop going by varying a +tag."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from conftest import complaint
from mailbot.db import Case, Outbox
from mailbot.pipeline import process_files
from mailbot.recipients import mailbox_key
from mailbot.replies import ReplyLimits, over_limit
from test_outbox import queue_rows

DMARC_FAIL = "Authentication-Results: mx.vlaamseombudsdienst.be; dmarc=fail header.from=example.be\r\n"


def _case(app) -> Case:
    with app.sessions() as session:
        return session.execute(select(Case)).scalar_one()


def _open_case(app, **extra) -> str:
    process_files(app.intake, [complaint(
        extra_headers="Cc: Buurman <buur@example.be>\r\n", **extra)])
    return _case(app).ref


def test_someone_else_in_the_thread_cannot_change_the_contact_address(make_app, db_url):
    """The neighbour in Cc of the complaint replies 'mail me at …' on the case: the case's contact
    address, phone and wishes stay the citizen's."""
    app = make_app(db_url=db_url)
    ref = _open_case(app)
    process_files(app.intake, [complaint(
        sender="buur@example.be", name="Buurman", subject=f"Re: Uw klacht [{ref}]",
        body="Gelieve mij voortaan te mailen op overname@evil.example en bel mij op 0470 99 88 77. "
             "Ik wens anoniem te blijven.")])
    case = _case(app)
    assert case.contact_email is None and case.contact_phone is None
    assert not {"alternative_email", "prefers_phone", "anonymity_requested"} & set(case.flags)


def test_a_forged_mail_in_the_citizens_name_cannot_change_the_contact_address(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    ref = _open_case(app)
    process_files(app.intake, [complaint(
        subject=f"Re: Uw klacht [{ref}]", extra_headers=DMARC_FAIL,
        body="Mijn nieuwe e-mailadres is overname@evil.example, gelieve mij voortaan daar te mailen.")])
    case = _case(app)
    assert case.contact_email is None and "spoofed_sender" in case.flags


def test_the_citizen_can_still_give_another_address(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    ref = _open_case(app)
    process_files(app.intake, [complaint(
        subject=f"Re: Uw klacht [{ref}]",
        body="Mijn nieuwe e-mailadres is jan.prive@example.org, gelieve mij voortaan daar te mailen.")])
    assert _case(app).contact_email == "jan.prive@example.org"


def test_a_forged_status_request_gets_no_reply_at_all(make_app, sqlite_url):
    """Before, the claimed sender got the neutral status reply: mail to an address that did not write."""
    app = make_app(db_url=sqlite_url)
    ref = _open_case(app)
    process_files(app.intake, [complaint(subject=f"Re: Uw klacht [{ref}]", extra_headers=DMARC_FAIL,
                                         body="Wat is de stand van zaken?")])
    with app.sessions() as session:
        templates = session.execute(select(Outbox.template)).scalars().all()
    assert templates == ["ack_investigation"]


def test_a_forged_unreadable_mail_gets_no_notice(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    with app.sessions() as session:
        assert app.intake.unreadable_notice(session, complaint(extra_headers=DMARC_FAIL)) is None
        assert app.intake.unreadable_notice(session, complaint()) is not None


def test_tagged_variants_of_an_address_share_its_limit(make_app, db_url):
    """A ticket robot answering from desk+1@, desk+2@, … reached no limit: each tag was a new address."""
    app = make_app(db_url=db_url)
    now = datetime.now(timezone.utc)
    limits = ReplyLimits(per_case_per_day=3, per_address_per_day=10)
    for n in range(10):
        queue_rows(app.sessions, 1, recipient=f"desk+{n}@example.org", prefix=f"t{n}", now=now, with_case=False)
    with app.sessions.begin() as session:
        for address in ("desk+new@example.org", "desk@example.org"):
            reason = over_limit(session, recipient=address, case_id=None, now=now - timedelta(seconds=1),
                                limits=limits)
            assert reason and "this address" in reason
        assert over_limit(session, recipient="desk_x@example.org", case_id=None, now=now, limits=limits) is None
        assert over_limit(session, recipient="desk@example.net", case_id=None, now=now, limits=limits) is None


def test_mailbox_key_drops_the_tag_and_the_case():
    assert mailbox_key("Desk+1@Example.org") == mailbox_key("desk@example.org") == "desk@example.org"
    assert mailbox_key("+only@example.org") == "+only@example.org"


def test_files_holding_personal_data_are_private(tmp_path, make_app):
    """The SQLite database and a digest written with --html are readable by their owner only,
    whatever the umask (both name citizens)."""
    import os
    import stat

    import yaml
    from click.testing import CliRunner

    from conftest import base_config
    from mailbot.cli import cli

    old = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
        make_app(db_url=url)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(base_config(db_url=url)))
        result = CliRunner().invoke(cli, ["--config", str(config), "digest", "--html", str(tmp_path / "d.html")],
                                    obj={})
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    for name in ("mailbot.sqlite3", "d.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_migration_0007_keys_the_replies_already_in_the_outbox(db_url):
    """Upgrading a database with replies in its outbox gives each its mailbox key, so the
    limit counts them from the first poll after the upgrade."""
    import sqlalchemy as sa

    from mailbot.db_engine import make_engine
    from mailbot.migrate import upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO outbox (template, recipient, message_id, mime, status, attempts, next_attempt_at,"
            " created_at) VALUES ('status', 'Desk+7@Example.org', 'm1@x', :mime, 'sent', 1, :now, :now)"),
            {"mime": b"x", "now": datetime.now(timezone.utc)})
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT recipient_key FROM outbox")).scalar_one() == "desk@example.org"
    engine.dispose()
