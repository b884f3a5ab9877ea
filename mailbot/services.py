"""The services directory: other ombudsman services and the agencies, and pure look-ups in it.

`rules/services.yaml` lists them; `RuleSet.services` holds them in file order. Every look-up
is a pure function of the rule set and its input, so routing stays explainable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .conditions import REGEX_TIMEOUT, ServiceKind, Where, check_pattern, compile_pattern, fold
from .model import Mail

if TYPE_CHECKING:
    from .rules import RuleSet

_ID = r"^[a-z0-9][a-z0-9_-]*$"
_WEBSITE = ("http://", "https://")


class PerLanguage(BaseModel):
    """A text per reply language; a language left out uses the service's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nl: str | None = None
    fr: str | None = None
    en: str | None = None
    de: str | None = None

    def get(self, language: str) -> str | None:
        value = getattr(self, language, None) if language in ("nl", "fr", "en", "de") else None
        return value if isinstance(value, str) else None

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.nl, self.fr, self.en, self.de) if v is not None)


class Service(BaseModel):
    """One service: another ombudsman, an agency, or an agency's first-line complaints desk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID, description="Short stable identifier used by routing rules.")
    name: str = Field(min_length=1, description="Official name, shown to citizens and staff.")
    kind: ServiceKind = Field(description="ombudsman, agency, or first_line (an agency's complaints desk).")
    aliases: tuple[str, ...] = Field((), description="Other names that identify the service in a text.")
    addresses: tuple[str, ...] = Field((), description="Exact e-mail addresses of the service.")
    domains: tuple[str, ...] = Field((), description="Mail domains of the service; subdomains included.")
    competent: bool = Field(True, description="Whether our office handles complaints about this service; "
                                                "required for an ombudsman service (usually false).")
    refer_to: str | None = Field(None, description="Service id to refer complaints to when not competent.")
    names: PerLanguage = Field(
        PerLanguage(), description="Official name per reply language (nl, fr, en, de) where it differs from `name`; "
                                   "found in text too. A language left out uses `name`.")
    contact: str = Field("", description="Where citizens reach the service: its website (https://…) or postal "
                                         "address; used in referral replies.")
    websites: PerLanguage = Field(
        PerLanguage(), description="Website per reply language where it differs from `contact` (fr: https://…).")
    phone: str = Field("", description="Phone number for citizens, as written in replies (e.g. '0800 99 961').")
    reference_pattern: str | None = Field(
        None, description="Regex for the service's own file numbers; group 'ref' (or the whole match) is the number.")
    example: bool = Field(False, description="True while the entry is example data that still needs review.")

    @model_validator(mode="before")
    @classmethod
    def _competence_stated(cls, data: Any) -> Any:
        # Defaulting to competent would mean nothing is ever referred to a new ombudsman service.
        if isinstance(data, dict) and data.get("kind") == "ombudsman" and "competent" not in data:
            raise ValueError("an ombudsman service needs 'competent:': false when complaints about what it "
                             "covers go to it (the usual case), true when our office handles them")
        return data

    @field_validator("addresses", "domains")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().lstrip("@") for v in values)

    @field_validator("addresses")
    @classmethod
    def _is_address(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value.count("@") != 1 or " " in value:
                raise ValueError(f"{value!r} is not an e-mail address")
        return values

    @field_validator("domains")
    @classmethod
    def _is_domain(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if "@" in value or " " in value or "." not in value:
                raise ValueError(f"{value!r} is not a mail domain (like 'delijn.be')")
        return values

    @field_validator("names")
    @classmethod
    def _names(cls, values: PerLanguage) -> PerLanguage:
        if any(not v.strip() for v in values.values()):
            raise ValueError("a name may not be empty")
        return values

    @field_validator("contact", "phone")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(_WEBSITE) and any(c.isspace() for c in value):
            raise ValueError(f"{value!r}: a website is the address alone, without spaces or notes")
        return value

    @field_validator("websites")
    @classmethod
    def _websites(cls, values: PerLanguage) -> PerLanguage:
        for value in values.values():
            if not value.startswith(_WEBSITE) or any(c.isspace() for c in value):
                raise ValueError(f"{value!r} is not a website address (like 'https://www.mediateurfederal.be')")
        return values

    @field_validator("reference_pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern(value)
        return value

    @model_validator(mode="after")
    def _referral(self) -> Service:
        if not self.competent and self.kind != "ombudsman" and self.refer_to is None:
            raise ValueError("not competent: set refer_to to the service that is")
        return self

    def name_in(self, language: str) -> str:
        """The name for a reply in `language`: the official name in it, else `name`."""
        return self.names.get(language) or self.name

    def website_in(self, language: str) -> str:
        """The website for a reply in `language`: its own site in it, else `contact` when a website."""
        return self.websites.get(language) or (self.contact if self.contact.startswith(_WEBSITE) else "")

    @property
    def has_contact(self) -> bool:
        """Whether a referral reply can tell the citizen how to reach the service."""
        return bool(self.contact or self.phone or self.websites.values() or self.addresses)

    @property
    def referral_target(self) -> str | None:
        """Where a complaint about this service goes when we are not competent."""
        if self.competent:
            return None
        return self.refer_to or self.id


@dataclass(frozen=True)
class Detection:
    """A service seen in a mail, and where it was seen."""

    service: Service
    where: Where
    detail: str = ""  # the address, alias or reference that gave it away


def service_for_address(ruleset: RuleSet, email: str) -> Service | None:
    """The service an address belongs to: exact address first, then its domain or a parent domain."""
    email = email.strip().lower()
    by_address, by_domain = _indexes(ruleset)
    if email in by_address:
        return by_address[email]
    domain = email.rpartition("@")[2]
    while domain:
        if domain in by_domain:
            return by_domain[domain]
        domain = domain.partition(".")[2]
    return None


# Matching, routing and `remember` each look at the same text of one message: the scans
# are cached per (rule set, text), so a message's text is scanned once.
@lru_cache(maxsize=16)
def services_in_text(ruleset: RuleSet, text: str) -> tuple[Service, ...]:
    """Services whose name or an alias occurs in the text as whole words, in order of first mention."""
    folded = fold(text)
    words = frozenset(_WORD.findall(folded))
    found: list[tuple[int, int, Service]] = []
    for order, (service, pattern, leads) in enumerate(_alias_patterns(ruleset)):
        if leads is not None and leads.isdisjoint(words):
            continue  # no alias can start here: skip the scan of the whole text
        try:
            hit = pattern.search(folded, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            continue
        if hit:
            found.append((hit.start(), order, service))
    return tuple(service for _, _, service in sorted(found, key=lambda f: (f[0], f[1])))


@lru_cache(maxsize=16)
def agency_references(ruleset: RuleSet, text: str) -> tuple[tuple[str, str], ...]:
    """(service id, reference) for every agency file number found in the text, without repeats."""
    seen: list[tuple[str, str]] = []
    for service in ruleset.services:
        if not service.reference_pattern:
            continue
        pattern = compile_pattern(service.reference_pattern)
        try:
            hits = list(pattern.finditer(text, timeout=REGEX_TIMEOUT))
        except TimeoutError:
            continue
        for hit in hits:
            ref = hit.group("ref") if "ref" in pattern.groupindex else hit.group(0)
            if ref and (service.id, ref) not in seen:
                seen.append((service.id, ref))
    return tuple(seen)


def detect_services(ruleset: RuleSet, mail: Mail) -> tuple[Detection, ...]:
    """Every service the mail involves: sender, recipients, forwarded senders, names and file numbers."""
    found: list[Detection] = []

    def add(service: Service | None, where: Where, detail: str) -> None:
        if service is not None and not any(d.service.id == service.id and d.where == where for d in found):
            found.append(Detection(service, where, detail))

    if mail.from_ is not None:
        add(service_for_address(ruleset, mail.from_.email), "from", mail.from_.email)
    for address in mail.to:
        add(service_for_address(ruleset, address.email), "to", address.email)
    for address in mail.cc:
        add(service_for_address(ruleset, address.email), "cc", address.email)
    for forwarded in mail.forwarded:
        if forwarded.sender is not None:
            add(service_for_address(ruleset, forwarded.sender.email), "forwarded", forwarded.sender.email)
    text = f"{mail.subject}\n{mail.text}"
    for service in services_in_text(ruleset, text):
        add(service, "text", service.name)
    for service_id, ref in agency_references(ruleset, text):
        add(ruleset.service(service_id), "reference", ref)
    return tuple(found)


@lru_cache(maxsize=8)
def _indexes(ruleset: RuleSet) -> tuple[dict[str, Service], dict[str, Service]]:
    by_address: dict[str, Service] = {}
    by_domain: dict[str, Service] = {}
    for service in ruleset.services:
        for address in service.addresses:
            by_address.setdefault(address, service)
        for domain in service.domains:
            by_domain.setdefault(domain, service)
    return by_address, by_domain


_WORD = regex.compile(r"\w+")


@lru_cache(maxsize=8)
def _alias_patterns(ruleset: RuleSet) -> tuple[tuple[Service, regex.Pattern[str], frozenset[str] | None], ...]:
    """Per service: one whole-word pattern for its names, and the words one of them must
    start with (an alias preceded by a non-word character is a whole word of the text);
    None when a name starts with punctuation and the pattern must always run."""
    patterns = []
    for service in ruleset.services:
        names = sorted({fold(n) for n in (service.name, *service.names.values(), *service.aliases) if n.strip()},
                       key=len, reverse=True)
        if names:
            alternatives = "|".join(regex.escape(n) for n in names)
            leads = [_WORD.match(n) for n in names]
            lead_words = frozenset(m.group(0) for m in leads if m) if all(leads) else None
            patterns.append((service, regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), lead_words))
    return tuple(patterns)
