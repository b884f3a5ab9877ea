"""Ingest benchmark: one command, one private Dovecot, N generated complaint mails.

    python benchmarks/ingest.py [--n 10000] [--quick] [--skip helpdesk,postgres] [--json FILE]

In the same run, on the same mailbox (reloaded where a contender empties it):
  (a) raw      imapclient FETCH of every body in batches + mail-parser's parse_from_bytes
  (b) stdlib   the same with email.message_from_bytes(policy=compat32)
      stages   the same with mailbot's own parse + classify, in process: the ceiling of (d)
               before any database, matching, routing or reply work
  (c) helpdesk django-helpdesk's `manage.py get_email` (own virtualenv, see helpdesk/run.py),
               on the first `--helpdesk-n` mails (default min(N, 2000)): it is slow
  (d) mailbot  `mailbot poll --once` end to end (acknowledgments to a local SMTP sink),
               a subprocess, on SQLite and on PostgreSQL; peak memory is that of the process
               and its parse worker together (sampled /proc), the main process's ru_maxrss too

Prints msgs/s for each, (d)/(a) and (d)/(c), and mailbot's peak memory; writes
benchmarks/results/<date>-ingest.json (`--quick`: N=1000, <date>-ingest-quick.json).
"""

from __future__ import annotations

import argparse
import email
import json
import os
import shutil
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from email.policy import compat32
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(BENCH)]

from ingest_mails import clear_maildir, generate, load_maildir
from helpers import folder_count  # noqa: E402
from servers import (
    drop_pg_schema,
    free_port,
    mail_user_ids,
    pg_schema_url,
    start_dovecot,
)

RESULTS = BENCH / "results"


class CountingSink:
    """An aiosmtpd server that only counts what it accepts (N=100,000 must not fill memory)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink._lock:
                    sink.count += 1
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def revision() -> str:
    """The commit of the mailbot measured: `mailbot poll` runs from the current directory's tree."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "mem_gb": round(mem_kb / 2**20, 1)}


class Mailbox:
    """The benchmark's Dovecot user and how to (re)load its inbox."""

    def __init__(self, dovecot, n: int, seed: int) -> None:
        self.dovecot, self.n, self.seed = dovecot, n, seed
        self.home = dovecot.root / "home" / dovecot.username
        self.uid, self.gid = mail_user_ids()

    def load(self, n: int | None = None) -> float:
        """Empty every folder, write the inbox, and let Dovecot index it (not timed by callers)."""
        started = time.monotonic()
        clear_maildir(self.home)
        load_maildir(self.home, generate(n or self.n, self.seed), uid=self.uid, gid=self.gid)
        client = self.dovecot.client()
        client.select_folder("INBOX", readonly=True)
        client.logout()
        return time.monotonic() - started

    def count(self, folder: str) -> int:
        return folder_count(self.dovecot, folder)


def raw_fetch(dovecot, parse, *, batch: int = 500) -> dict:
    """FETCH every body in batches and parse each; nothing else."""
    import imapclient

    started = time.monotonic()
    client = imapclient.IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=120)
    client.login(dovecot.username, dovecot.password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))
    count = 0
    for start in range(0, len(uids), batch):
        response = client.fetch(uids[start:start + batch], ["BODY.PEEK[]"])
        for uid in sorted(response):
            if parse is not None:
                parse(bytes(response[uid][b"BODY[]"]))
            count += 1
    client.logout()
    seconds = time.monotonic() - started
    return {"n": count, "seconds": round(seconds, 2), "msgs_per_s": round(count / seconds, 1)}


def _mailparser(raw: bytes) -> None:
    import mailparser

    mailparser.parse_from_bytes(raw)


def _compat32(raw: bytes) -> None:
    email.message_from_bytes(raw, policy=compat32)


def _mailbot_stages(raw: bytes) -> None:
    """mailbot's own parse + classify, in process: what (d) costs before any database work."""
    from mailbot.errors import ParseError
    from mailbot.prepare import Options, prepare

    try:
        prepare(raw, Options(25 * 2**20, frozenset({"klachten@vlaamseombudsdienst.be"}), "nl"))
    except ParseError:
        pass


