"""Separate the new text of a reply from quoted history and signature, nl/fr/en/de. Pure.

Rules, in order: `>`-quoted lines go, with the attribution line above them ("Op … schreef
…:", "Le … a écrit :", "Am … schrieb …:", "On … wrote:"); an unquoted attribution, an
Outlook header block or a forward marker ends the new text (top-posting: all below is
history); a signature delimiter or a "sent from my phone" line ends it too.
"""

from __future__ import annotations

import re

from mailbot.forwards import first_block_line

_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:op\b.{4,200}\bschreef\b.{0,200}|le\b.{4,200}\ba [ée]crit\b.{0,200}|am\b.{4,200}\bschrieb\b.{0,200}|"
    r"on\b.{4,200}\bwrote\b.{0,200}|el\b.{4,200}\bescribi[óo]\b.{0,200}|il\b.{4,200}\bha scritto\b.{0,200}|"
    r".{1,120}\b(?:schreef|a [ée]crit|schrieb|wrote)\s*)[:：]?[ \t]*$",
    re.I,
)
_SIGNATURE = re.compile(
    r"^[ \t]*(?:--[ \t]?|__+|(?:verzonden|verstuurd) (?:vanaf|van|met) mijn\b.*|envoy[ée] (?:de|depuis) mon\b.*|"
    r"sent from my\b.*|von meinem\b.*gesendet.*|gesendet von\b.*|get outlook for\b.*|"
    r"download outlook\b.*|outlook voor (?:ios|android)\b.*)$",
    re.I,
)
_ATTRIBUTION_WORD = re.compile(r"schreef|crit|schrieb|wrote|escribi|scritto", re.I)  # cheap pre-check
MAX_ATTRIBUTION_LINES = 3  # clients wrap long "Op … schreef …:" lines


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines (1..3) starting at i form an attribution line; 0 when none does."""
    for n in range(1, min(MAX_ATTRIBUTION_LINES, len(lines) - i) + 1):
        chunk = " ".join(line.strip() for line in lines[i:i + n])
        if n > 1 and not lines[i + n - 1].strip():
            return 0
        if len(chunk) < 400 and _ATTRIBUTION.match(chunk) and chunk.rstrip().endswith((":", "：")):
            return n
        if lines[i + n - 1].rstrip().endswith((":", "：")):
            return 0
    return 0


def new_text(text: str) -> str:
    """The text the sender wrote in this message, without history and signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    end = first_block_line(lines)
    if end is not None:
        lines = lines[:end]
    # Only lines near an attribution verb can start an attribution: find them once.
    near: set[int] = set()
    if _ATTRIBUTION_WORD.search(text):
        for n, line in enumerate(lines):
            if len(line) < 400 and _ATTRIBUTION_WORD.search(line):
                near.update(range(max(n - MAX_ATTRIBUTION_LINES + 1, 0), n + 1))
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">"):
            i += 1
            continue
        if _SIGNATURE.match(line):
            break
        span = _attribution_at(lines, i) if i in near and line.strip() else 0
        if span:
            following = next((x for x in lines[i + span:] if x.strip()), "")
            if not following.lstrip().startswith(">"):
                break  # top-posted: everything below is history
            i += span
            continue
        kept.append(line)
        i += 1
    return "\n".join(kept).strip()
