"""Per-message matching time as the case table grows (issue 5: flat cost at scale).

Loads 1,000 → 100,000 → 1,000,000 generated cases (bulk insert, growing one database) into
SQLite and PostgreSQL (a schema of its own in database `test`, dropped afterwards) and times
`MatchingStage.match` on a mix of messages at each size: a resubmission by a known citizen,
a new complaint from an unknown address, a follow-up quoting our reference, a near-duplicate
from another address. Prints median and p95 per size and the largest/smallest ratio.

    python benchmarks/match_bench.py            # 1k / 100k / 1M, SQLite and PostgreSQL
    python benchmarks/match_bench.py --quick    # 1k / 10k / 100k
    python benchmarks/match_bench.py --db sqlite --sizes 1000 50000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from mailbot.config import settings_from_mapping  # noqa: E402
from mailbot.db_engine import make_engine, make_sessionmaker  # noqa: E402
from mailbot.matching_stage import MatchingStage  # noqa: E402
from mailbot.migrate import upgrade  # noqa: E402
from mailbot.model import Address, Classification, Kind, Mail  # noqa: E402
from mailbot.normalize import lsh_keys  # noqa: E402
from mailbot.routing_stage import RoutingStage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MAILBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
SPAN_DAYS = 3650  # cases spread over ten years
FIRST = ["jan", "sofie", "tom", "marie", "ahmed", "linda", "marc", "an", "kim", "luc", "els", "geert",
         "hilde", "rik", "katrien", "frank", "nathalie", "johan", "sara", "pieter", "fatima", "bart",
         "ines", "wim", "lotte", "koen", "eva", "dirk", "nina", "youssef"] * 2
LAST = ["peeters", "janssens", "maes", "jacobs", "mertens", "willems", "claes", "goossens", "wouters",
        "de smet", "dubois", "lambert", "martin", "el amrani", "vermeulen", "desmet", "hermans", "wuyts",
        "van den broeck", "leroy", "dupont", "aerts", "segers", "smets", "michiels", "de vos", "coppens"] * 3


def vocabulary(rng: random.Random, size: int = 6000) -> tuple[list[str], list[float]]:
    syllables = ["ka", "ver", "toe", "lage", "aan", "vraag", "dos", "sier", "be", "slis", "sing", "pre",
                 "mie", "wo", "ning", "bus", "hal", "te", "boe", "school", "zorg", "bud", "get", "re",
                 "no", "va", "tie", "bel", "ting", "ont", "vang", "weig", "ring", "klacht", "beh", "an"]
    words = list(dict.fromkeys("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
                               for _ in range(size * 2)))[:size]
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank ** 0.9  # Zipf-like: a few common words, a long tail
        cumulative.append(total)
    return words, cumulative


class Generator:
    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.words, self.cum = vocabulary(self.rng)
        self.counter = 0

    def text(self, n: int = 45) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum, k=n))

    def case(self, citizens: int) -> dict:
        self.counter += 1
        k = self.rng.randrange(citizens)
        first, last = FIRST[k % len(FIRST)], LAST[(k // len(FIRST)) % len(LAST)]
        created = NOW - timedelta(seconds=self.rng.uniform(60, SPAN_DAYS * 86400))
        subject, body = self.text(5), self.text()
        name_key = " ".join(sorted(f"{first} {last}".split()))
        return {"ref": f"VO-{created.year}-{self.counter:07d}", "status": "open",
                "citizen_email": f"citizen{k}@example.be", "citizen_name": f"{first} {last}".title(),
                "language": "nl", "subject": subject, "outcome": "investigation", "priority": "normal",
                "flags": [], "tags": [], "also_sent_to": [], "created_at": created, "updated_at": created,
                "citizen_name_key": name_key, "match_text": f"{subject}\n{body}",
                "match_agencies": [], "co_recipients": []}


COLUMNS = ["ref", "status", "citizen_email", "citizen_name", "language", "subject", "outcome", "priority",
           "flags", "tags", "also_sent_to", "created_at", "updated_at", "citizen_name_key", "match_text",
           "match_agencies", "co_recipients"]
JSON_COLUMNS = {"flags", "tags", "also_sent_to", "match_agencies", "co_recipients"}


def _tsv(value: object) -> str:
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    elif isinstance(value, datetime):
        value = value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", "\\n")


def load(engine: sa.Engine, rows: list[dict], keys: list[tuple]) -> None:
    """Bulk insert cases and their band keys: COPY on PostgreSQL, executemany on SQLite."""
    values = [tuple(row[c] for c in ["id", *COLUMNS]) for row in rows]
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f'COPY "case" (id, {", ".join(COLUMNS)}) FROM STDIN') as copy:
                copy.write("".join("\t".join(map(_tsv, v)) + "\n" for v in values))
            with cursor.copy("COPY case_key (kind, value, case_id, created_at) FROM STDIN") as copy:
                copy.write("".join("\t".join(map(_tsv, k)) + "\n" for k in keys))
            raw.commit()
        finally:
            raw.close()
        return
    values = [tuple(json.dumps(v) if isinstance(v, list) else _sqlite_time(v)
                    if isinstance(v, datetime) else v for v in row) for row in values]
    marks = ", ".join("?" * (len(COLUMNS) + 1))
    with engine.begin() as conn:
        conn.exec_driver_sql(f'INSERT INTO "case" (id, {", ".join(COLUMNS)}) VALUES ({marks})', values)
        conn.exec_driver_sql("INSERT INTO case_key (kind, value, case_id, created_at) VALUES (?, ?, ?, ?)",
                             [(k, v, c, _sqlite_time(t)) for k, v, c, t in keys])


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy's DateTime stores a (UTC) moment in SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def band_keys(rows: list[dict], first_id: int) -> list[tuple]:
    keys = []
    for offset, row in enumerate(rows):
        row["id"] = first_id + offset
        body = row["match_text"].partition("\n")[2]
        keys += [("lsh", v, row["id"], row["created_at"]) for v in lsh_keys(body)]
    return keys


def messages(gen: Generator, recent: list[dict], sample: list[dict]) -> list[Mail]:
    """A mix of the four kinds of message, built from cases in the database."""
    mails = []
    for i in range(len(sample)):
        row, near = sample[i], recent[i % len(recent)]
        subject, body = row["match_text"].split("\n")
        words = body.split()
        kind = i % 4
        if kind == 0:  # resubmission by a known citizen: a few words changed
            for _ in range(6):
                words[gen.rng.randrange(len(words))] = gen.rng.choice(gen.words)
            sender, text = Address(row["citizen_name"], row["citizen_email"]), " ".join(words)
        elif kind == 1:  # a new complaint from an unknown address
            sender, text = Address("Nieuwe Burger", f"new{i}@example.org"), gen.text()
        elif kind == 2:  # a follow-up quoting our reference
            sender, text = Address(row["citizen_name"], row["citizen_email"]), f"Zie {row['ref']}. " + gen.text(10)
        else:  # the same complaint as a recent case, from another address
            subject, body = near["match_text"].split("\n")
            sender, text = Address("Iemand Anders", f"other{i}@example.org"), body
        mails.append(Mail(message_id=f"{uuid.uuid4().hex}@bench", subject=subject, from_=sender,
                          to=(Address("", "klachten@vlaamseombudsdienst.be"),), text=text, new_text=text))
    return mails


def measure(stage: MatchingStage, sessions, mails: list[Mail]) -> list[float]:
    classification = Classification(kind=Kind.NEW_COMPLAINT, language="nl")
    times = []
    with sessions() as session:
        for mail in mails:  # warm-up pass: caches, compiled statements, pages
            stage.match(session, mail, classification)
        for mail in mails:
            started = time.perf_counter()
            stage.match(session, mail, classification)
            times.append((time.perf_counter() - started) * 1000)
        session.rollback()
    return times


class Backend:
    """One database being grown and measured."""

    def __init__(self, name: str, tmp: str) -> None:
        self.name, self.schema = name, None
        if name == "sqlite":
            url = f"sqlite:///{tmp}/bench.sqlite3"
        else:
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self.engine = make_engine(url)
        upgrade(self.engine)
        settings = settings_from_mapping({
            "imap": {"host": "127.0.0.1", "username": "klachten@example.org", "password": "x"},
            "smtp": {"host": "127.0.0.1", "from_address": "klachten@vlaamseombudsdienst.be"},
            "office": {"name": "Vlaamse Ombudsdienst"}, "database": {"url": url},
            "rules_dir": str(REPO / "rules"), "templates_dir": str(REPO / "templates")})
        self.stage = MatchingStage(settings, RoutingStage(settings.rules_dir), clock=lambda: NOW)
        self.sessions = make_sessionmaker(self.engine)
        self.results: list[tuple[int, float, float]] = []
        self.load_seconds = 0.0

    def load(self, batch: list[dict], keys: list[tuple]) -> None:
        started = time.perf_counter()
        load(self.engine, batch, keys)
        self.load_seconds += time.perf_counter() - started

    def analyze(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))

    def close(self) -> None:
        self.engine.dispose()
        if self.schema:
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


def run(names: list[str], sizes: list[int], n_messages: int) -> list[Backend]:
    """Grow every backend through `sizes` with the same generated cases; time at each size."""
    tmp = tempfile.TemporaryDirectory(prefix="match-bench-")
    backends: list[Backend] = []
    try:
        backends = [Backend(name, tmp.name) for name in names]
        gen = Generator()
        loaded, recent, sample = 0, [], []
        for size in sizes:
            citizens = max(size // 3, 10)
            while loaded < size:
                batch = [gen.case(citizens) for _ in range(min(50_000, size - loaded))]
                keys = band_keys(batch, loaded + 1)
                recent = ([r for r in batch if r["created_at"] > NOW - timedelta(days=20)] + recent)[:200]
                sample = (sample + gen.rng.sample(batch, min(len(batch), 200)))[-2000:]
                with ThreadPoolExecutor(len(backends)) as pool:  # the databases work in parallel
                    list(pool.map(lambda b: b.load(batch, keys), backends))
                loaded += len(batch)
            picked = gen.rng.sample(sample, min(n_messages, len(sample)))
            mails = messages(gen, recent or sample, picked)
            for backend in backends:
                backend.analyze()
                times = measure(backend.stage, backend.sessions, mails)
                median, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
                backend.results.append((size, median, p95))
                print(f"{backend.name:10} {size:>9,} cases  match median {median:6.2f} ms  p95 {p95:6.2f} ms"
                      f"   (bulk load so far {backend.load_seconds:5.1f} s)", flush=True)
    finally:
        for backend in backends:
            backend.close()
        tmp.cleanup()
    return backends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k / 10k / 100k cases")
    parser.add_argument("--sizes", type=int, nargs="+", help="case counts to measure at (ascending)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--messages", type=int, default=400, help="messages timed per size")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1_000, 10_000, 100_000] if args.quick else [1_000, 100_000, 1_000_000])
    names = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    ok = True
    for backend in run(names, sizes, args.messages):
        (small, first, _), (large, last, _) = backend.results[0], backend.results[-1]
        print(f"{backend.name:10} {large:,} / {small:,} cases: {last / first:.2f}× median")
        ok &= last <= 2 * first and (backend.name != "sqlite" or last < 10)
    print(f"total {time.perf_counter() - started:.0f} s; requirement (largest within 2× of smallest, "
          f"SQLite median < 10 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
