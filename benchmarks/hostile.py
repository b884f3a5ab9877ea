"""Hostile inputs through the whole pipeline, each in a fresh process, with time and memory.

    python benchmarks/hostile.py [--scale 1.0] [--only NAME,NAME] [--json FILE]

Each input (a 50 MB message, 10,000 MIME parts, deep nesting, a 1 MB header line, a zip
bomb, regex torture, ...) is generated in a child process, then handed to
`PollCycle.process_isolated` — the same call the poll loop makes, quarantine included —
on a fresh SQLite database. The child reports the outcome, the seconds spent and the peak
resident memory *added* by processing (VmHWM after, with the peak reset once the input
is built). `--scale 0.1` shrinks every input tenfold (the test suite's mode).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEAD = ("From: Jan Peeters <jan.peeters@example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n")
TEXT = "Geachte,\r\n\r\nIk heb een klacht over mijn studietoelage.\r\n\r\nJan\r\n"


def _mid(name: str) -> str:
    return f"Message-ID: <hostile-{name}-{random.getrandbits(40):x}@example.be>\r\n"


def _with_attachment(name: str, subject: str, payload: bytes, ctype: str, filename: str) -> bytes:
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (f"{HEAD}{_mid(name)}Subject: {subject}\r\n"
            'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            f"--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{TEXT}\r\n"
            f'--b0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n').encode() + b64 + b"\r\n--b0--\r\n"


def big_message(scale: float) -> bytes:
    """A 50 MB message (a PDF-like attachment): over `limits.max_message_bytes`."""
    size = int(50 * 2**20 * scale * 3 / 4)  # base64 grows it by 4/3
    return _with_attachment("big", "Klacht met bijlage", os.urandom(size), "application/pdf", "scan.pdf")


def big_under_limit(scale: float) -> bytes:
    """A 20 MB message, under the 25 MB limit: parsed for real."""
    size = int(20 * 2**20 * scale * 3 / 4)
    return _with_attachment("big20", "Klacht met grote bijlage", os.urandom(size), "application/pdf", "scan.pdf")


def many_parts(scale: float) -> bytes:
    """10,000 MIME parts in one multipart/mixed (half bodies, half attachments)."""
    n = max(10, int(10_000 * scale))
    parts = []
    for i in range(n):
        if i % 2:
            parts.append(f"--b0\r\nContent-Type: application/octet-stream\r\n"
                         f'Content-Disposition: attachment; filename="f{i}.bin"\r\n\r\nAAAA\r\n')
        else:
            parts.append(f"--b0\r\nContent-Type: text/plain\r\n\r\ndeel {i}\r\n")
    return (f"{HEAD}{_mid('parts')}Subject: Veel delen\r\n"
            f'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n{"".join(parts)}--b0--\r\n').encode()


def deep_nesting(scale: float) -> bytes:
    """Multiparts nested 5,000 deep (plus attached messages nested 500 deep)."""
    depth = max(20, int(5_000 * scale))
    opening = "".join(f'--n{i}\r\nContent-Type: multipart/mixed; boundary="n{i + 1}"\r\n\r\n' for i in range(depth))
    closing = "".join(f"--n{i}--\r\n" for i in reversed(range(depth)))
    return (f"{HEAD}{_mid('deep')}Subject: Diep genest\r\n"
            f'Content-Type: multipart/mixed; boundary="n0"\r\n\r\n{opening}'
            f"--n{depth}\r\nContent-Type: text/plain\r\n\r\n{TEXT}\r\n--n{depth}--\r\n{closing}").encode()


def deep_rfc822(scale: float) -> bytes:
    """message/rfc822 attachments nested 500 deep (a forward of a forward of ...)."""
    depth = max(10, int(500 * scale))
    inner = f"From: a@example.be\r\nSubject: binnenste\r\nContent-Type: text/plain\r\n\r\n{TEXT}"
    for i in range(depth):
        inner = (f"From: f{i}@example.be\r\nSubject: Fwd: laag {i}\r\nMIME-Version: 1.0\r\n"
                 f'Content-Type: multipart/mixed; boundary="r{i}"\r\n\r\n--r{i}\r\n'
                 f"Content-Type: text/plain\r\n\r\nzie bijlage\r\n--r{i}\r\nContent-Type: message/rfc822\r\n\r\n"
                 f"{inner}\r\n--r{i}--\r\n")
    return f"{HEAD}{_mid('rfc822')}Subject: Fwd: genest\r\n{inner.split(chr(13) + chr(10), 2)[2]}".encode()


def long_header(scale: float) -> bytes:
    """A single 1 MB Subject line (no folding)."""
    n = max(1000, int(2**20 * scale))
    subject = ("Klacht " * (n // 7 + 1))[:n]
    return f"{HEAD}{_mid('header')}Subject: {subject}\r\nContent-Type: text/plain\r\n\r\n{TEXT}".encode()


def many_recipients(scale: float) -> bytes:
    """A To: header with 20,000 addresses and 2,000 encoded-word display names."""
    n = max(100, int(20_000 * scale))
    to = ", ".join(f"=?utf-8?q?Pers=C3=B3on_{i}?= <p{i}@agency{i % 50}.be>" if i % 10 == 0 else f"p{i}@agency{i % 50}.be"
                   for i in range(n))
    return (f"From: Jan <jan@example.be>\r\nTo: klachten@vlaamseombudsdienst.be, {to}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n{_mid('rcpt')}Subject: Aan iedereen\r\n"
            f"Content-Type: text/plain\r\n\r\n{TEXT}").encode()


def zip_bomb(scale: float) -> bytes:
    """A zip attachment that inflates to 1 GB of zeros (about 1 MB compressed)."""
    inflated = max(2**20, int(2**30 * scale))
    buffer = io.BytesIO()
    chunk = b"\0" * 2**20
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.txt", "w", force_zip64=True) as member:
            for _ in range(inflated // len(chunk)):
                member.write(chunk)
    return _with_attachment("zip", "Klacht met zip", buffer.getvalue(), "application/zip", "stukken.zip")


def winmail_bomb(scale: float) -> bytes:
    """A TNEF (winmail.dat) attachment of 5 MB random bytes: we do parse TNEF."""
    size = max(2**16, int(5 * 2**20 * scale))
    data = b"\x78\x9f\x3e\x22" + os.urandom(size)
    return _with_attachment("tnef", "Outlook klacht", data, "application/ms-tnef", "winmail.dat")


def regex_torture(scale: float) -> bytes:
    """Text built against our regexes: quote markers, half forward headers, dates, Re: chains."""
    n = max(200, int(20_000 * scale))
    subject = "Re: " * min(n, 5000) + "Fwd: " * min(n, 5000) + "VO-2026-" * min(n, 2000) + "a" * n + "!"
    rng = random.Random(7)
    pieces = ["> " * 40 + "Op maandag 1 januari 2026 om 10:00 schreef",
              "-----Original Message----- " + "-" * 200,
              "From: " + "a" * 300 + "@" + "b." * 200,
              "Van: x <" + "y" * 500,
              "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1",
              "12:34:56 " * 50, "_" * 1000, "Verzonden: " + "maandag " * 100,
              "=?utf-8?q?" + "=C3" * 200, "wat is de stand van zaken " * 30 + "bel mij " * 30,
              "+32 " + "4" * 1000]
    body = "\r\n".join(rng.choice(pieces) for _ in range(n))
    return f"{HEAD}{_mid('regex')}Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n".encode()


def html_bomb(scale: float) -> bytes:
    """An HTML body of 100,000 nested <div>s and 10,000 table cells."""
    n = max(1000, int(100_000 * scale))
    markup = "<html><body>" + "<div>" * n + "klacht" + "</div>" * n + "<table>" + "<tr><td>x</td></tr>" * (n // 10) + "</table></body></html>"
    return f"{HEAD}{_mid('html')}Subject: HTML\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{markup}\r\n".encode()


def long_line(scale: float) -> bytes:
    """A 10 MB body on one line."""
    n = max(10_000, int(10 * 2**20 * scale))
    return f"{HEAD}{_mid('line')}Subject: Lang\r\nContent-Type: text/plain\r\n\r\n".encode() + b"x" * n + b"\r\n"


def encoded_words(scale: float) -> bytes:
    """A Subject of 20,000 encoded-words in alternating unknown and real charsets."""
    n = max(100, int(20_000 * scale))
    words = " ".join("=?x-unknown-%d?b?SGFsbG8=?=" % i if i % 2 else "=?utf-8?q?caf=C3=A9?=" for i in range(n))
    return f"{HEAD}{_mid('words')}Subject: {words}\r\nContent-Type: text/plain\r\n\r\n{TEXT}".encode()


def binary_garbage(scale: float) -> bytes:
    """5 MB of random bytes."""
    return os.urandom(max(1000, int(5 * 2**20 * scale)))


def empty(scale: float) -> bytes:
    """Zero bytes."""
    return b""


CASES: dict[str, Callable[[float], bytes]] = {f.__name__: f for f in (
    big_message, big_under_limit, many_parts, deep_nesting, deep_rfc822, long_header, many_recipients,
    zip_bomb, winmail_bomb, regex_torture, html_bomb, long_line, encoded_words, binary_garbage, empty)}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _app(workdir: Path):
    from mailbot.app import create_app
    from mailbot.config import settings_from_mapping
    from mailbot.db_engine import make_engine
    from mailbot.migrate import upgrade

    url = f"sqlite:///{workdir / f'hostile-{os.getpid()}.sqlite3'}"
    settings = settings_from_mapping({
        "imap": {"host": "127.0.0.1", "port": 1, "security": "none", "username": "klachten@example.org",
                 "password": "x"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none",
                 "from_address": "klachten@vlaamseombudsdienst.be"},
        "database": {"url": url}, "office": {"name": "Vlaamse Ombudsdienst"},
        "rules_dir": str(REPO / "rules"), "templates_dir": str(REPO / "templates")})
    engine = make_engine(url)
    upgrade(engine)
    app = create_app(settings, engine=engine)
    with app.sessions.begin() as session:  # warm-up: lazy imports and models load once
        app.intake.process(session, (f"{HEAD}Message-ID: <warm-up@example.be>\r\nSubject: Klacht\r\n"
                                     f"Content-Type: text/plain\r\n\r\n{TEXT}").encode())
        session.rollback()
    return app


def child(names: list[str], scale: float, workdir: Path) -> list[dict]:
    """Generate each input and push it through the pipeline; runs in its own process."""
    from sqlalchemy import delete, select

    from mailbot.db import Event, Message, Outbox, RawMail, Receipt
    from mailbot.poll_cycle import PollCycle
    from mailbot.record import Source

    app = _app(workdir)
    results = []
    for uid, name in enumerate(names, 1):
        raw = CASES[name](scale)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: count what processing adds
        base_kb = _status_kb("VmRSS")
        started = time.monotonic()
        with app.sessions.begin() as session:
            outcome = PollCycle(app.intake).process_isolated(session, raw, Source("hostile", 1, uid))
        seconds = time.monotonic() - started
        peak_kb = _status_kb("VmHWM")
        with app.sessions.begin() as session:
            row = session.execute(select(Message.kind, Message.quarantine_reason)
                                  .where(Message.direction == "in")).first()
            replies = len(session.execute(select(Outbox.id)).all())
            for table in (Outbox, Event, Receipt, Message, RawMail):  # the next input starts clean
                session.execute(delete(table))
        results.append({"input": name, "bytes": len(raw), "disposition": outcome.disposition,
                        "kind": outcome.kind, "reason": (row.quarantine_reason or "")[:120] if row else "",
                        "replies": replies, "seconds": round(seconds, 3),
                        "peak_mb": round(max(0, peak_kb - base_kb) / 1024, 1), "rss_mb": round(peak_kb / 1024, 1)})
        del raw
    app.close()
    return results


def run_all(names: list[str], scale: float, *, timeout: float = 300, together: bool = False) -> list[dict]:
    """Each input in its own process (a crash or a timeout is a result too); `together`:
    all in one process, one after the other (faster, for the tests)."""
    results: list[dict] = []
    groups = [names] if together else [[name] for name in names]
    with tempfile.TemporaryDirectory(prefix="mailbot-hostile-") as tmp:
        for group in groups:
            command = [sys.executable, __file__, "--child", ",".join(group), "--scale", str(scale), "--workdir", tmp]
            started = time.monotonic()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * len(group))
            except subprocess.TimeoutExpired:
                results += [{"input": name, "disposition": "TIMEOUT", "seconds": timeout} for name in group]
                continue
            if done.returncode != 0:
                last = done.stderr.strip().splitlines()[-1][:120] if done.stderr.strip() else ""
                results += [{"input": name, "disposition": f"CRASH rc={done.returncode}", "reason": last,
                             "seconds": round(time.monotonic() - started, 1)} for name in group]
                continue
            results += json.loads(done.stdout.strip().splitlines()[-1])
    return results


def table(results: list[dict]) -> str:
    lines = [f"{'input':18} {'size':>10} {'outcome':12} {'kind':15} {'s':>7} {'+MB':>7} {'rss MB':>7}  reason",
             "-" * 110]
    for r in results:
        size = f"{r.get('bytes', 0) / 2**20:.1f}M" if r.get("bytes", 0) >= 2**20 else f"{r.get('bytes', 0)}B"
        lines.append(f"{r['input']:18} {size:>10} {r['disposition']:12} {r.get('kind', ''):15} "
                     f"{r.get('seconds', 0):7.2f} {r.get('peak_mb', 0):7.1f} {r.get('rss_mb', 0):7.1f}  "
                     f"{r.get('reason', '')[:60]}")
    done = [r for r in results if "seconds" in r]
    lines.append("-" * 110)
    lines.append(f"{len(results)} inputs; max time {max((r['seconds'] for r in done), default=0):.2f} s; "
                 f"max added memory {max((r.get('peak_mb', 0) for r in done), default=0):.1f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor (0.1: the tests)")
    parser.add_argument("--only", default="", help="comma-separated input names")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--together", action="store_true", help="all inputs in one child process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child.split(","), args.scale, args.workdir)))
        return 0
    names = [n for n in args.only.split(",") if n] or list(CASES)
    results = run_all(names, args.scale, together=args.together)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["disposition"] in ("processed", "quarantined") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
