"""The start-up catch-up completes a digest the robot queued only in part before it died:
it queues exactly the recipients (and teams) still missing, never a second copy."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailbot import digest
from mailbot.db import Event, Outbox
from mailbot.scheduler import Runner

BRUSSELS = ZoneInfo("Europe/Brussels")
STAFF = ["onthaal@vlaamseombudsdienst.be", "directie@vlaamseombudsdienst.be"]
TEAMS = {"wonen": ["wonen@vlaamseombudsdienst.be"]}


def _nine_yesterday() -> datetime:
    """09:00 local time yesterday: after digest_time (the outbox sends by the real clock)."""
    day = datetime.now(BRUSSELS).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=BRUSSELS)


def _digest_rows(app) -> list[tuple[str, str]]:
    with app.sessions() as session:
        return list(session.execute(select(Outbox.recipient, Outbox.message_id)
                                    .where(Outbox.template == "digest").order_by(Outbox.id)).all())


def _catch_up(app) -> None:
    job = Runner(app).scheduler.get_job("digest-catch-up")  # what a (re)start schedules
    job.func(*job.args, **job.kwargs)


def test_a_restart_queues_the_recipients_a_crash_left_without_the_digest(make_app, smtp_sink, db_url):
    """The robot died after queueing yesterday's digest for the first staff recipient only:
    the catch-up at the next start queues it for the other staff recipient and the team, each
    under its day's Message-ID, and sends those; the first recipient gets no second copy, and
    a further restart queues nothing."""
    nine = _nine_yesterday()
    app = make_app(db_url=db_url, smtp={"port": smtp_sink.port},
                   digest={"recipients": STAFF, "teams": TEAMS}, clock=lambda: nine.astimezone(timezone.utc))
    day = nine.date() - timedelta(days=1)
    assert digest.queue(app.sessions, app.settings, day, nine, recipients=STAFF[:1]) == 1  # then it died
    app.send_outbox()

    _catch_up(app)
    rows = _digest_rows(app)
    assert sorted(r for r, _ in rows) == sorted(STAFF + TEAMS["wonen"])
    assert {m for _, m in rows} == {digest.scheduled_message_id(app.settings, day, team, r)
                                    for team, recipients in ((None, STAFF), ("wonen", TEAMS["wonen"]))
                                    for r in recipients}
    assert Counter(m["To"] for m in smtp_sink.parsed()) == Counter(STAFF + TEAMS["wonen"])

    _catch_up(app)
    assert len(_digest_rows(app)) == 3 and len(smtp_sink.parsed()) == 3
    with app.sessions() as session:
        noted = [e.detail for e in session.execute(select(Event).where(Event.type == "digest_queued")).scalars()]
    assert sorted((d["team"] or "", d["recipients"]) for d in noted) == [("", 1), ("", 1), ("wonen", 1)]


def test_queue_skips_the_recipients_whose_digest_is_queued(make_app, sqlite_url):
    """`queue` (once per day) leaves out the recipients that have the day's digest already and
    builds nothing when none is left: no empty digest_queued note either."""
    app = make_app(db_url=sqlite_url, digest={"recipients": STAFF})
    day, now = datetime(2026, 11, 23).date(), datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc)
    assert digest.queue(app.sessions, app.settings, day, now, recipients=STAFF[1:]) == 1
    assert digest.queue(app.sessions, app.settings, day, now) == 1
    assert digest.queue(app.sessions, app.settings, day, now) == 0
    assert sorted(r for r, _ in _digest_rows(app)) == sorted(STAFF)
    with app.sessions() as session:
        assert len(session.execute(select(Event).where(Event.type == "digest_queued")).all()) == 2
