"""The embedded demo servers: pymap in-process (IMAP) and an aiosmtpd sink (SMTP)."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import imapclient
import pytest

from mailbot.config import ImapSettings
from mailbot.embedded import EmbeddedImap, EmbeddedSmtp
from mailbot.fetch import ImapMailbox

USER = "klachten@vlaamseombudsdienst.be"
PASSWORD = "demo"


def _message(n: int) -> bytes:
    return (
        f"From: Burger {n} <burger{n}@example.org>\r\n"
        f"To: {USER}\r\n"
        f"Subject: Klacht nummer {n}\r\n"
        f"Message-ID: <klacht-{n}@example.org>\r\n"
        "Date: Mon, 02 Dec 2024 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"Geachte, dit is klacht {n}. Met vriendelijke groeten.\r\n"
    ).encode("utf-8")


MESSAGES = [_message(n) for n in (1, 2, 3)]


@pytest.fixture
def imap() -> Iterator[EmbeddedImap]:
    with EmbeddedImap(USER, PASSWORD) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[EmbeddedSmtp]:
    with EmbeddedSmtp() as server:
        yield server


@pytest.fixture
def client(imap: EmbeddedImap) -> Iterator[imapclient.IMAPClient]:
    conn = imapclient.IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    conn.login(USER, PASSWORD)
    yield conn
    conn.logout()


def _count(client: imapclient.IMAPClient, folder: str) -> int:
    return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])


def test_inbox_starts_empty(imap: EmbeddedImap, client: imapclient.IMAPClient) -> None:
    """The user logs in over plain text and finds an empty INBOX and no demo folders."""
    assert imap.host == "127.0.0.1" and imap.port > 0
    selected = client.select_folder("INBOX")
    assert selected[b"EXISTS"] == 0
    assert client.search(["ALL"]) == []
    assert [name for _flags, _sep, name in client.list_folders()] == ["INBOX"]


def test_wrong_password_is_refused(imap: EmbeddedImap) -> None:
    """A wrong password is refused with an IMAP LoginError."""
    conn = imapclient.IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    try:
        with pytest.raises(imapclient.exceptions.LoginError):
            conn.login(USER, "wrong")
    finally:
        conn.shutdown()


def test_append_search_fetch_create_move(imap: EmbeddedImap, client: imapclient.IMAPClient) -> None:
    """Appended messages can be searched, peeked without \\Seen and UID-moved to a new folder."""
    for raw in MESSAGES:
        imap.append(raw)
    client.select_folder("INBOX")
    uids = sorted(client.search(["NOT", "DELETED"]))
    assert len(uids) == 3

    fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
    assert [bytes(fetched[uid][b"BODY[]"]) for uid in uids] == MESSAGES
    assert all(b"\\Seen" not in fetched[uid][b"FLAGS"] for uid in uids)
    flags_after = client.get_flags(uids)
    assert all(imapclient.SEEN not in flags_after[uid] for uid in uids)

    client.create_folder("Processed")
    assert client.folder_exists("Processed")
    assert client.has_capability("MOVE") and client.has_capability("UIDPLUS")
    client.move(uids[:2], "Processed")

    assert sorted(client.search(["ALL"])) == uids[2:]
    assert _count(client, "INBOX") == 1
    assert _count(client, "Processed") == 2
    client.select_folder("Processed", readonly=True)
    moved = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
    assert sorted(bytes(item[b"BODY[]"]) for item in moved.values()) == sorted(MESSAGES[:2])


def test_append_to_other_folder(imap: EmbeddedImap, client: imapclient.IMAPClient) -> None:
    """append() creates a missing folder and keeps the flags it is given."""
    imap.append(MESSAGES[0], folder="Sent", flags=[imapclient.SEEN])
    assert _count(client, "Sent") == 1
    assert _count(client, "INBOX") == 0
    client.select_folder("Sent", readonly=True)
    (uid,) = client.search(["ALL"])
    assert imapclient.SEEN in client.get_flags([uid])[uid]


def test_imap_mailbox_adapter(imap: EmbeddedImap) -> None:
    """Our ImapMailbox creates its folders, lists, fetches and moves against the embedded server."""
    for raw in MESSAGES:
        imap.append(raw)
    settings = ImapSettings(host=imap.host, port=imap.port, security="none",
                            username=USER, password=PASSWORD, folder="INBOX",
                            processed_folder="Processed", quarantine_folder="Quarantine")
    mailbox = ImapMailbox(settings)
    try:
        assert mailbox.uidvalidity > 0
        assert mailbox.client.folder_exists("Processed")
        assert mailbox.client.folder_exists("Quarantine")
        uids = mailbox.uids()
        assert len(uids) == 3
        fetched = list(mailbox.fetch(uids))
        assert [mail.uid for mail in fetched] == uids
        assert [mail.raw for mail in fetched] == MESSAGES
        mailbox.move(uids[:2], "Processed")
        assert mailbox.uids() == uids[2:]
        mailbox.append("Sent", MESSAGES[2])
    finally:
        mailbox.close()

    check = imapclient.IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    check.login(USER, PASSWORD)
    try:
        assert _count(check, "INBOX") == 1
        assert _count(check, "Processed") == 2
        assert _count(check, "Quarantine") == 0
        assert _count(check, "Sent") == 1
        check.select_folder("INBOX", readonly=True)
        (left,) = check.search(["ALL"])
        assert imapclient.SEEN not in check.get_flags([left])[left]
    finally:
        check.logout()

    # A second connection finds the folders already there and does not fail.
    ImapMailbox(settings).close()


def test_smtp_sink_captures_message(smtp: EmbeddedSmtp) -> None:
    """A message sent with smtplib lands in the sink with its envelope and bytes."""
    message = EmailMessage()
    message["From"] = USER
    message["To"] = "burger@example.org"
    message["Subject"] = "Ontvangstbevestiging"
    message.set_content("Wij hebben uw klacht goed ontvangen.\n")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        refused = conn.send_message(message, from_addr=USER,
                                    to_addrs=["burger@example.org", "dossier@example.org"])
    assert refused == {}
    (captured,) = smtp.messages
    assert captured.mail_from == USER
    assert captured.rcpt_tos == ("burger@example.org", "dossier@example.org")
    assert b"Subject: Ontvangstbevestiging" in captured.content
    assert b"Wij hebben uw klacht goed ontvangen." in captured.content


def test_stop_leaves_no_threads_or_listeners() -> None:
    """Stopping both servers, even with a client still connected, leaves no threads and closes the ports."""
    before = set(threading.enumerate())
    imap = EmbeddedImap(USER, PASSWORD).start()
    smtp = EmbeddedSmtp().start()
    lingering = imapclient.IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    lingering.login(USER, PASSWORD)
    lingering.select_folder("INBOX")
    imap.append(MESSAGES[0])
    imap.stop()
    smtp.stop()
    imap.stop()  # idempotent

    extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert [t.name for t in extra if not t.daemon] == []
    assert extra == []
    for port in (imap.port, smtp.port):
        with pytest.raises(OSError):
            imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=2)
    lingering.shutdown()


def test_servers_are_independent() -> None:
    """Two embedded IMAP servers get different ports and do not share mail."""
    with EmbeddedImap(USER, PASSWORD) as first, EmbeddedImap(USER, PASSWORD) as second:
        assert first.port != second.port
        first.append(MESSAGES[0])
        conn = imapclient.IMAPClient(second.host, port=second.port, ssl=False, timeout=10)
        conn.login(USER, PASSWORD)
        try:
            assert _count(conn, "INBOX") == 0
        finally:
            conn.logout()
