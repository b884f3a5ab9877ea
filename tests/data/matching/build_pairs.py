"""Build the labelled pairs (pairs.json) from complaints.py. Deterministic:

    python tests/data/matching/build_pairs.py

Positive pairs ("same complaint"): a resend with typos and another greeting, the hand-written
paraphrase, the paraphrase under a generic subject, the paraphrase with typos. Negative
pairs: the same citizen's other complaint about the same agency (hard), and two complaints
of other citizens (easy).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from complaints import BASES

HERE = Path(__file__).parent
GENERIC = {"nl": ["Klacht", "Nog steeds geen antwoord", "Mijn klacht", "Dringend: opnieuw mijn klacht"],
           "fr": ["Plainte", "Toujours pas de réponse", "Ma plainte", "Réclamation"]}
AGAIN = {"nl": "Ik stuur mijn klacht opnieuw omdat ik geen ontvangstbevestiging kreeg.",
         "fr": "Je renvoie ma plainte car je n'ai pas reçu d'accusé de réception."}
GREETING = {"nl": "Goedemorgen,", "fr": "Bonjour,"}


def typos(text: str, rng: random.Random, rate: float = 0.03) -> str:
    """Swap, drop or double letters in about `rate` of the words."""
    out = []
    for word in text.split(" "):
        if len(word) > 3 and rng.random() < rate:
            i = rng.randrange(1, len(word) - 2)
            op = rng.choice(("swap", "drop", "double"))
            if op == "swap":
                word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            elif op == "drop":
                word = word[:i] + word[i + 1:]
            else:
                word = word[:i] + word[i] + word[i:]
        out.append(word)
    return " ".join(out)


def resend(base: dict, rng: random.Random) -> str:
    lines = base["body"].split("\n")
    lines[0] = GREETING[base["lang"]]
    lines.insert(2, AGAIN[base["lang"]])
    return typos("\n".join(lines), rng)


def build(seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for i, base in enumerate(BASES):
        first = {"subject": base["subject"], "body": base["body"]}

        def pair(kind: str, same: bool, subject: str, body: str) -> None:
            pairs.append({"id": f"{i:02d}-{kind}", "lang": base["lang"], "kind": kind, "same": same,
                          "a": first, "b": {"subject": subject, "body": body}})

        pair("resend", True, "RE: " + typos(base["subject"], rng, 0.1), resend(base, rng))
        pair("reworded", True, base["para_subject"], base["para_body"])
        pair("reworded-generic-subject", True, rng.choice(GENERIC[base["lang"]]), base["para_body"])
        pair("reworded-typos", True, typos(base["para_subject"], rng, 0.1), typos(base["para_body"], rng, 0.06))
        pair("same-agency-other-issue", False, base["other_subject"], base["other_body"])
        for j in rng.sample([k for k in range(len(BASES)) if k != i], 2):
            other = BASES[j]
            pair("unrelated", False, other["subject"], other["body"])
    return pairs


if __name__ == "__main__":
    data = build()
    (HERE / "pairs.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(data)} pairs, {sum(p['same'] for p in data)} positive")
