"""Instructions per message: the pipeline's cost counted by valgrind, not timed.

Wall-clock rates on a shared virtual machine move by ±20 % from hour to hour, more than
most single changes are worth. callgrind counts the instructions the interpreter executes,
which does not depend on what else the machine is doing, so two versions of the code can
be compared exactly, in the same run:

    python benchmarks/instructions.py                       # this tree, 200 messages
    python benchmarks/instructions.py --baseline 2c808bc    # and an earlier commit, with the ratio

Each version processes the generated complaint mix (`ingest_mails.py`) in process on a
SQLite database in memory-backed storage: parse, classify, match, route, record, queue the
reply; no IMAP and no SMTP (the ingest benchmark measures those). It runs twice, with
`--warm` and with `--warm + --n` messages; the difference divided by `--n` is the cost of one
message, start-up excluded. The four runs go two at a time (callgrind uses one core).
Needs valgrind (Debian's `valgrind`). Writes `results/<date>-instructions.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(n: int) -> None:
    """Process `n` generated mails with the code of the current directory's tree."""
    tree = Path.cwd()
    sys.path[:0] = [str(tree), str(tree / "benchmarks"), str(tree / "tests")]
    from conftest import base_config  # noqa: E402  (the tree's own test configuration)
    from ingest_mails import generate
    from mailbot.app import create_app
    from mailbot.config import settings_from_mapping
    from mailbot.db_engine import make_engine
    from mailbot.migrate import upgrade
    from mailbot.pipeline import process_files

    folder = tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    try:
        url = f"sqlite:///{folder}/mailbot.sqlite3"
        engine = make_engine(url)
        upgrade(engine)
        app = create_app(settings_from_mapping(base_config(db_url=url)), engine=engine)
        process_files(app.intake, generate(n))
        app.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def count(tree: Path, n: int) -> int:
    """Instructions executed by a child processing `n` mails with `tree`'s code."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--child", str(n)]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONHASHSEED="0"))
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed in {tree} (n={n}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_message(tree: Path, warm: int, n: int) -> dict:
    with ThreadPoolExecutor(max_workers=2) as pool:
        small, large = pool.map(lambda m: count(tree, m), (warm, warm + n))
    return {"instructions_warm": small, "instructions_total": large,
            "per_message": round((large - small) / n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="messages counted (default 200)")
    parser.add_argument("--warm", type=int, default=20, help="messages before counting starts")
    parser.add_argument("--baseline", metavar="GITREV", help="also count this commit, for the ratio")
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    trees = {"this tree": REPO}
    scratch = Path(tempfile.mkdtemp(prefix="mailbot-baseline-"))
    try:
        if args.baseline:
            baseline = scratch / "tree"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(baseline),
                            args.baseline], check=True)
            trees = {f"baseline {args.baseline}": baseline, **trees}
        results = {}
        for name, tree in trees.items():
            results[name] = per_message(tree, args.warm, args.n)
            print(f"{name:28} {results[name]['per_message'] / 1e6:8.2f} M instructions/message", flush=True)
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "tree")],
                           check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    revision = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    report = {"date": date.today().isoformat(), "n": args.n, "warm": args.warm, "this_tree": revision,
              "machine": {"python": platform.python_version(), "system": f"{platform.system()} {platform.release()}"},
              "command": "python benchmarks/instructions.py " + " ".join(sys.argv[1:]), "results": results}
    if args.baseline:
        before, after = (r["per_message"] for r in results.values())
        report["ratio_this_vs_baseline"] = round(after / before, 3)
        print(f"this tree / baseline: {after / before:.3f}")
    out = args.json or REPO / "benchmarks" / "results" / f"{date.today().isoformat()}-instructions.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
