"""The `when:` part of a routing rule: the condition model and its pure evaluation.

Every condition evaluates to (held, text): the text says what decided it, so `rules explain`
can show an administrator why a rule did or did not fire.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rapidfuzz import fuzz

from .language import LANGUAGES
from .model import Classification, Kind, Mail

if TYPE_CHECKING:
    from .services import Detection

REGEX_TIMEOUT = 0.25  # seconds per search at routing time; a timeout counts as "no match"
# Seconds per probe string when a pattern is checked at load: generous, so a busy machine
# does not refuse a sound rule; a catastrophic pattern takes far longer than this anyway.
_PROBE_TIMEOUT = 1.0
_PROBE_LENGTH = 1500

Fact = Literal["status_request", "prefers_phone", "anonymity_requested", "first_line_contact", "solution_offered"]
Where = Literal["from", "to", "cc", "text", "reference", "forwarded"]
ServiceKind = Literal["ombudsman", "agency", "first_line"]


MAX_TEXT = 100_000  # characters of a body that rules look at: a complaint's words come first


@lru_cache(maxsize=64)  # every keyword rule folds the same subject and body again
def fold(text: str) -> str:
    """Case- and accent-insensitive form, so 'Financiën' finds 'financien'."""
    decomposed = unicodedata.normalize("NFKD", text[:MAX_TEXT].casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Patterns are case-insensitive: administrators think in words, not in letter case."""
    return regex.compile(pattern, regex.IGNORECASE)


# What YAML's double quotes turn an escape into: "\b" is a backspace, not a word boundary.
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\v": "\\v", "\a": "\\a",
            "\0": "\\0", "\x1b": "\\e"}


