"""The package type-checks: mypy, with the settings in pyproject.toml, finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_error(tmp_path: Path) -> None:
    """Annotations are kept true: a wrong type in `mailbot/` fails the suite, not production."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "mailbot"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
