"""Outbox throughput: N queued replies sent to a local aiosmtpd sink, one by one (a single
connection, one message at a time) next to concurrent sending (`smtp.concurrency`
connections), through the real outbox (claim, send, mark) on a real database.

    python benchmarks/outbox_bench.py [--n 2000] [--concurrency 8] [--latency-ms 0] [--db URL]

The sink runs in its own process so it does not share the GIL with the sender.
`--latency-ms` makes the sink wait before accepting each message, like a remote relay.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from mailbot.config import SmtpSettings  # noqa: E402
from mailbot.db import Outbox  # noqa: E402
from mailbot.db_engine import make_engine, make_sessionmaker  # noqa: E402
from mailbot.migrate import upgrade  # noqa: E402
from mailbot.outbox import send_due  # noqa: E402
from mailbot.send import SmtpTransport  # noqa: E402

SENDER = "klachten@vlaamseombudsdienst.be"


def _sink(port: int, latency: float, ready: Any, stop: Any) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            if latency:
                await asyncio.sleep(latency)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mime(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Vlaamse Ombudsdienst <{SENDER}>"
    msg["To"] = f"burger{i}@example.be"
    msg["Subject"] = f"Uw klacht [VO-2026-{i:06d}] Klacht over mijn studietoelage"
    msg["Message-ID"] = f"<bench-{i}@vlaamseombudsdienst.be>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Geachte,\n\nWij hebben uw klacht goed ontvangen.\n" * 20)
    msg.add_alternative("<p>Geachte,</p><p>Wij hebben uw klacht goed ontvangen.</p>" * 20, subtype="html")
    return bytes(msg)


def _run(url: str, n: int, port: int, concurrency: int) -> float:
    """Queue n rows in a fresh database, send them all; returns seconds spent sending."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        session.query(Outbox).delete()
        session.add_all(Outbox(template="ack_investigation", recipient=f"burger{i}@example.be",
                               message_id=f"bench-{i}@vlaamseombudsdienst.be", mime=_mime(i),
                               status="pending", created_at=now, next_attempt_at=now) for i in range(n))
    settings = SmtpSettings.model_validate({"host": "127.0.0.1", "port": port, "security": "none",
                                            "from_address": SENDER, "concurrency": concurrency})
    started = time.perf_counter()
    report = send_due(sessions, SmtpTransport(settings), SENDER, max_attempts=3)
    elapsed = time.perf_counter() - started
    with sessions() as session:
        sent = session.execute(select(func.count()).select_from(Outbox).where(Outbox.status == "sent")).scalar_one()
    engine.dispose()
    if report.sent != n or sent != n:
        raise SystemExit(f"only {report.sent} of {n} sent ({report.retried} retrying, {report.failed} failed)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="outbox rows (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel SMTP connections (default 8)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="sink delay per message (default 0)")
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    port = _free_port()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, args.latency_ms / 1000, ready, stop), daemon=True)
    sink.start()
    if not ready.wait(10):
        raise SystemExit("the aiosmtpd sink did not start")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            serial = _run(url, args.n, port, 1)
            parallel = _run(url, args.n, port, args.concurrency)
    finally:
        stop.set()
        sink.join(10)
    database = url.split(":", 1)[0] if args.db else "sqlite (temporary file)"
    print(f"outbox → aiosmtpd on loopback: {args.n} replies of {len(_mime(0))} bytes, "
          f"sink latency {args.latency_ms:g} ms, database {database}")
    print(f"{'':24}{'one by one':>14}{f'concurrent ({args.concurrency})':>18}")
    print(f"{'seconds':24}{serial:>14.2f}{parallel:>18.2f}")
    print(f"{'replies per second':24}{args.n / serial:>14.0f}{args.n / parallel:>18.0f}")
    print(f"ratio concurrent / one by one: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
