"""Scale-out check: 1, 2 and 3 `mailbot poll --once` workers against one PostgreSQL and
several mailboxes (the `mailboxes:` list; one poller per mailbox through its lease).

    python benchmarks/scaleout.py [--n 3000] [--mailboxes 3] [--workers 1,2,3] [--quick]

For each worker count: a fresh schema, the mailboxes reloaded with the same N mails
(N/mailboxes each), the workers started together; wall time until all have exited. Then
the rows are counted: every mail recorded once, one receipt per mail, one reply per
answered mail and each reply delivered once. Results: benchmarks/results/<date>-scaleout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(BENCH)]

from ingest import RESULTS, CountingSink, machine
from ingest_mails import clear_maildir, generate, load_maildir
from servers import drop_pg_schema, mail_user_ids, pg_schema_url, start_dovecot


def config(dovecot, sink_port: int, db_url: str, boxes: int) -> dict:
    mailbox = {"host": "127.0.0.1", "port": dovecot.port, "security": "none", "username": dovecot.username,
               "password": dovecot.password, "batch_size": 100, "timeout_seconds": 120}
    return {"mailboxes": [mailbox | {"folder": f"Box{i}", "processed_folder": f"Done{i}",
                                     "quarantine_folder": f"Quarantine{i}"} for i in range(1, boxes + 1)],
            "smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none",
                     "from_address": "klachten@vlaamseombudsdienst.be"},
            "database": {"url": db_url}, "office": {"name": "Vlaamse Ombudsdienst"},
            "schedule": {"lease_seconds": 10},
            "rules_dir": str(REPO / "rules"), "templates_dir": str(REPO / "templates")}


def load(dovecot, n: int, boxes: int, seed: int) -> None:
    home = dovecot.root / "home" / dovecot.username
    uid, gid = mail_user_ids()
    clear_maildir(home)
    for i in range(1, boxes + 1):  # distinct seeds: distinct Message-IDs per mailbox
        load_maildir(home, generate(n // boxes, seed + i), uid=uid, gid=gid, folder=f"Box{i}")
    client = dovecot.client()
    for i in range(1, boxes + 1):
        client.select_folder(f"Box{i}", readonly=True)  # index now, not in the timed run
    client.logout()


def count_rows(db_url: str) -> dict:
    from sqlalchemy import func, select

    from mailbot.db import Message, Outbox, Receipt
    from mailbot.db_engine import make_engine

    engine = make_engine(db_url)
    with engine.connect() as conn:
        one = lambda q: conn.execute(q).scalar_one()
        rows = {
            "incoming": one(select(func.count()).select_from(Message).where(Message.direction == "in")),
            "distinct_message_ids": one(select(func.count(func.distinct(Message.message_id)))
                                        .where(Message.direction == "in")),
            "receipts": one(select(func.count()).select_from(Receipt)),
            "distinct_receipts": one(select(func.count()).select_from(
                select(Receipt.mailbox, Receipt.uid).distinct().subquery())),
            "outbox": one(select(func.count()).select_from(Outbox)),
            "outbox_sent": one(select(func.count()).select_from(Outbox).where(Outbox.status == "sent")),
            "distinct_reply_ids": one(select(func.count(func.distinct(Outbox.message_id)))),
        }
    engine.dispose()
    return rows


def run(dovecot, sink: CountingSink, n: int, boxes: int, workers: int, seed: int, work: Path) -> dict:
    url, schema = pg_schema_url()
    try:
        load(dovecot, n, boxes, seed)
        path = work / f"config-{workers}.yaml"
        path.write_text(yaml.safe_dump(config(dovecot, sink.port, url, boxes)))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        base = [sys.executable, "-m", "mailbot.cli", "--config", str(path)]
        subprocess.run(base + ["db", "upgrade"], check=True, env=env, capture_output=True)
        sent_before = sink.count
        started = time.monotonic()
        logs = [open(work / f"worker-{workers}-{i}.log", "wb") for i in range(workers)]
        processes = [subprocess.Popen(base + ["poll", "--once"], env=env, stdout=log, stderr=subprocess.STDOUT)
                     for log in logs]
        peaks, codes, cpu = [], [], []
        for process in processes:
            _, status, usage = os.wait4(process.pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))
            peaks.append(round(usage.ru_maxrss / 1024, 1))
            cpu.append(round(usage.ru_utime + usage.ru_stime, 1))
        seconds = time.monotonic() - started
        for log in logs:
            log.close()
        rows = count_rows(url)
        outputs = [(work / f"worker-{workers}-{i}.log").read_text(errors="replace").strip()[-300:]
                   for i in range(workers)]
    finally:
        drop_pg_schema(schema)
    delivered = sink.count - sent_before
    once = (rows["incoming"] == rows["distinct_message_ids"] == rows["receipts"] == rows["distinct_receipts"] == n
            and rows["outbox"] == rows["outbox_sent"] == rows["distinct_reply_ids"] == delivered)
    return {"workers": workers, "seconds": round(seconds, 2), "msgs_per_s": round(n / seconds, 1),
            "returncodes": codes, "peak_mb": peaks, "cpu_seconds": cpu, "rows": rows, "delivered": delivered,
            "no_double_work": once, "worker_output": outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="mails in all (split over the mailboxes)")
    parser.add_argument("--mailboxes", type=int, default=3)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--quick", action="store_true", help="N=600")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n = 600 if args.quick else args.n
    n -= n % args.mailboxes
    dovecot = start_dovecot()
    sink = CountingSink()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="mailbot-scaleout-") as tmp:
            for workers in (int(w) for w in args.workers.split(",")):
                result = run(dovecot, sink, n, args.mailboxes, workers, args.seed, Path(tmp))
                runs.append(result)
                print(f"{workers} worker(s): {result['msgs_per_s']:7.1f} msgs/s in {result['seconds']:7.2f} s; "
                      f"no double work: {result['no_double_work']}; rows {result['rows']}; peak MB {result['peak_mb']}",
                      flush=True)
    finally:
        sink.stop()
        dovecot.stop()
        shutil.rmtree(dovecot.root, ignore_errors=True)  # up to N mails on /dev/shm
    base = runs[0]["msgs_per_s"]
    results = {"date": date.today().isoformat(), "n": n, "mailboxes": args.mailboxes, "machine": machine(),
               "database": "postgresql",
               "command": "python benchmarks/scaleout.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "runs": runs, "speedup": {str(r["workers"]): round(r["msgs_per_s"] / base, 2) for r in runs}}
    print(f"speed-up over one worker: {results['speedup']}")
    target = args.json or RESULTS / f"{results['date']}-scaleout{'-quick' if args.quick else ''}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results written to {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
    return 0 if all(r["no_double_work"] and not any(r["returncodes"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
