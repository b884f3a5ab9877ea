"""Normalised text and identity for fuzzy matching, and the blocking keys that find
near-duplicates without scanning the case table. Pure.

- `subject_key`: reply/forward prefixes, case references and tags removed, folded.
- `body_key`: folded words without greetings, stop words, addresses and links.
- `name_key`: a display name reduced to its sorted folded words ("" when too vague).
- `lsh_keys`: MinHash over the body's words, cut into bands (locality-sensitive hashing):
  two texts share at least one band key with high probability when their word sets overlap
  a lot (Jaccard 0.85 → 97 %, 0.5 → 26 %, 0.2 → 1 %), so a near-duplicate is found by a few
  indexed look-ups of equal keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

MAX_BODY_CHARS = 1500  # what is compared; the opening of a complaint says what it is about
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|tr|wg|aw|antw|antwoord|doorst|fwd?|réf|ref|rép|rif|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+",
    re.I)
_TAG = re.compile(r"\[[^\]]{0,60}\]")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
# The lookbehind makes a match start only at the beginning of a word: without it, a long
# word with no "@" is rescanned from every position (quadratic on one-line bodies).
_EMAIL = re.compile(r"(?<![\w.+'=-])[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
_WORD = re.compile(r"[a-z0-9]+")

# Words that say nothing about what a complaint is about (nl, fr, en, de), after folding.
STOP_WORDS = frozenset("""
de het een en van in op te dat die is voor met zijn aan er niet als ook maar om bij of uit
nog naar dan wat ze zo hun haar hem hij zij wij we ik mij me mijn u uw jullie je jij dit deze
al door over tot was werd wordt worden zou kan kunnen moet moeten heb hebben heeft had geen
wel nu toe reeds nog steeds omdat want hier daar waar wie hoe ben bent zal zullen
geachte beste dag goedendag hallo mevrouw heer meneer vriendelijke groeten groet met
hoogachtend dank alvast bedankt graag
le la les un une des du de et en au aux pour par sur dans avec ce cette ces qui que quoi
est sont ai as avons avez ont mon ma mes votre vos notre nos je tu il elle nous vous ils
elles ne pas plus se sa son ses leur leurs y a ete deja toujours mais ou donc car
madame monsieur bonjour cordialement salutations distinguees veuillez agreer merci
the a an and of to in on for with is are was be been have has had i my you your we our
it this that not but or as at by from dear regards kind thanks sincerely
der die das und ist nicht ein eine zu mit von sie ich mein ihr sehr geehrte damen herren
mit freundlichen grussen
""".split())

BANDS = 5  # band keys per text
ROWS = 4  # minhash values per band
_rng = np.random.default_rng(20261128)  # fixed: keys must be stable across processes
_A = _rng.integers(1, 1 << 63, size=BANDS * ROWS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _rng.integers(0, 1 << 63, size=BANDS * ROWS, dtype=np.uint64)


def fold(text: str) -> str:
    """Lower-case without accents: "Décision" → "decision"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Folded words of a text, in order, without stop words and one-letter noise."""
    text = _EMAIL.sub(" ", _URL.sub(" ", text))
    return [w for w in _WORD.findall(fold(text)) if len(w) > 1 and w not in STOP_WORDS]


def subject_key(subject: str, reference: re.Pattern[str] | None = None) -> str:
    """The subject without Re:/Fwd:/TR: prefixes, [tags] and case references, folded."""
    text = subject or ""
    if reference is not None:
        text = reference.sub(" ", text)
    previous = None
    while previous != text:
        previous = text
        text = _TAG.sub(" ", _PREFIX.sub("", text))
    return " ".join(words(text))


def body_key(text: str) -> str:
    """The first MAX_BODY_CHARS of a text as folded meaningful words."""
    joined = " ".join(words((text or "")[:MAX_BODY_CHARS * 4]))  # only the start is kept
    if len(joined) > MAX_BODY_CHARS:
        joined = joined[:MAX_BODY_CHARS].rsplit(" ", 1)[0]
    return joined


def name_key(name: str) -> str:
    """A display name as sorted folded words; "" unless it has two words (a vague
    "Jan" or "info" would tie unrelated people together)."""
    parts = sorted(p for p in _WORD.findall(fold(name or "")) if len(p) > 1)
    return " ".join(parts)[:200] if len(parts) >= 2 else ""


def match_text(subject_norm: str, body_norm: str, own_body: str | None = None) -> str:
    """What is stored on a case for later comparisons: "subject\\nbody", and "\\nown body"
    when the complainant's own words are not all of the body (a forward, a web form)."""
    text = f"{subject_norm}\n{body_norm}"
    return text if own_body is None or own_body == body_norm else f"{text}\n{own_body}"


def split_match_text(text: str) -> tuple[str, str, str]:
    """(subject, body, own body) of a stored match_text; the own body is the body when the
    text has no third line (all of it was the complainant's, or it was stored before)."""
    subject, _, rest = (text or "").partition("\n")
    body, has_own, own = rest.partition("\n")
    return subject, body, own if has_own else body


def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def lsh_keys(body_norm: str, *, min_words: int = 8) -> list[str]:
    """Band keys "band:hash" of a normalised body; none for texts too short to tell."""
    tokens = sorted(set(body_norm.split()))
    if len(tokens) < min_words:
        return []
    x = np.array([_token_hash(t) for t in tokens], dtype=np.uint64)
    with np.errstate(over="ignore"):  # multiply-shift hashing: wrapping mod 2**64 is the point
        hashes = (_A[:, None] * x[None, :] + _B[:, None]) >> np.uint64(32)
    mins = hashes.min(axis=1)
    keys = []
    for band in range(BANDS):
        chunk = mins[band * ROWS:(band + 1) * ROWS].tobytes()
        keys.append(f"{band}:{hashlib.blake2b(chunk, digest_size=8).hexdigest()}")
    return keys
