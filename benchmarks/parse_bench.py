"""Throughput of mailbot.parse.parse_message (+ classify) over the shared corpus, next to the
bare standard-library parser and mail-parser, in the same run.

    python benchmarks/parse_bench.py [--rounds N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import email
import sys
import time
from email.policy import compat32
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.classify import classify  # noqa: E402
from mailbot.errors import ParseError  # noqa: E402
from mailbot.parse import parse_message  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _ours(raw: bytes) -> None:
    try:
        parse_message(raw)
    except ParseError:
        pass


def _ours_classified(raw: bytes) -> None:
    try:
        classify(parse_message(raw))
    except ParseError:
        pass


def _mailparser(raw: bytes) -> None:
    import mailparser

    try:
        mailparser.parse_from_bytes(raw)
    except Exception:  # mail-parser raises on some corpus files; the time still counts
        pass


def rate(fn: Callable[[bytes], None], raws: list[bytes], rounds: int) -> float:
    """Messages per second, best of `rounds` passes over the corpus (after one warm-up)."""
    for raw in raws:
        fn(raw)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in raws:
            fn(raw)
        best = min(best, time.perf_counter() - start)
    return len(raws) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    files = sorted(p for p in args.corpus.rglob("*.eml") if p.is_file())
    raws = [p.read_bytes() for p in files]
    print(f"{len(raws)} messages, {sum(map(len, raws)) / 1e6:.1f} MB, best of {args.rounds} rounds")
    import logging

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # it logs every unknown part type
    bare = rate(lambda r: email.message_from_bytes(r), raws, args.rounds)
    compat = rate(lambda r: email.message_from_bytes(r, policy=compat32), raws, args.rounds)
    ours = rate(_ours, raws, args.rounds)
    ours_cls = rate(_ours_classified, raws, args.rounds)
    mp = rate(_mailparser, raws, args.rounds)
    print(f"email.message_from_bytes (bare)   {bare:8.0f} msg/s")
    print(f"  same, policy=compat32 explicit  {compat:8.0f} msg/s")
    print(f"mail-parser parse_from_bytes      {mp:8.0f} msg/s")
    print(f"mailbot parse_message             {ours:8.0f} msg/s   ratio to bare email: {ours / bare:.2f}, to mail-parser: {ours / mp:.2f}")
    print(f"mailbot parse_message + classify  {ours_cls:8.0f} msg/s   ratio to bare email: {ours_cls / bare:.2f}, to mail-parser: {ours_cls / mp:.2f}")


if __name__ == "__main__":
    main()
