"""`mailbot run`'s daily jobs on the days Brussels changes its clocks: the digest and retention
run exactly once every local day, and a failed digest is tried again five real minutes later."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from mailbot.scheduler import DIGEST_RETRY, Runner, daily

BRUSSELS = ZoneInfo("Europe/Brussels")
SPRING = datetime(2026, 3, 26, 12, 0, tzinfo=BRUSSELS)  # clocks go forward on Sunday 29 March
AUTUMN = datetime(2026, 10, 22, 12, 0, tzinfo=BRUSSELS)  # and back on Sunday 25 October


def _local_days(at: time, start: datetime, n: int) -> list[date]:
    """The local days a daily job at `at` fires on, as APScheduler asks: the next fire after
    the one that just ran, a few seconds after it."""
    trigger, previous, now, days = daily(at, BRUSSELS), None, start, []
    for _ in range(n):
        fire = trigger.get_next_fire_time(previous, now)
        days.append(fire.astimezone(BRUSSELS).date())
        previous, now = fire, fire + timedelta(seconds=3)
    return days


@pytest.mark.parametrize("start", [SPRING, AUTUMN], ids=["spring", "autumn"])
@pytest.mark.parametrize("at", [time(0, 0), time(0, 30), time(0, 59), time(2, 0), time(2, 30), time(3, 0),
                                time(7, 30), time(23, 59)], ids=str)
def test_a_daily_job_fires_once_on_every_local_day_across_a_clock_change(at, start):
    """Eight days around each change, one fire per local day and none skipped. APScheduler's
    CronTrigger skipped Monday 30 March for a time from 00:00 to 00:59 (the day after the
    spring change): no digest that day, no retention."""
    days = _local_days(at, start, 8)
    first = days[0]
    assert days == [first + timedelta(days=n) for n in range(8)]


def test_a_time_the_clocks_skip_or_repeat_fires_at_one_real_moment():
    """02:30 does not exist on 29 March: it fires at 03:30 (an hour later on the clock, as the
    trigger fired before); on 25 October it happens twice: it fires at the first, in summer time."""
    spring = daily(time(2, 30), BRUSSELS).get_next_fire_time(None, datetime(2026, 3, 29, 0, 0, tzinfo=BRUSSELS))
    autumn = daily(time(2, 30), BRUSSELS).get_next_fire_time(None, datetime(2026, 10, 25, 0, 0, tzinfo=BRUSSELS))
    # Compared in UTC: Python's == of a repeated local time with another zone is always False.
    assert spring.astimezone(timezone.utc) == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
    assert autumn.astimezone(timezone.utc) == datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)
    assert (spring.astimezone(BRUSSELS).hour, autumn.astimezone(BRUSSELS).hour) == (3, 2)


def test_a_failed_digest_is_retried_five_real_minutes_later_when_the_clocks_go_back(make_app, sqlite_url):
    """A digest at 02:58 summer time on 25 October that fails (its table is gone) is tried again
    DIGEST_RETRY later in real time. Added to the clock face (03:03, by then winter time) it
    came an hour and five minutes later."""
    failing_at = datetime(2026, 10, 25, 0, 58, tzinfo=timezone.utc)  # 02:58 +02:00 in Brussels
    app = make_app(db_url=sqlite_url, digest={"recipients": ["onthaal@vlaamseombudsdienst.be"]},
                   clock=lambda: failing_at)
    with app.engine.begin() as connection:
        connection.execute(text("DROP TABLE outbox"))  # the digest cannot be queued
    runner = Runner(app)
    runner.digest(date(2026, 10, 24))
    retry = runner.scheduler.get_job("digest-retry")
    assert retry is not None and retry.kwargs == {"day": date(2026, 10, 24)}
    assert retry.trigger.run_date.astimezone(timezone.utc) == failing_at + DIGEST_RETRY
