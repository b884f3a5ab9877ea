"""How alike a message's text is to a case's, and whether a subject names what a mail is about.

Pure, over the normalised texts of `normalize` (`match_text`: "subject\\nbody[\\nown body]");
the scores are rapidfuzz ratios 0..100. `match` decides what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process

from .normalize import split_match_text

# Words that say what a mail is, not what it is about (nl, fr, en, de; folded, after
# normalize.STOP_WORDS): a subject made of these alone is generic and proves no thread.
GENERIC_SUBJECT_WORDS = frozenset("""
klacht klachten vraag vragen probleem problemen dossier antwoord aanvulling bijlage bijlagen
info informatie nieuws update status stand zaken herinnering dringend opnieuw bericht brief
mail email contact contactformulier formulier melding ombudsman ombudsdienst ombudsvrouw
vlaamse nogmaals zaak onderwerp documenten document aanvraag
plainte plaintes reclamation question questions demande probleme complement rappel urgent
nouvelle nouvelles courrier suivi mediateur
complaint complaints request issue problem follow up reminder news letter
beschwerde beschwerden frage fragen anfrage nachricht erinnerung
""".split())


def specific_subject(subject_norm: str) -> bool:
    """Whether a normalised subject names what the mail is about, not only that it is a
    complaint or a question: some word outside GENERIC_SUBJECT_WORDS and digits, and
    together at least six letters ("klacht" → False, "klacht vdab uitkering" → True)."""
    specific = [w for w in subject_norm.split() if w not in GENERIC_SUBJECT_WORDS and not w.isdigit()]
    return sum(len(w) for w in specific) >= 6


def same_subject(subject_norm: str, case_text: str) -> float:
    """How equal a normalised subject is to a case's stored one (fuzz.ratio, 0 when either is
    generic): whole strings, so "klacht" is not "the same" as "klacht studietoelage"."""
    case_subject = case_text.partition("\n")[0]
    if not (specific_subject(subject_norm) and specific_subject(case_subject)):
        return 0.0
    return float(fuzz.ratio(subject_norm, case_subject))


MIN_BODY_WORDS = 8  # below this a body is compared as a whole, not as a set of words


def text_scores(subject: str, body: str, texts: Sequence[str]) -> list[tuple[float, float, float]]:
    """(subject, body, combined) similarity 0..100 of a message to each stored match_text.

    The body decides: token_set_ratio forgives words added or dropped by a resubmission
    (measured on tests/data/matching: same complaints ≥ 73, different ones ≤ 62). A short
    body is compared with token_sort_ratio (a three-word mail is a subset of anything) and
    weighs half with the subject; with no body on either side the subject alone counts 0.8.
    """
    parts = [split_match_text(t) for t in texts]
    return _scores(subject, body, [p[0] for p in parts], [p[1] for p in parts])


def own_scores(subject: str, body: str, texts: Sequence[str]) -> list[tuple[float, float, float]]:
    """As `text_scores`, between the complainant's own words and each case's own words: a
    letter two citizens both forwarded, or the text around a web form's answers, is not
    what either of them wrote."""
    parts = [split_match_text(t) for t in texts]
    return _scores(subject, body, [p[0] for p in parts], [p[2] for p in parts])


def _scores(subject: str, body: str, subjects: list[str],
            bodies: list[str]) -> list[tuple[float, float, float]]:
    if not subjects:
        return []
    s = process.cdist([subject], subjects, scorer=fuzz.token_set_ratio, workers=1)[0]
    b = process.cdist([body], bodies, scorer=fuzz.token_set_ratio, workers=1)[0]
    short = body.count(" ") + 1 < MIN_BODY_WORDS
    out = []
    for subject_score, body_score, case_subject, case_body in zip(s, b, subjects, bodies):
        subject_score = float(subject_score) if subject and case_subject else 0.0
        if not (body and case_body):
            out.append((subject_score, 0.0, subject_score * 0.8))
        elif short or case_body.count(" ") + 1 < MIN_BODY_WORDS:
            body_score = fuzz.token_sort_ratio(body, case_body)
            out.append((subject_score, body_score, 0.5 * subject_score + 0.5 * body_score))
        else:
            body_score = float(body_score)
            out.append((subject_score, body_score,
                        max(body_score, 0.25 * subject_score + 0.75 * body_score)))
    return out
