"""Where the shipped `rules/` and `templates/` are, wherever the package is installed.

In a checkout (or an editable install) they sit next to the package: `<repo>/rules`,
`<repo>/templates`. A wheel carries copies as package data under `mailbot/_shipped/`
(symlinks to the repo folders in the source tree, real files once built).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

__all__ = ["shipped_dir", "rules_dir", "templates_dir"]


def shipped_dir(name: str) -> Path:
    """The folder `name` (`rules` or `templates`): repo layout first, then package data."""
    repo = _PACKAGE.parent
    candidates = [repo / name] if (repo / "pyproject.toml").is_file() else []
    for candidate in [*candidates, _PACKAGE / "_shipped" / name]:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise FileNotFoundError(f"mailbot's shipped {name}/ folder is missing; reinstall the package")


def rules_dir() -> Path:
    return shipped_dir("rules")


def templates_dir() -> Path:
    return shipped_dir("templates")
