"""IMAP IDLE against the private Dovecot: new mail is processed within seconds, IDLE is
re-issued periodically, and a dropped connection is recovered."""

from __future__ import annotations

import subprocess
import threading
import time

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
    def __init__(self, app, reissue: float = 60) -> None:
        self.app, self.stop, self.wakes = app, threading.Event(), 0
        imap = app.settings.imap
        self.watcher = IdleWatcher(imap, self.on_mail, self.stop, reissue_seconds=reissue,
                                   reconnect_max_seconds=1)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)

    def on_mail(self) -> None:
        self.wakes += 1
        self.app.poll_mailbox(self.app.settings.imap)

    def __enter__(self) -> Watch:
        self.thread.start()
        wait_until(lambda: self.wakes >= 1, 10, "the first poll after connecting")
        time.sleep(0.3)  # now idling
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def app(make_app, dovecot, smtp_sink, sqlite_url):
    return make_app(imap=imap_config(dovecot) | {"idle": True}, smtp={"port": smtp_sink.port}, db_url=sqlite_url)


def test_mail_appended_while_idling_is_processed_within_seconds(app, dovecot):
    """A complaint delivered while the watcher idles is in the database and moved within seconds."""
    with Watch(app) as watch:
        started = time.monotonic()
        append_all(dovecot, [complaint()])
        wait_until(lambda: _stored(app) == 1, 5, "the mail to be processed")
        assert time.monotonic() - started < 5 and watch.wakes >= 2
    assert folder_count(dovecot, "Processed") == 1


def test_idle_is_reissued_periodically(app):
    """With no mail at all, IDLE ends and is re-issued every reissue period, polling each time."""
    with Watch(app, reissue=0.5) as watch:
        first = watch.wakes
        wait_until(lambda: watch.wakes >= first + 2, 5, "two re-issues")


def test_dropped_connection_is_recovered(app, dovecot):
    """The server dropping the connection and restarting under the watcher: it reconnects with backoff and mail is processed again."""
    with Watch(app) as watch:
        # A restart alone leaves the old imap processes serving their clients; kick them first,
        # as an administrator (or a server going down) would.
        subprocess.run(["doveadm", "-c", str(dovecot.root / "dovecot.conf"), "kick", dovecot.username],
                       check=True, capture_output=True, timeout=10)
        dovecot.restart()
        wait_until(lambda: watch.watcher.reconnects >= 1, 15, "the reconnect")
        time.sleep(0.3)
        append_all(dovecot, [complaint()])
        wait_until(lambda: _stored(app) == 1, 10, "the mail after the reconnect")


def test_backoff_grows_and_is_capped():
    """Reconnect delays double from one second and never exceed the cap."""
    delays = [reconnect_delay(n, 30) for n in range(1, 10)]
    assert delays[0] <= 1 and 3 <= delays[2] <= 4 and max(delays) <= 30
