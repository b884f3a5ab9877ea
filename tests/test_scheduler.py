"""`mailbot run`: the jobs it schedules, the digest's cron across DST, and a graceful SIGTERM."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from conftest import complaint
from helpers import append_all, folder_count, imap_config
from mailbot.db import Message
from mailbot.scheduler import Runner, daily
from test_scheduler_procs import RunProcess, run_until, wait_until, write_config

BRUSSELS = ZoneInfo("Europe/Brussels")


def _fires(trigger, after: datetime, n: int) -> list[datetime]:
    times, previous, now = [], None, after
    for _ in range(n):
        fire = trigger.get_next_fire_time(previous, now)
        times.append(fire)
        previous, now = fire, fire
    return times


@pytest.mark.parametrize("start", [datetime(2026, 3, 27, 12, 0, tzinfo=BRUSSELS),
                                   datetime(2026, 10, 23, 12, 0, tzinfo=BRUSSELS)])
def test_digest_fires_at_local_time_across_dst(start):
    """Across the last Sunday of March and of October the digest still fires at 07:30 in Brussels,
    so its UTC time moves by an hour."""
    fires = _fires(daily(time(7, 30), BRUSSELS), start, 4)
    assert [(f.day, f.hour, f.minute) for f in fires] == [(start.day + i, 7, 30) for i in range(1, 5)]
    offsets = {f.utcoffset().total_seconds() / 3600 for f in fires}
    assert offsets == {1.0, 2.0}
    utc_hours = [f.astimezone(ZoneInfo("UTC")).hour for f in fires]
    assert utc_hours[0] != utc_hours[-1]


def test_a_job_in_the_dst_hour_fires_once_a_day():
    """A job at 02:30, an hour that does not exist in spring and exists twice in autumn, fires once
    on each of those days."""
    spring = _fires(daily(time(2, 30), BRUSSELS), datetime(2026, 3, 28, 12, 0, tzinfo=BRUSSELS), 2)
    autumn = _fires(daily(time(2, 30), BRUSSELS), datetime(2026, 10, 24, 12, 0, tzinfo=BRUSSELS), 2)
    assert [f.date().day for f in spring] == [29, 30]
    assert [f.date().day for f in autumn] == [25, 26]
    assert [(f.hour, f.minute) for f in autumn] == [(2, 30), (2, 30)]


def test_runner_schedules_every_job_per_mailbox(make_app, sqlite_url):
    """Two mailboxes give a poll job each (and an IDLE watcher where idle is on), plus the
    lease, outbox, digest and retention jobs."""
    second = {"host": "127.0.0.1", "port": 1, "security": "none", "username": "plaintes@example.org",
              "password": "x", "idle": True}
    app = make_app(db_url=sqlite_url, mailboxes=[
        {"host": "127.0.0.1", "port": 1, "security": "none", "username": "klachten@example.org", "password": "x"},
        second])
    runner = Runner(app)
    ids = sorted(job.id for job in runner.scheduler.get_jobs())
    assert [i.split(":")[0] for i in ids].count("poll") == 2
    assert [i.split(":")[0] for i in ids].count("idle") == 1
    assert {"lease", "outbox", "digest", "retention"} <= set(ids)
    assert app.settings.imap.username == "klachten@example.org"  # `imap` defaults to the first mailbox


def test_a_sigterm_racing_a_one_off_job_stops_cleanly(make_app, sqlite_url):
    """APScheduler's shutdown (from the signal handler's thread) empties the job store while its
    loop may be removing the digest catch-up it has just started: the loop raises JobLookupError
    and `mailbot run` exited 1 with a traceback on a plain SIGTERM (seen in CI). Now it stops as
    for any SIGTERM: jobs in flight waited for, leases released."""
    import signal

    from apscheduler.jobstores.base import JobLookupError

    app = make_app(db_url=sqlite_url, imap={"port": 1})
    runner = Runner(app)

    def loop_losing_the_race() -> None:  # the scheduler's loop, as it ends in that race
        runner._on_signal(signal.SIGTERM, None)
        raise JobLookupError("digest-catch-up")

    runner.scheduler.start = loop_losing_the_race
    runner.run()  # returns: no exception
    assert runner.stop_event.is_set()

    def loop_failing_while_running() -> None:  # not stopping: the error is not hidden
        raise JobLookupError("digest-catch-up")

    running = Runner(app)
    running.scheduler.start = loop_failing_while_running
    with pytest.raises(JobLookupError):
        running.run()


@pytest.mark.dovecot
def test_sigterm_mid_batch_finishes_the_message_in_flight(tmp_path, dovecot, smtp_sink, sqlite_url):
    """SIGTERM while a batch is being processed: exit 0, every mail either processed and moved or
    still in the inbox untouched, and a second run completes the rest exactly once."""
    n = 120
    append_all(dovecot, [complaint(sender=f"burger{i}@example.be", message_id=f"<t{i}@mail.example.be>")
                         for i in range(n)])
    config = write_config(tmp_path, imap=imap_config(dovecot) | {"batch_size": 50},
                          smtp={"port": smtp_sink.port}, db_url=sqlite_url)
    run = RunProcess(config, tmp_path / "run.log")
    try:
        wait_until(lambda: len(run.processed_lines()) >= 5, 60, "the first processed messages")
        assert run.terminate() == 0, run.text()[-3000:]
    finally:
        run.stop_quietly()
    assert "mailbot stopped" in run.text()
    from mailbot.db_engine import make_engine

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Message).where(Message.direction == "in")).scalar_one()
    processed, inbox = folder_count(dovecot, "Processed"), folder_count(dovecot, "INBOX")
    assert 0 < stored < n and processed == stored and inbox == n - stored
    client = dovecot.client()
    client.select_folder("INBOX", readonly=True)
    flags = client.get_flags(client.search())
    client.logout()
    assert all(not f for f in flags.values())  # untouched: not even \Seen

    run_until(config, tmp_path / "again.log", lambda: folder_count(dovecot, "INBOX") == 0, "the rest to be processed")
    with engine.connect() as conn:
        ids = conn.execute(select(Message.message_id).where(Message.direction == "in")).scalars().all()
    engine.dispose()
    assert len(ids) == n == len(set(ids)) and folder_count(dovecot, "Processed") == n
