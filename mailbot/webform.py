"""The citizen's own words in a web form's mail: its longest answer. Pure.

A form robot writes "Label: answer" lines, or a "Label:" line with the answer in the
paragraphs right below it, among texts of its own (an introduction, a footer with consent
lines) that are the same in every mail it sends: compared whole, two citizens' short
complaints through the form look alike. The complaint is the longest answer; a text
without any field is returned whole. An answer below its label ends at a paragraph that
holds a field line (the next field, or a footer with its consent lines); a footer without
any field line cannot be told from the answer.
"""

from __future__ import annotations

import re

# A label: a few words starting with a letter, then a colon. Not a link ("https://…").
_FIELD = re.compile(r"^[ \t]*([^\W\d_][^:\n]{0,80}?)[ \t]*:(?!//)[ \t]*(.*?)[ \t]*$")
MAX_LABEL_WORDS = 8


def _answer(line: str) -> str | None:
    """The answer on a field line ("" when it follows below the label); None for other lines."""
    field = _FIELD.match(line)
    if field is None or len(field.group(1).split()) > MAX_LABEL_WORDS:
        return None
    return field.group(2)


def longest_answer(text: str) -> str:
    """The answer with the most words (the first of equals), or the whole text without fields."""
    lines = text.replace("\r\n", "\n").split("\n")
    answers: list[str] = []
    i = 0
    while i < len(lines):
        answer = _answer(lines[i])
        i += 1
        if answer is None:
            continue
        if not answer:
            answer, i = _answer_below(lines, i)
        answers.append(answer)
    if not answers:
        return text
    return max(answers, key=lambda a: len(a.split()))


def _answer_below(lines: list[str], start: int) -> tuple[str, int]:
    """The answer written below a label, from `start` (none after a blank line), and the
    index of the first line after it."""
    i = start
    while i < len(lines) and lines[i].strip() and _answer(lines[i]) is None:
        i += 1
    kept = lines[start:i]
    while kept and i < len(lines) and not lines[i].strip():  # later paragraphs of the answer
        first = i
        while first < len(lines) and not lines[first].strip():
            first += 1
        end = first
        while end < len(lines) and lines[end].strip():
            end += 1
        if end == first or any(_answer(line) is not None for line in lines[first:end]):
            break
        kept += ["", *lines[first:end]]
        i = end
    return "\n".join(kept).strip(), i


# Labels a form gives the citizen's name under (nl, fr, en, de), lower case.
NAME_LABELS = frozenset({"naam", "volledige naam", "naam en voornaam", "voornaam en naam", "uw naam",
                         "nom", "nom et prénom", "prénom et nom", "votre nom",
                         "name", "full name", "your name", "vollständiger name", "ihr name"})


def form_name(text: str) -> str:
    """The name the citizen filled in ("Naam: An Janssens"), or ""."""
    for line in text.replace("\r\n", "\n").split("\n")[:200]:
        field = _FIELD.match(line)
        if field is not None and field.group(1).strip().lower() in NAME_LABELS:
            return field.group(2)[:200]
    return ""



# Labels a form gives the citizen's phone number under (nl, fr, en, de), lower case.
PHONE_LABELS = frozenset({"telefoon", "telefoonnummer", "tel", "tel.", "gsm", "gsm-nummer", "gsmnummer", "mobiel",
                          "mobiel nummer", "uw telefoonnummer", "telefoon of gsm", "téléphone", "tél", "tél.",
                          "numéro de téléphone", "votre numéro de téléphone", "portable", "phone", "phone number",
                          "telephone", "telephone number", "mobile", "your phone number", "telefon",
                          "telefonnummer", "handy", "handynummer", "ihre telefonnummer"})


def phone_fields(text: str) -> str:
    """The answers of the phone fields the citizen filled in ("Telefoon: 0470 12 34 56"), one
    a line: a number there is the citizen's own (not one their complaint mentions)."""
    answers = []
    for line in text.replace("\r\n", "\n").split("\n")[:200]:
        field = _FIELD.match(line)
        if field is not None and field.group(1).strip().lower() in PHONE_LABELS and field.group(2):
            answers.append(field.group(2)[:100])
    return "\n".join(answers)
