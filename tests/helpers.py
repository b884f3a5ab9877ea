"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

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