def check_pattern(pattern: str) -> None:
    """Raise ValueError if the pattern holds a control character (a double-quoted YAML escape),
    does not compile, or backtracks catastrophically on probes."""
    control = next((c for c in pattern if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        written = _ESCAPES.get(control, f"\\x{ord(control):02x}")
        raise ValueError(f"the pattern holds a control character where '{written}' was probably meant "
                         f"(in double quotes YAML turns {written} into one): write the pattern in single quotes, "
                         f"e.g. '\\b(dringend)\\b'")
    try:
        compiled = compile_pattern(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as err:
        raise ValueError(f"regular expression does not compile: {err}") from None
    for probe in _probes(pattern):
        try:
            compiled.search(probe, timeout=_PROBE_TIMEOUT)
        except TimeoutError:
            raise ValueError("regular expression is too slow on some texts (catastrophic backtracking); "
                             "avoid nested repetition such as (a+)+ or (\\w+\\s?)+") from None


def _probes(pattern: str) -> list[str]:
    # Long runs of the characters the pattern itself mentions are what trigger exponential backtracking.
    chars = list(dict.fromkeys(c for c in pattern if c.isalnum() or c in " .-_@/:"))[:12]
    chars = list(dict.fromkeys([*chars, "a", "0", " ", ".", "x"]))
    probes = [c * _PROBE_LENGTH + end for c in chars for end in ("!", "\n")]
    probes += [(a + b) * (_PROBE_LENGTH // 2) + "!" for a in chars[:8] for b in chars[:8] if a != b]
    return probes


_LANGUAGE_NAMES = {"nederlands": "nl", "dutch": "nl", "vlaams": "nl", "frans": "fr", "french": "fr",
                   "francais": "fr", "français": "fr", "engels": "en", "english": "en", "anglais": "en",
                   "duits": "de", "german": "de", "deutsch": "de", "allemand": "de"}


def _meant_languages(words: list[str]) -> str:
    """` (did you mean 'de'?)` for codes written in capitals or as a language's name."""
    meant = dict.fromkeys(_LANGUAGE_NAMES.get(w.lower(), w.lower()) for w in words)
    known = [f"'{code}'" for code in meant if code in LANGUAGES]
    return f" (did you mean {' and '.join(known)}?)" if known else ""


def _pattern_field(value: str | None) -> str | None:
    if value is not None:
        check_pattern(value)
    return value


def _address_patterns(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    cleaned = tuple(v.strip().lower() for v in values)
    for value in cleaned:
        if " " in value or value.count("@") > 1 or not value.strip("@") or "." not in value:
            raise ValueError(f"{value!r} is neither an e-mail address nor a domain like 'delijn.be'")
    return cleaned


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KeywordCondition(_Strict):
    """Words or phrases in the mail; `fuzzy` tolerates typos (0-100 similarity)."""

    any: tuple[str, ...] = Field((), description="At least one of these must occur.")
    all: tuple[str, ...] = Field((), description="Every one of these must occur.")
    in_: Literal["subject", "body", "text"] = Field("text", alias="in", description="text = subject and body.")
    fuzzy: float | None = Field(None, ge=50, le=100, description="Similarity threshold for fuzzy matching.")

    @model_validator(mode="after")
    def _some_words(self) -> KeywordCondition:
        if not self.any and not self.all:
            raise ValueError("keywords need 'any' or 'all'")
        return self


class ServiceCondition(_Strict):
    """A service seen in the mail (sender, To, Cc, forwarded sender, name in the text or file number)."""

    id: tuple[str, ...] = Field((), description="Service ids from services.yaml; empty = any service.")
    kind: tuple[ServiceKind, ...] = Field((), description="Service kinds; empty = any kind.")
    competent: bool | None = Field(None, description="Whether our office is competent for the service.")
    in_: tuple[Where, ...] = Field((), alias="in", description="Where it was seen; empty = anywhere.")


class Condition(_Strict):
    """All listed conditions must hold; `any`, `all` and `not` combine them. Cheap checks come first."""

    kind: tuple[Kind, ...] | None = Field(None, description="Message kinds, e.g. [new_complaint].")
    language: tuple[str, ...] | None = Field(None, description="Languages of the mail, e.g. [fr, de].")
    flags: tuple[str, ...] | None = Field(None, description="Flags that must all be set (case or earlier rules).")
    facts: tuple[Fact, ...] | None = Field(None, description="Facts detected in the text that must all be true.")
    first_line_contact: bool | None = Field(None, description="Whether the citizen already contacted the agency.")
    has_attachment: bool | None = None
    from_: tuple[str, ...] | None = Field(None, alias="from", description="Sender address or domain.")
    to: tuple[str, ...] | None = Field(None, description="A To address or domain.")
    cc: tuple[str, ...] | None = Field(None, description="A Cc address or domain.")
    recipients: tuple[str, ...] | None = Field(None, description="A To or Cc address or domain.")
    service: ServiceCondition | None = None
    subject_regex: str | None = Field(None, description="Regular expression searched in the subject (any case).")
    body_regex: str | None = Field(None, description="Regular expression searched in the body (any case).")
    keywords: KeywordCondition | None = None
    any: tuple[Condition, ...] | None = Field(None, description="At least one of these conditions holds.")
    all: tuple[Condition, ...] | None = Field(None, description="Every one of these conditions holds.")
    not_: Condition | None = Field(None, alias="not", description="This condition does not hold.")

    _patterns = field_validator("subject_regex", "body_regex")(_pattern_field)

    @field_validator("language")
    @classmethod
    def _languages(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [v for v in values or () if v not in LANGUAGES]  # never detected: the rule would never fire
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a language the robot detects; write "
                             f"{', '.join(LANGUAGES)} (lowercase){_meant_languages(unknown)}")
        return values
    _addresses = field_validator("from_", "to", "cc", "recipients")(_address_patterns)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


@dataclass
class Context:
    """What conditions look at. `flags` grows as rules with `continue: true` add flags."""

    mail: Mail
    classification: Classification
    detections: tuple[Detection, ...] = ()
    flags: set[str] = field(default_factory=set)

    def text(self, part: str) -> str:
        if part == "subject":
            return self.mail.subject
        if part == "body":
            return self.mail.text
        return f"{self.mail.subject}\n{self.mail.text}"


def evaluate(cond: Condition, ctx: Context) -> tuple[bool, str]:
    """(held, what decided it): the first failing condition, or every condition that held."""
    held: list[str] = []
    for name in type(cond).model_fields:
        value = getattr(cond, name)
        if value is None:
            continue
        ok, text = _CHECKS[name](value, ctx)
        if not ok:
            return False, text
        held.append(text)
    return True, "; ".join(held) or "no conditions (matches every mail)"


def matching_detections(cond: ServiceCondition, ctx: Context) -> list[Detection]:
    """The detected services that satisfy a service condition, in detection order."""
    return [d for d in ctx.detections
            if (not cond.id or d.service.id in cond.id) and (not cond.kind or d.service.kind in cond.kind)
            and (cond.competent is None or d.service.competent == cond.competent)
            and (not cond.in_ or d.where in cond.in_)]


def _address_matches(email: str, patterns: tuple[str, ...]) -> str | None:
    email = email.lower()
    domain = email.rpartition("@")[2]
    for pattern in patterns:
        if "@" in pattern.lstrip("@"):
            if email == pattern:
                return pattern
        elif domain == pattern.lstrip("@") or domain.endswith("." + pattern.lstrip("@")):
            return pattern
    return None


def _addresses(label: str, emails: Callable[[Mail], list[str]]) -> Callable[[tuple[str, ...], Context], tuple[bool, str]]:
    def check(patterns: tuple[str, ...], ctx: Context) -> tuple[bool, str]:
        for email in emails(ctx.mail):
            hit = _address_matches(email, patterns)
            if hit:
                return True, f"{label} {email} matches {hit!r}"
        return False, f"no {label} address matches {list(patterns)}"
    return check


def _regex(part: str) -> Callable[[str, Context], tuple[bool, str]]:
    def check(pattern: str, ctx: Context) -> tuple[bool, str]:
        try:
            hit = compile_pattern(pattern).search(ctx.text(part), timeout=REGEX_TIMEOUT)
        except TimeoutError:
            return False, f"{part}_regex {pattern!r} timed out"
        if hit:
            return True, f"{part}_regex {pattern!r} found {hit.group(0)[:40]!r}"
        return False, f"{part}_regex {pattern!r} not found"
    return check


def _keyword_found(word: str, text: str, fuzzy: float | None) -> bool:
    if fuzzy is not None:
        return fuzz.partial_ratio(fold(word), text, score_cutoff=fuzzy) > 0
    return _whole_word(word).search(text) is not None


@lru_cache(maxsize=4096)  # the rules' keywords, looked for in every mail
def _whole_word(word: str) -> regex.Pattern[str]:
    return compile_pattern(rf"(?<!\w){regex.escape(fold(word))}(?!\w)")


def _keywords(cond: KeywordCondition, ctx: Context) -> tuple[bool, str]:
    text = fold(ctx.text(cond.in_))
    how = f" (fuzzy {cond.fuzzy:g})" if cond.fuzzy is not None else ""
    missing = [w for w in cond.all if not _keyword_found(w, text, cond.fuzzy)]
    if missing:
        return False, f"keyword {missing[0]!r} not in {cond.in_}{how}"
    if cond.any:
        hit = next((w for w in cond.any if _keyword_found(w, text, cond.fuzzy)), None)
        if hit is None:
            return False, f"none of the keywords {list(cond.any)} in {cond.in_}{how}"
        return True, f"keyword {hit!r} in {cond.in_}{how}"
    return True, f"keywords {list(cond.all)} all in {cond.in_}{how}"


def _service(cond: ServiceCondition, ctx: Context) -> tuple[bool, str]:
    wanted = cond.model_dump(exclude_defaults=True, by_alias=True)
    hits = matching_detections(cond, ctx)
    if hits:
        return True, f"service {hits[0].service.id} seen in {hits[0].where} ({hits[0].detail})"
    seen = ", ".join(f"{d.service.id} in {d.where}" for d in ctx.detections) or "none"
    return False, f"no service matching {wanted or 'any'} (seen: {seen})"


def _members(label: str, actual: str, wanted: tuple[Any, ...]) -> tuple[bool, str]:
    values = [str(v) for v in wanted]
    if actual in values:
        return True, f"{label} is {actual}"
    return False, f"{label} is {actual}, not one of {values}"


def _boolean(label: str, actual: bool, wanted: bool) -> tuple[bool, str]:
    return actual == wanted, f"{label} is {str(actual).lower()}"


def _any(conds: tuple[Condition, ...], ctx: Context) -> tuple[bool, str]:
    failures = []
    for cond in conds:
        ok, text = evaluate(cond, ctx)
        if ok:
            return True, f"any: {text}"
        failures.append(text)
    return False, f"none of any: {' / '.join(failures) or 'empty list'}"


def _all(conds: tuple[Condition, ...], ctx: Context) -> tuple[bool, str]:
    texts = []
    for cond in conds:
        ok, text = evaluate(cond, ctx)
        if not ok:
            return False, text
        texts.append(text)
    return True, "; ".join(texts) or "all: empty list"


def _not(cond: Condition, ctx: Context) -> tuple[bool, str]:
    ok, text = evaluate(cond, ctx)
    return not ok, f"not ({text})"


_CHECKS: dict[str, Callable[[Any, Context], tuple[bool, str]]] = {
    "kind": lambda v, c: _members("kind", str(c.classification.kind), v),
    "language": lambda v, c: _members("language", c.classification.language, v),
    "flags": lambda v, c: ((False, f"flag {sorted(set(v) - c.flags)[0]!r} not set") if set(v) - c.flags
                           else (True, f"flags {list(v)} set")),
    "facts": lambda v, c: next(((False, f"fact {f} is false") for f in v
                                if not getattr(c.classification.facts, f)), (True, f"facts {list(v)} true")),
    "first_line_contact": lambda v, c: _boolean("first_line_contact", c.classification.facts.first_line_contact, v),
    "has_attachment": lambda v, c: _boolean("has_attachment", any(not a.inline for a in c.mail.attachments), v),
    "from_": _addresses("from", lambda m: [m.from_.email] if m.from_ else []),
    "to": _addresses("to", lambda m: [a.email for a in m.to]),
    "cc": _addresses("cc", lambda m: [a.email for a in m.cc]),
    "recipients": _addresses("to/cc", lambda m: [a.email for a in m.recipients]),
    "service": _service,
    "subject_regex": _regex("subject"),
    "body_regex": _regex("body"),
    "keywords": _keywords,
    "any": _any,
    "all": _all,
    "not_": _not,
}
