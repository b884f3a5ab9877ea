"""The shared real-world corpus: every file parses; labelled auto/bounce and forwards agree."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from mailbot.classify import classify
from mailbot.parse import parse_message
from servers import unavailable

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _corpus_present() -> None:
    """CI lays shared/ beside the clone: a missing corpus fails there, and is skipped elsewhere."""
    if not (CORPUS / "labels.tsv").exists():
        unavailable("the shared corpus is not beside the repository (../shared/corpus)")

# Heuristic labels we believe are wrong, with why (reported to the corpus keeper).
WRONG_AUTO_LABELS = {
    # Both carry a List-Id header (one also List-Unsubscribe): mailing-list mail is automatic
    # by the issue's own rule, though the label's heuristic only looked for Auto-Submitted/report.
    "malformed/mikel-mail__empty_in_reply_to.eml",
    "malformed/spamscope__mail_test_6.eml",
}


def _rows() -> list[dict[str, str]]:
    if not (CORPUS / "labels.tsv").exists():
        return []
    with open(CORPUS / "labels.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".tsv", ".reply_text"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_every_corpus_file_parses(path: Path) -> None:
    """Every corpus message parses and classifies without an exception."""
    classify(parse_message(path.read_bytes()))


LABELLED = [r for r in _rows() if r["is_auto_reply_or_bounce"] in ("yes", "no")]


@pytest.mark.parametrize("row", [r for r in LABELLED if r["file"] not in WRONG_AUTO_LABELS], ids=lambda r: r["file"])
def test_auto_label(row: dict[str, str]) -> None:
    """The automatic/bounce decision matches the corpus label."""
    result = classify(parse_message((CORPUS / row["file"]).read_bytes()))
    assert result.is_automatic == (row["is_auto_reply_or_bounce"] == "yes"), result.auto_reason


@pytest.mark.parametrize("row", [r for r in _rows() if r["has_forwarded_content"] in ("yes", "no")], ids=lambda r: r["file"])
def test_forward_label(row: dict[str, str]) -> None:
    """Forwarded content is found exactly where the corpus says there is some."""
    mail = parse_message((CORPUS / row["file"]).read_bytes())
    assert bool(mail.forwarded) == (row["has_forwarded_content"] == "yes")


@pytest.mark.parametrize("name", sorted(WRONG_AUTO_LABELS))
def test_list_mail_labelled_human_is_automatic(name: str) -> None:
    """The two List-Id messages labelled 'no' are automatic by the List-Id rule."""
    assert classify(parse_message((CORPUS / name).read_bytes())).auto_reason == "mailing list: list-id"


TALON_REPLY_TEXTS = 2  # plain/talon__iphone and plain/talon__sparrow


def test_talon_reply_texts() -> None:
    """talon's expected reply texts equal our new text up to the signature, which talon keeps and we drop."""
    texts = sorted(CORPUS.rglob("*.reply_text"))
    assert len(texts) == TALON_REPLY_TEXTS, texts  # none found would pass the loop unseen
    for expected in texts:
        eml = next(CORPUS.rglob(expected.name.split(".")[0] + "*.eml"))
        got = parse_message(eml.read_bytes()).new_text
        want = re.split(r"(?m)^(?:-- ?$|Sent from my )", expected.read_text(encoding="utf-8"))[0]
        assert " ".join(got.split()) == " ".join(want.split()), eml.name


def test_corpus_is_present_and_labelled():
    """The shared corpus is there with its labels (parametrised tests above would silently vanish)."""
    assert len(list(csv.DictReader((CORPUS / "labels.tsv").open(encoding="utf-8"), delimiter="\t"))) >= 100
