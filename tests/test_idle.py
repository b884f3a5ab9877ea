"""IMAP IDLE against the private Dovecot: new mail is processed within seconds, IDLE is
re-issued periodically, and a dropped connection is recovered."""

from __future__ import annotations

import subprocess
import threading

import pytest
from sqlalchemy import func, select

from conftest import complaint
from helpers import append_all, folder_count, imap_config
from mailbot.db import Message
from mailbot.idle import IdleWatcher, reconnect_delay
from test_scheduler_procs import wait_until

pytestmark = pytest.mark.dovecot


def _stored(app) -> int:
    with app.sessions() as session:
        return session.execute(select(func.count()).select_from(Message)
                               .where(Message.direction == "in")).scalar_one()


class Watch:
    def __init__(self, app, dovecot, reissue: float = 60) -> None:
        self.app, self.dovecot, self.stop, self.wakes = app, dovecot, threading.Event(), 0
        self.polls = 0  # finished: the watcher goes (back) to IDLE after each
        imap = app.settings.imap
        self.watcher = IdleWatcher(imap, self.on_mail, self.stop, reissue_seconds=reissue,
                                   reconnect_max_seconds=1)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)

    def on_mail(self) -> None:
        self.wakes += 1
        self.app.poll_mailbox(self.app.settings.imap)
        self.polls += 1

    def __enter__(self) -> Watch:
        self.thread.start()
        self.wait_idling(lambda: self.polls >= 1, "the first poll after connecting")
        return self

    def wait_idling(self, done, what: str) -> None:
        """Until `done()` and the server has the watcher's IDLE: mail that arrives between a
        poll and the IDLE command is only seen at the next re-issue."""
        wait_until(lambda: done() and self.dovecot.idling() == 1, 15, f"{what}, then IDLE")

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def app(make_app, dovecot, smtp_sink, sqlite_url):
    return make_app(imap=imap_config(dovecot) | {"idle": True}, smtp={"port": smtp_sink.port}, db_url=sqlite_url)


def test_mail_appended_while_idling_is_processed_within_seconds(app, dovecot):
    """A complaint delivered while the watcher idles is in the database and moved within seconds."""
    with Watch(app, dovecot) as watch:
        append_all(dovecot, [complaint()])
        wait_until(lambda: _stored(app) == 1, 5, "the mail to be processed")
        assert watch.wakes >= 2  # woken by the server's news, not by the first poll
    assert folder_count(dovecot, "Processed") == 1


def test_mail_delivered_while_a_poll_runs_is_not_left_until_the_reissue(app, dovecot):
    """A complaint delivered after the poll looked at the inbox but before IDLE began is told by
    no IDLE: it is still processed within seconds, not at the re-issue (60 s here)."""
    class LateDelivery(Watch):
        def on_mail(self) -> None:
            super().on_mail()
            if self.polls == 1:  # the end of the first poll: its search is long done
                append_all(self.dovecot, [complaint()])

    with LateDelivery(app, dovecot, reissue=60):
        wait_until(lambda: _stored(app) == 1, 5, "the mail delivered during the poll")


def test_idle_is_reissued_periodically(app, dovecot):
    """With no mail at all, IDLE ends and is re-issued every reissue period, polling each time."""
    with Watch(app, dovecot, reissue=0.5) as watch:
        first = watch.wakes
        wait_until(lambda: watch.wakes >= first + 2, 5, "two re-issues")


def test_dropped_connection_is_recovered(app, dovecot):
    """The server dropping the connection and restarting under the watcher: it reconnects with backoff and mail is processed again."""
    with Watch(app, dovecot) as watch:
        # A restart alone leaves the old imap processes serving their clients; kick them first,
        # as an administrator (or a server going down) would.
        polls = watch.polls
        subprocess.run(["doveadm", "-c", str(dovecot.root / "dovecot.conf"), "kick", dovecot.username],
                       check=True, capture_output=True, timeout=10)
        dovecot.restart()
        watch.wait_idling(lambda: watch.watcher.reconnects >= 1 and watch.polls > polls,
                          "the reconnect and its poll")
        append_all(dovecot, [complaint()])
        wait_until(lambda: _stored(app) == 1, 10, "the mail after the reconnect")


def test_backoff_grows_and_is_capped():
    """Reconnect delays double from one second and never exceed the cap."""
    delays = [reconnect_delay(n, 30) for n in range(1, 10)]
    assert delays[0] <= 1 and 3 <= delays[2] <= 4 and max(delays) <= 30
