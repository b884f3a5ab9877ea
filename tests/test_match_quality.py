"""Precision and recall of the fuzzy thresholds on the labelled set in tests/data/matching.

    python tests/test_match_quality.py      # prints the table per threshold and per pair kind
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from mailbot.config import MatchingSettings
from mailbot.match import text_scores
from mailbot.normalize import body_key, match_text, subject_key

PAIRS = Path(__file__).parent / "data" / "matching" / "pairs.json"


def scored_pairs() -> list[tuple[float, bool, str]]:
    """(combined score, same complaint?, pair kind) for every labelled pair."""
    out = []
    for pair in json.loads(PAIRS.read_text(encoding="utf-8")):
        a, b = pair["a"], pair["b"]
        stored = match_text(subject_key(a["subject"]), body_key(a["body"]))
        [(_, _, score)] = text_scores(subject_key(b["subject"]), body_key(b["body"]), [stored])
        out.append((score, pair["same"], pair["kind"]))
    return out


def precision_recall(scored: list[tuple[float, bool, str]], threshold: float) -> tuple[float, float]:
    tp = sum(1 for s, same, _ in scored if same and s >= threshold)
    fp = sum(1 for s, same, _ in scored if not same and s >= threshold)
    fn = sum(1 for s, same, _ in scored if same and s < threshold)
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def test_labelled_set_is_large_enough():
    """The labelled set has at least 100 pairs with both labels."""
    scored = scored_pairs()
    assert len(scored) >= 100 and 0 < sum(s for _, s, _ in scored) < len(scored)


def test_default_fuzzy_threshold_never_joins_a_different_complaint():
    """At the default fuzzy_threshold no different complaint is joined and almost every
    resubmission is: precision 1.0, recall ≥ 0.95."""
    precision, recall = precision_recall(scored_pairs(), MatchingSettings().fuzzy_threshold)
    assert precision == 1.0 and recall >= 0.95


def test_default_triage_threshold_shows_every_resubmission_to_staff():
    """Every same-complaint pair scores at least the default triage_threshold."""
    _, recall = precision_recall(scored_pairs(), MatchingSettings().triage_threshold)
    assert recall == 1.0


def test_same_agency_other_issue_stays_below_the_join_threshold():
    """The citizen's other complaint about the same agency is never joined automatically."""
    threshold = MatchingSettings().fuzzy_threshold
    assert all(s < threshold for s, _, kind in scored_pairs() if kind == "same-agency-other-issue")


def main() -> None:
    scored = scored_pairs()
    print(f"{len(scored)} pairs, {sum(s for _, s, _ in scored)} same complaint")
    print("threshold  precision  recall")
    for threshold in range(50, 95, 5):
        p, r = precision_recall(scored, threshold)
        print(f"{threshold:9}  {p:9.3f}  {r:6.3f}")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for score, _, kind in scored:
        by_kind[kind].append(score)
    for kind, scores in by_kind.items():
        print(f"{kind:26} min {min(scores):5.1f}  median {sorted(scores)[len(scores) // 2]:5.1f}  max {max(scores):5.1f}")


if __name__ == "__main__":
    main()
