"""Precision and recall of the fuzzy thresholds on the labelled set in tests/data/matching,
and of the whole decision (text and same subject, `match_message`) when the stored case is
the sender's only open case, on that set plus the labelled follow-ups below.

    python tests/test_match_quality.py      # prints the tables per threshold and per pair kind
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from datetime import datetime, timedelta, timezone

from mailbot.config import MatchingSettings
from mailbot.match import match_message
from mailbot.match_model import Candidate, Found, MessageFacts, Policy
from mailbot.model import Kind
from mailbot.normalize import body_key, match_text, subject_key
from mailbot.similarity import text_scores

PAIRS = Path(__file__).parent / "data" / "matching" / "pairs.json"


# The citizen writes again about their only open case: the subject is the case's (behind
# Re:/AW:/TR:) but the body is news, not the complaint again (same=True); or the subject is
# generic and the body another complaint (same=False). (kind, same, case subject, case body,
# mail subject, mail body)
FOLLOW_UPS = [
    ("follow-up-same-subject", True, "Klacht over VDAB uitkering",
     "Ik heb al een klacht ingediend bij de VDAB over de stopzetting van mijn begeleiding, maar ik "
     "kreeg geen antwoord. Ik zet de VDAB in kopie zodat zij ook op de hoogte zijn.",
     "Re: Klacht over VDAB uitkering",
     "Nog een aanvulling: ik heb gisteren een nieuwe brief gekregen van de VDAB. Ik zet hen opnieuw in kopie."),
    ("follow-up-same-subject", True, "Huurpremie geweigerd",
     "Wonen in Vlaanderen weigert mijn huurpremie omdat mijn huurcontract niet zou zijn opgeladen. "
     "Ik heb het contract wel degelijk opgeladen in maart, samen met mijn loonfiches.",
     "AW: Huurpremie geweigerd",
     "Bijkomend: ik kreeg vandaag een brief dat ze mijn dossier afsluiten. Wat moet ik nu doen?"),
    ("follow-up-same-subject", True, "Amende De Lijn injustifiée",
     "J'ai reçu une amende de 75 euros dans le tram alors que mon abonnement était valable. Le scanner "
     "ne fonctionnait pas et De Lijn refuse d'annuler l'amende.",
     "TR: Amende De Lijn injustifiée",
     "Je vous envoie en annexe la photo de mon abonnement et le reçu de mon paiement."),
    ("follow-up-same-subject", True, "Beschwerde Kindergeld nicht bezahlt",
     "Seit Januar erhalte ich kein Kindergeld mehr für meine Tochter, obwohl sich an unserer Situation "
     "nichts geändert hat. Die Kasse antwortet nicht auf meine E-Mails.",
     "AW: AW: Beschwerde Kindergeld nicht bezahlt",
     "Heute kam endlich ein Brief der Kasse, aber er erklärt nichts. Ich lege ihn bei."),
    ("follow-up-same-subject", True, "Rijbaan vol putten N9 gevaarlijk",
     "Op de N9 tussen Aalter en Maldegem liggen al maanden diepe putten in de rijbaan. Ik heb het "
     "Agentschap Wegen en Verkeer verwittigd maar er gebeurt niets.",
     "Re: Rijbaan vol putten N9 gevaarlijk",
     "Gisteren is mijn buurvrouw er met de fiets gevallen. Ik stuur u de foto's van de schade."),
    ("generic-subject-other-issue", False, "Klacht",
     "Mijn studietoelage werd geweigerd omdat mijn inkomen te hoog zou zijn, maar ze rekenden met het "
     "inkomen van mijn ex-partner.",
     "Re: Klacht",
     "De bus van lijn 58 stopt al drie weken niet meer aan onze halte in de Kerkstraat."),
    ("generic-subject-other-issue", False, "Mijn klacht",
     "Mijn renovatiepremie voor nieuwe ramen is na acht maanden nog altijd niet uitbetaald.",
     "Mijn klacht",
     "Ik kreeg een aanmaning voor verkeersbelasting van een auto die ik vorig jaar verkocht heb."),
    ("generic-subject-other-issue", False, "Vraag",
     "Hoe lang duurt het voor een aanvraag voor een persoonsvolgend budget behandeld wordt bij het VAPH?",
     "RE: Vraag",
     "Mijn zoon werd niet ingeschreven in de school van zijn zus, hoewel broers en zussen voorrang hebben."),
    ("generic-subject-other-issue", False, "Plainte",
     "Le VDAB a suspendu mon accompagnement sans explication depuis deux mois.",
     "TR: Plainte",
     "Mon précompte immobilier a été payé deux fois et je n'ai toujours pas été remboursé."),
    ("generic-subject-other-issue", False, "",
     "Mijn kinderbijslag voor onze dochter wordt sinds januari niet meer betaald.",
     "",
     "De stad heeft de afvalophaling in onze straat al drie weken overgeslagen."),
]
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


def scored_pairs() -> list[tuple[float, bool, str]]:
    """(combined score, same complaint?, pair kind) for every labelled pair."""
    out = []
    for pair in json.loads(PAIRS.read_text(encoding="utf-8")):
        a, b = pair["a"], pair["b"]
        stored = match_text(subject_key(a["subject"]), body_key(a["body"]))
        [(_, _, score)] = text_scores(subject_key(b["subject"]), body_key(b["body"]), [stored])
        out.append((score, pair["same"], pair["kind"]))
    return out


def decided_pairs(policy: Policy = Policy()) -> list[tuple[bool, bool, str]]:
    """(joined?, same complaint?, pair kind) when the first mail of each pair is the
    sender's only open case (opened 60 days ago) and the second comes from the same address:
    every labelled pair and every FOLLOW_UPS pair, through `match_message`."""
    rows = [(p["a"]["subject"], p["a"]["body"], p["b"]["subject"], p["b"]["body"], p["same"], p["kind"])
            for p in json.loads(PAIRS.read_text(encoding="utf-8"))]
    rows += [(cs, cb, ms, mb, same, kind) for kind, same, cs, cb, ms, mb in FOLLOW_UPS]
    out = []
    for case_subject, case_body, subject, body, same, kind in rows:
        case = Candidate(case_id=1, ref="VO-2026-000001", citizen_email="burger@example.be",
                         text=match_text(subject_key(case_subject), body_key(case_body)),
                         created_at=NOW - timedelta(days=60))
        facts = MessageFacts(sender="burger@example.be", kind=Kind.NEW_COMPLAINT, received_at=NOW,
                             subject=subject_key(subject), body=body_key(body))
        joined = match_message(facts, Found(identity=[case]), policy).match.case_id == 1
        out.append((joined, same, kind))
    return out


def decision_precision_recall(decided: list[tuple[bool, bool, str]]) -> tuple[float, float]:
    tp = sum(1 for joined, same, _ in decided if joined and same)
    fp = sum(1 for joined, same, _ in decided if joined and not same)
    fn = sum(1 for joined, same, _ in decided if same and not joined)
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


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


def test_the_citizens_only_open_case_is_joined_by_same_subject_or_text_never_wrongly():
    """From the address of the citizen's only open case, the default policy joins no different
    complaint (generic subjects included) and every resubmission and same-subject follow-up:
    precision 1.0, recall 1.0."""
    decided = decided_pairs(Policy(fuzzy_threshold=MatchingSettings().fuzzy_threshold,
                                   triage_threshold=MatchingSettings().triage_threshold))
    assert decision_precision_recall(decided) == (1.0, 1.0)


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
    decided = decided_pairs()
    p, r = decision_precision_recall(decided)
    print(f"\nsame address, only open case: {len(decided)} pairs, precision {p:.3f}  recall {r:.3f}")
    by_kind_joined: dict[str, list[bool]] = defaultdict(list)
    for joined, _, kind in decided:
        by_kind_joined[kind].append(joined)
    for kind, joins in by_kind_joined.items():
        print(f"{kind:28} joined {sum(joins)}/{len(joins)}")


if __name__ == "__main__":
    main()