class TreeMemory:
    """Peak resident memory of a process and its children (the parse worker), sampled."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every, self.peak_kb = pid, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in _tree(self.pid)))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return round(self.peak_kb / 1024, 1)


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_mailbot(box: Mailbox, sink: CountingSink, db_url: str, workdir: Path, *, batch_size: int,
                profile: Path | None = None) -> dict:
    """`mailbot poll --once` on a freshly loaded inbox and an empty database.

    With `profile`, the poll runs under cProfile and its stats are written there.
    """
    from sqlalchemy import func, select

    from mailbot.db import Message, Outbox
    from mailbot.db_engine import make_engine

    box.load()
    dovecot = box.dovecot
    config = workdir / f"config-{abs(hash(db_url))}.yaml"
    config.write_text(yaml.safe_dump({
        "imap": {"host": "127.0.0.1", "port": dovecot.port, "security": "none", "username": dovecot.username,
                 "password": dovecot.password, "batch_size": batch_size, "timeout_seconds": 120},
        "smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none",
                 "from_address": "klachten@vlaamseombudsdienst.be", "from_name": "Vlaamse Ombudsdienst"},
        "database": {"url": db_url},
        "office": {"name": "Vlaamse Ombudsdienst", "reference_prefix": "VO"},
        "rules_dir": str(REPO / "rules"), "templates_dir": str(REPO / "templates")}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "mailbot.cli", "--config", str(config)]
    subprocess.run(base + ["db", "upgrade"], check=True, env=env, capture_output=True)
    sent_before = sink.count
    log = workdir / "poll.log"
    started = time.monotonic()
    poll = base + ["poll", "--once"]
    if profile is not None:
        poll = [sys.executable, "-m", "cProfile", "-o", str(profile), *poll[1:]]
    with open(log, "wb") as out:
        process = subprocess.Popen(poll, env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = TreeMemory(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        peak_tree = memory.stop()
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        incoming = conn.execute(select(func.count()).select_from(Message).where(Message.direction == "in")).scalar_one()
        quarantined = conn.execute(select(func.count()).select_from(Message)
                                   .where(Message.quarantine_reason.is_not(None))).scalar_one()
        outbox = conn.execute(select(func.count()).select_from(Outbox)).scalar_one()
    engine.dispose()
    result = {"n": box.n, "seconds": round(seconds, 2), "msgs_per_s": round(box.n / seconds, 1),
              "peak_mb": max(peak_tree, round(usage.ru_maxrss / 1024, 1)),
              "peak_mb_main_process": round(usage.ru_maxrss / 1024, 1), "returncode": code,
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "incoming_rows": incoming,
              "quarantined": quarantined, "replies_queued": outbox, "replies_sent": sink.count - sent_before,
              "inbox_left": box.count("INBOX")}
    if code != 0:
        result["log_tail"] = log.read_text(errors="replace")[-2000:]
    return result


def run_helpdesk(box: Mailbox, sink: CountingSink, n: int) -> dict:
    from helpdesk.run import get_email, prepare, project

    box.load(n)
    python = prepare()
    root = project(python, imap_port=box.dovecot.port, user=box.dovecot.username,
                   password=box.dovecot.password, smtp_port=sink.port)
    result = get_email(python, root)
    result.update(n=n, msgs_per_s=round(n / result["seconds"], 1), seconds=round(result["seconds"], 2),
                  peak_mb=round(result["peak_mb"], 1), inbox_left=box.count("INBOX"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="N=1000, for development")
    parser.add_argument("--helpdesk-n", type=int, help="mails for django-helpdesk (default min(N, 2000))")
    parser.add_argument("--batch-size", type=int, default=100, help="mailbot's imap.batch_size")
    parser.add_argument("--skip", default="", help="comma-separated: raw,stdlib,stages,helpdesk,sqlite,postgres")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run mailbot under cProfile; stats written to DIR/<database>.prof")
    args = parser.parse_args(argv)
    n = 1000 if args.quick else args.n
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {"date": date.today().isoformat(), "n": n, "machine": machine(), "batch_size": args.batch_size,
                     "command": "python benchmarks/ingest.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "revision": revision()}
    dovecot = start_dovecot()
    sink = CountingSink()
    box = Mailbox(dovecot, n, args.seed)
    runs: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mailbot-ingest-") as tmp:
            work = Path(tmp)
            results["load_seconds"] = round(box.load(), 2)
            print(f"loaded {n} mails into a private Dovecot in {results['load_seconds']} s", flush=True)
            runs["fetch_only"] = raw_fetch(dovecot, None)
            if "raw" not in skip:
                runs["a_raw_mailparser"] = raw_fetch(dovecot, _mailparser)
            if "stdlib" not in skip:
                runs["b_stdlib_compat32"] = raw_fetch(dovecot, _compat32)
            if "stages" not in skip:
                runs["mailbot_parse_classify"] = raw_fetch(dovecot, _mailbot_stages)
            for name, run in runs.items():
                print(f"{name:22} {run['msgs_per_s']:9.1f} msgs/s", flush=True)
            if "helpdesk" not in skip:
                try:
                    runs["c_helpdesk"] = run_helpdesk(box, sink, args.helpdesk_n or min(n, 2000))
                except Exception as err:
                    runs["c_helpdesk"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
                print(f"{'c_helpdesk':22} {runs['c_helpdesk'].get('msgs_per_s', 'n/a')} msgs/s", flush=True)
            if "sqlite" not in skip:
                runs["d_mailbot_sqlite"] = run_mailbot(box, sink, f"sqlite:///{work / 'mailbot.sqlite3'}", work,
                                                       batch_size=args.batch_size,
                                                       profile=args.profile and args.profile / "sqlite.prof")
                print(f"{'d_mailbot_sqlite':22} {runs['d_mailbot_sqlite']['msgs_per_s']:9.1f} msgs/s", flush=True)
            if "postgres" not in skip:
                url, schema = pg_schema_url()
                try:
                    runs["d_mailbot_postgres"] = run_mailbot(box, sink, url, work, batch_size=args.batch_size,
                                                             profile=args.profile and args.profile / "postgres.prof")
                finally:
                    drop_pg_schema(schema)
                print(f"{'d_mailbot_postgres':22} {runs['d_mailbot_postgres']['msgs_per_s']:9.1f} msgs/s", flush=True)
    finally:
        sink.stop()
        dovecot.stop()
        shutil.rmtree(dovecot.root, ignore_errors=True)  # up to N mails on /dev/shm
    results["runs"] = runs
    summarize(results)
    target = args.json or RESULTS / f"{results['date']}-ingest{'-quick' if args.quick else ''}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nresults written to {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
    ok = all(r.get("returncode", 0) == 0 and r.get("incoming_rows", n) == n
             for k, r in runs.items() if k.startswith("d_"))
    return 0 if ok else 1


def summarize(results: dict) -> None:
    """Add msgs_per_s, ratios and peak_mb at the top level, and print the table."""
    runs = results["runs"]
    rate = {k: r.get("msgs_per_s") for k, r in runs.items()}
    raw, helpdesk = rate.get("a_raw_mailparser"), rate.get("c_helpdesk")
    mailbot = {k: v for k, v in rate.items() if k.startswith("d_") and v}
    results["msgs_per_s"] = {"a": raw, "b": rate.get("b_stdlib_compat32"), "c": helpdesk,
                             "stages": rate.get("mailbot_parse_classify"),
                             "d_sqlite": rate.get("d_mailbot_sqlite"), "d_postgres": rate.get("d_mailbot_postgres")}
    results["ratio_vs_raw"] = {k[2:]: round(v / raw, 3) for k, v in mailbot.items()} if raw else {}
    results["ratio_vs_helpdesk"] = {k[2:]: round(v / helpdesk, 1) for k, v in mailbot.items()} if helpdesk else {}
    results["peak_mb"] = {k[2:]: runs[k].get("peak_mb") for k in mailbot}
    print(f"\nN={results['n']} on {results['machine']['cpu_count']} x {results['machine']['cpu_model']}, "
          f"Python {results['machine']['python']}")
    print(f"{'contender':22} {'msgs/s':>9} {'seconds':>9} {'peak MB':>8}  notes")
    for name, run in runs.items():
        if "error" in run:
            print(f"{name:22} {'-':>9} {'-':>9} {'-':>8}  {run['error'][:80]}")
            continue
        notes = (f"rows {run['incoming_rows']}, quarantined {run['quarantined']}, sent {run['replies_sent']}, "
                 f"inbox left {run['inbox_left']}" if "incoming_rows" in run else
                 f"n={run['n']} tickets {run.get('tickets', '')}" if "tickets" in run else f"n={run['n']}")
        print(f"{name:22} {run['msgs_per_s']:9.1f} {run['seconds']:9.2f} {run.get('peak_mb', 0) or 0:8.1f}  {notes}")
    print(f"ratio (d)/(a): {results['ratio_vs_raw']}   ratio (d)/(c): {results['ratio_vs_helpdesk']}")
    stages = rate.get("mailbot_parse_classify")
    if stages and raw:
        results["stages_vs_raw"] = round(stages / raw, 3)
        print(f"ceiling: mailbot's parse + classify alone / (a) = {results['stages_vs_raw']}")


if __name__ == "__main__":
    sys.exit(main())
