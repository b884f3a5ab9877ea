"""`mailbot run`'s jobs when the database goes away (PostgreSQL behind a proxy the test
controls) and the digest when it could not run at its time: one log line per failing job
and no traceback, the outage recorded once the database is back, the digest retried and
caught up after a restart."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from helpers import append_all, imap_config
from mailbot.db import Event, Outbox
from mailbot import scheduler
from mailbot.fetch import mailbox_name
from mailbot.scheduler import DIGEST_RETRY, Runner
from test_faults import mails
from test_faults_db import _proxied_url, pg_proxy, pg_schema  # noqa: F401 - fixtures

BRUSSELS = ZoneInfo("Europe/Brussels")
STAFF = {"recipients": ["onthaal@vlaamseombudsdienst.be"]}


def _events(app) -> list[Event]:
    with app.sessions() as session:
        return list(session.execute(select(Event).order_by(Event.id)).scalars())


def _digest_rows(app, day: date) -> int:
    with app.sessions() as session:
        return session.execute(select(func.count()).select_from(Outbox).where(
            Outbox.template == "digest", Outbox.message_id.startswith(f"digest.{day.isoformat()}."))).scalar_one()


def _days_ago(days: int, hour: int, minute: int) -> datetime:
    """That local time `days` days ago (the outbox sends by the real clock: not in the future)."""
    day = datetime.now(BRUSSELS).date() - timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BRUSSELS)


def _run(job) -> None:
    job.func(*job.args, **job.kwargs)


@pytest.mark.dovecot
@pytest.mark.postgres
def test_a_database_outage_is_one_line_per_job_and_recorded_once_it_is_back(
        make_app, dovecot, smtp_sink, pg_schema, pg_proxy, caplog, monkeypatch):  # noqa: F811
    """With PostgreSQL gone, every job (lease, poll, outbox, digest, retention) logs one line
    without a traceback instead of raising into APScheduler; a failed poll does not go on to
    send the outbox. Once the database is back, the next poll logs its recovery and stores
    the events of the outage, poll_failed first, saying when they happened."""
    monkeypatch.setattr(scheduler, "LATE", timedelta(0))  # every event stored later counts as late
    app = make_app(imap=imap_config(dovecot), smtp={"port": smtp_sink.port}, digest=STAFF,
                   db_url=_proxied_url(pg_proxy, pg_schema[1]))
    runner = Runner(app)
    jobs = {job.id.split(":")[0]: job for job in runner.scheduler.get_jobs()}
    name = mailbox_name(app.settings.imap)
    append_all(dovecot, mails(2, tag="before"))
    _run(jobs["poll"])  # takes the mailbox's lease
    pg_proxy.refuse(600)
    pg_proxy.cut_all()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mailbot"):
        for job in ("lease", "poll", "outbox", "digest", "retention", "lease", "poll"):
            _run(jobs[job])  # raises nothing
    assert all(r.exc_info is None for r in caplog.records) and "Traceback" not in caplog.text
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum(m.startswith("leases not renewed: database: OperationalError") for m in problems) == 2
    assert sum(m.startswith(f"poll {name} failed: database: OperationalError") for m in problems) == 2
    assert sum(m.startswith("outbox failed: database: OperationalError") for m in problems) == 1
    assert sum(m.startswith("digest of ") and "failed, retried at" in m for m in problems) == 1
    assert any(" Europe/Brussels: database: " in m for m in problems)  # local time, zone named
    assert sum(m.startswith("retention failed: database: OperationalError") for m in problems) == 1
    assert len(problems) <= 7 + 4  # at most one "not recorded yet" per event type besides
    assert runner.scheduler.get_job("digest-retry") is not None

    pg_proxy.heal()
    append_all(dovecot, mails(1, tag="after"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mailbot"):
        _run(jobs["poll"])
    assert f"poll {name} recovered" in caplog.text
    types = [e.type for e in _events(app) if e.type.endswith(("_failed", "_recovered"))]
    assert types[0] == "poll_failed" and types[-1] == "poll_recovered"
    assert {"digest_failed", "retention_failed"} <= set(types) and types.count("poll_recovered") == 1
    [failed] = [e for e in _events(app) if e.type == "poll_failed"][:1]
    assert failed.detail["mailbox"] == name and failed.detail["error"].startswith("database: ")
    assert datetime.fromisoformat(failed.detail["noted_at"]) < failed.created_at.replace(tzinfo=timezone.utc)


@pytest.mark.postgres
def test_a_digest_the_database_refused_is_retried_that_day(make_app, smtp_sink, pg_schema, pg_proxy,  # noqa: F811
                                                          caplog):
    """The database is down at digest time: the digest is tried again DIGEST_RETRY later and
    then queued and sent, with one digest_failed event; a failure too late in the day to retry
    before midnight is not retried, and the log says how to send it by hand."""
    url = _proxied_url(pg_proxy, pg_schema[1])
    morning = _days_ago(2, 7, 30)  # in the past: the digest is due at once
    app = make_app(db_url=url, smtp={"port": smtp_sink.port}, digest=STAFF, clock=lambda: morning)
    day = morning.date() - timedelta(days=1)
    runner = Runner(app)
    pg_proxy.refuse(600)
    pg_proxy.cut_all()
    runner.digest()
    retry = runner.scheduler.get_job("digest-retry")
    assert retry.kwargs == {"day": day} and retry.trigger.run_date == morning + DIGEST_RETRY
    _run(retry)  # still down: tried again later, still one event for the day
    retry = runner.scheduler.get_job("digest-retry")
    assert retry.kwargs == {"day": day}
    pg_proxy.heal()
    _run(retry)
    assert _digest_rows(app, day) == 1 and len(smtp_sink.messages) == 1
    assert [e.detail["day"] for e in _events(app) if e.type == "digest_failed"] == [day.isoformat()]

    late = _days_ago(2, 23, 58)
    late_app = make_app(db_url=url, smtp={"port": smtp_sink.port}, digest=STAFF, clock=lambda: late)
    late_runner = Runner(late_app)
    pg_proxy.refuse(600)
    pg_proxy.cut_all()
    with caplog.at_level(logging.INFO, logger="mailbot"):
        late_runner.digest(late.date() - timedelta(days=1))
    pg_proxy.heal()
    assert late_runner.scheduler.get_job("digest-retry") is None
    assert "not retried after today" in caplog.text and f"--date {late.date() - timedelta(days=1)}" in caplog.text


def test_a_robot_started_after_digest_time_queues_yesterdays_digest_once(make_app, smtp_sink, sqlite_url):
    """Started (or restarted) after today's digest_time, the robot queues yesterday's digest
    at once, which the daily job would only do tomorrow; a second restart finds it in the
    outbox and queues nothing. Started before digest_time, it leaves it to the daily job."""
    nine = _days_ago(1, 9, 0)
    app = make_app(db_url=sqlite_url, smtp={"port": smtp_sink.port}, digest=STAFF,
                   clock=lambda: nine.astimezone(timezone.utc))
    day = nine.date() - timedelta(days=1)
    job = Runner(app).scheduler.get_job("digest-catch-up")
    assert job.kwargs == {"day": day, "catch_up": True}
    _run(job)
    assert _digest_rows(app, day) == 1 and len(smtp_sink.messages) == 1
    _run(Runner(app).scheduler.get_job("digest-catch-up"))  # a restart
    assert _digest_rows(app, day) == 1 and len(smtp_sink.messages) == 1
    assert [e.type for e in _events(app)].count("digest_queued") == 1

    early = nine - timedelta(hours=2)
    early_app = make_app(db_url=sqlite_url, digest=STAFF, clock=lambda: early)
    assert Runner(early_app).scheduler.get_job("digest-catch-up") is None
