"""Which of the office's languages (nl, fr, en, de) a message is written in. Pure, offline.

py3langid (a maintained, numpy-only rewrite of langid.py, one ~2 MB model) restricted to
our four languages: ~0.1 ms a message and no download at runtime. Below a confidence
threshold, or on too little text, the caller's default language wins.
"""

from __future__ import annotations

from functools import lru_cache

LANGUAGES = ("nl", "fr", "en", "de")
MIN_LETTERS = 12  # shorter than this is a greeting, not evidence
MIN_PROBABILITY = 0.6


@lru_cache(maxsize=1)
def _identifier():  # type: ignore[no-untyped-def]
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LANGUAGES))
    return ident


def detect(text: str, default: str = "nl") -> str:
    """The language of `text` among nl/fr/en/de, or `default` when unsure."""
    sample = text[:600]  # enough to decide; the model's cost grows with length
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return default
    lang, prob = _identifier().classify(sample)
    return lang if prob >= MIN_PROBABILITY else default
