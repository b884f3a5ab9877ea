"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import func, select

from mailbot.db import Case, Message, Outbox


def append_all(dovecot, raws, folder: str = "INBOX") -> None:
    client = dovecot.client()
    try:
        for raw in raws:
            client.append(folder, raw)
    finally:
        client.logout()


def folder_count(dovecot, folder: str) -> int:
    client = dovecot.client()
    try:
        if not client.folder_exists(folder):
            return 0
        return client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"]
    finally:
        client.logout()


def counts(app) -> dict[str, int]:
    with app.sessions() as session:
        return {
            "cases": session.execute(select(func.count()).select_from(Case)).scalar_one(),
            "incoming": session.execute(select(func.count()).select_from(Message)
                                        .where(Message.direction == "in")).scalar_one(),
            "outbox": session.execute(select(func.count()).select_from(Outbox)).scalar_one(),
            "sent": session.execute(select(func.count()).select_from(Outbox)
                                    .where(Outbox.status == "sent")).scalar_one(),
        }


def imap_config(dovecot) -> dict:
    return {"port": dovecot.port, "username": dovecot.username, "password": dovecot.password}


class SettableClock:
    """A clock the test moves by hand (`clock.now += timedelta(days=1)`), for the pipeline's stages."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def two_mailboxes(make_app, db_url, dovecot):
    """An app polling two mailboxes of the test Dovecot: INBOX and Plaintes."""
    first = imap_config(dovecot) | {"host": "127.0.0.1", "security": "none"}
    second = first | {"folder": "Plaintes", "processed_folder": "PlaintesDone",
                      "quarantine_folder": "PlaintesQuarantine"}
    app = make_app(db_url=db_url, mailboxes=[first, second])
    client = dovecot.client()
    client.create_folder("Plaintes")
    client.logout()
    return app


def poll_together(app) -> None:
    """Both mailboxes' poll jobs at the same moment, each its own session and transaction."""
    together = threading.Barrier(2)
    errors: list[BaseException] = []

    def poll(imap) -> None:
        together.wait()
        try:
            app.poll_mailbox(imap)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=poll, args=(box,)) for box in app.settings.all_mailboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
