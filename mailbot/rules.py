"""The rules an administrator edits in `rules/`: schema models and loading.

    services.yaml       other ombudsman services and the agencies  → `Service`
    routing.yaml        ordered rules: name, enabled, when, then    → `Rule`
    investigators.yaml  teams and investigators                     → `Team`, `InvestigatorEntry`

`load_rules` returns a complete, valid `RuleSet` or raises `RulesInvalid` listing every problem
as `file:line: ...`; there is never a half-loaded rule set. The checks live in `rules_check`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .conditions import Condition
from .errors import RulesError
from .model import Investigator
from .services import Service

FILES = ("services.yaml", "routing.yaml", "investigators.yaml")
Strategy = Literal["round_robin", "least_open"]
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITY_ORDER: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
OUTCOME_ACTIONS = ("refer_ombudsman", "refer_agency", "answer", "ask_info")
_ID = r"^[a-z0-9][a-z0-9_-]*$"
_LANGUAGE = r"^[a-z]{2}$"


class RulesInvalid(RulesError):
    """The rules cannot be used; `problems` holds one `file:line: ...` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Team(_Strict):
    id: str = Field(pattern=_ID, description="Short identifier used by routing rules.")
    name: str = Field(min_length=1)
    strategy: Strategy = Field("round_robin", description="How a team member is picked when a rule does not say.")
    example: bool = Field(False, description="True while the entry is example data that still needs review.")


class InvestigatorEntry(_Strict):
    name: str = Field(min_length=1)
    email: str = Field(description="Direct e-mail address, given to the citizen.")
    phone: str = Field("", description="Direct phone number, given to the citizen.")
    team: str = Field(pattern=_ID)
    languages: tuple[str, ...] = Field(("nl",), min_length=1, description="Languages the investigator works in.")
    active: bool = Field(True, description="False: never assigned new cases (left, or not yet started).")
    absent_from: date | None = Field(None, description="First day of an absence (inclusive).")
    absent_to: date | None = Field(None, description="Last day of an absence (inclusive).")
    capacity: int = Field(30, ge=0, description="Open cases above which others are preferred.")
    example: bool = Field(False, description="True while the entry is example data that still needs review.")

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip().lower()
        if value.count("@") != 1 or " " in value or "." not in value.rpartition("@")[2]:
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("languages")
    @classmethod
    def _codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if len(value) != 2 or not value.isascii() or not value.islower():
                raise ValueError(f"{value!r} is not a two-letter language code like 'nl'")
        return values

    @model_validator(mode="after")
    def _absence(self) -> InvestigatorEntry:
        if self.absent_from and self.absent_to and self.absent_to < self.absent_from:
            raise ValueError("absent_to is before absent_from")
        return self

    def is_absent(self, today: date) -> bool:
        """An open-ended absence counts from `absent_from` on, or until `absent_to`."""
        if self.absent_from is None and self.absent_to is None:
            return False
        return (self.absent_from or date.min) <= today <= (self.absent_to or date.max)

    def to_model(self) -> Investigator:
        return Investigator(name=self.name, email=self.email, phone=self.phone, team=self.team,
                            languages=self.languages)


class Assign(_Strict):
    team: str | None = Field(None, description="Team id from investigators.yaml.")
    investigator: str | None = Field(None, description="E-mail of one investigator from investigators.yaml.")
    strategy: Strategy | None = Field(None, description="round_robin or least_open; default: the team's.")

    @model_validator(mode="after")
    def _something(self) -> Assign:
        if self.team is None and self.investigator is None and self.strategy is None:
            raise ValueError("assign needs a team, an investigator or a strategy")
        return self


REPLY_LANGUAGES = ("nl", "fr", "en", "de")  # the languages the robot detects and replies in


def _blank_free(value: str) -> str:
    """One line of text, spaces collapsed; never empty."""
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be empty")
    return value


def _paragraphs(value: str) -> str:
    """Text as the reply prints it: the lines of a paragraph joined (the reply wraps them to
    its own width), a blank line between paragraphs, a line starting with '- ' kept as a list
    item. So an administrator may wrap the YAML text anywhere."""
    paragraphs: list[str] = []
    current = ""
    for line in [*value.replace("\r\n", "\n").split("\n"), ""]:
        line = line.strip()
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
        elif not current:
            current = line
        else:
            current += ("\n" if line.startswith(("- ", "* ", "• ")) else " ") + line
    if not paragraphs:
        raise ValueError("must not be empty")
    return "\n\n".join(paragraphs)


class AnswerText(_Strict):
    """A direct answer's text in every reply language: plain text, a blank line between
    paragraphs, a line starting with '- ' for a list item; wrapped by the reply, not the YAML.

    All four are required: the robot answers in the language the citizen wrote in, whatever
    `languages` in config.yaml says, and an answer must never go out in another language.
    """

    nl: str = Field(description="Dutch text.")
    fr: str = Field(description="French text.")
    en: str = Field(description="English text.")
    de: str = Field(description="German text.")

    @field_validator("nl", "fr", "en", "de")
    @classmethod
    def _text(cls, value: str) -> str:
        return _paragraphs(value)

    def in_language(self, language: str) -> str:
        """The text for `language`; Dutch for a language the office does not reply in."""
        return str(getattr(self, language)) if language in REPLY_LANGUAGES else self.nl


class Questions(_Strict):
    """What `ask_info` asks the citizen, as list items, in every reply language (see `AnswerText`)."""

    nl: tuple[str, ...] = Field(min_length=1, description="Dutch questions, one list item each.")
    fr: tuple[str, ...] = Field(min_length=1, description="French questions.")
    en: tuple[str, ...] = Field(min_length=1, description="English questions.")
    de: tuple[str, ...] = Field(min_length=1, description="German questions.")

    @field_validator("nl", "fr", "en", "de")
    @classmethod
    def _items(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_blank_free(value) for value in values)

    def in_language(self, language: str) -> tuple[str, ...]:
        """The questions for `language`; Dutch for a language the office does not reply in."""
        return tuple(getattr(self, language)) if language in REPLY_LANGUAGES else self.nl


class Actions(_Strict):
    """What a rule does. At most one quick-service outcome per rule."""

    assign: Assign | None = None
    refer_ombudsman: str | None = Field(
        None, description="Service id of the competent ombudsman, or 'detected' for the service found in the mail.")
    refer_agency: str | None = Field(
        None, description="Service id of the agency to contact first, or 'detected'.")
    answer: str | None = Field(None, description="Answer directly with this template (needs answer_text).")
    answer_text: AnswerText | None = Field(
        None, description="The answer that `answer` sends, in nl, fr, en and de (the template's `answer_text`).")
    ask_info: bool = Field(False, description="Ask the citizen for more information (needs questions).")
    questions: Questions | None = Field(
        None, description="What `ask_info` asks for, a list per language: nl, fr, en and de.")
    template: str | None = Field(None, description="Reply template instead of the outcome's default.")
    tags: tuple[str, ...] = Field((), description="Labels for statistics and the digest.")
    flags: tuple[str, ...] = Field((), description="Case flags, e.g. multi_addressed; later rules can test them.")
    priority: Priority | None = None
    notify: tuple[str, ...] = Field((), description="Addresses told about the case (e.g. a team mailbox).")
    stop: bool = Field(False, description="Stop here; no later rule is evaluated.")

    @model_validator(mode="after")
    def _one_outcome(self) -> Actions:
        chosen = [name for name in OUTCOME_ACTIONS if getattr(self, name)]
        if len(chosen) > 1:
            raise ValueError(f"choose one outcome, not {' and '.join(chosen)}")
        if not self.model_fields_set:
            raise ValueError("'then' has no action")
        return self

    @field_validator("notify")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value.count("@") != 1 or " " in value:
                raise ValueError(f"{value!r} is not an e-mail address")
        return tuple(v.lower() for v in values)


class Rule(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Unique name, shown in traces.")
    description: str = ""
    enabled: bool = True
    when: Condition = Field(default_factory=lambda: Condition.model_validate({}), description="All must hold; empty = every mail.")
    then: Actions
    continue_: bool = Field(False, alias="continue", description="Also evaluate the rules below after a match.")

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.continue_ and self.then.stop:
            raise ValueError("'continue: true' and 'stop: true' contradict each other")
        return self

    @property
    def stops(self) -> bool:
        return not self.continue_


class ServicesFile(_Strict):
    services: tuple[Service, ...] = ()


class RoutingFile(_Strict):
    rules: tuple[Rule, ...] = ()


class InvestigatorsFile(_Strict):
    teams: tuple[Team, ...] = ()
    investigators: tuple[InvestigatorEntry, ...] = ()


FILE_MODELS: dict[str, type[BaseModel]] = {
    "services.yaml": ServicesFile, "routing.yaml": RoutingFile, "investigators.yaml": InvestigatorsFile}


@dataclass(frozen=True, eq=False)  # identity equality: look-up caches key on the instance
class RuleSet:
    services: tuple[Service, ...]
    routing: tuple[Rule, ...]
    teams: tuple[Team, ...]
    investigators: tuple[InvestigatorEntry, ...]
    fingerprint: str

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams if t.id == team_id), None)

    def entry(self, email: str) -> InvestigatorEntry | None:
        email = email.strip().lower()
        return next((i for i in self.investigators if i.email == email), None)

    def investigator(self, email: str) -> Investigator | None:
        entry = self.entry(email)
        return entry.to_model() if entry else None


def fingerprint_of(contents: Mapping[str, bytes | None]) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        data = contents.get(name)
        digest.update(name.encode() + b"\0" + (b"<missing>" if data is None else data) + b"\0")
    return digest.hexdigest()


def read_rule_files(rules_dir: Path) -> dict[str, bytes | None]:
    contents: dict[str, bytes | None] = {}
    for name in FILES:
        try:
            contents[name] = (rules_dir / name).read_bytes()
        except OSError:
            contents[name] = None
    return contents


def rules_fingerprint(rules_dir: Path) -> str:
    """Hash of the three files' contents: equals `RuleSet.fingerprint` while nothing changed.

    Hashing a few kilobytes is cheap, and unlike mtimes it ignores touches and catches edits
    made within one mtime tick.
    """
    return fingerprint_of(read_rule_files(Path(rules_dir)))


def rules_from_texts(*, services: str = "services: []\n", routing: str = "rules: []\n",
                     investigators: str = "teams: []\ninvestigators: []\n",
                     template_names: frozenset[str] | None = None) -> RuleSet:
    """A rule set from YAML texts instead of files: for tests and the embedded demo. A file
    left out is an explicitly empty one (an empty text is refused, as on disk)."""
    from .rules_check import check_contents

    contents: dict[str, bytes | None] = {"services.yaml": services.encode(), "routing.yaml": routing.encode(),
                "investigators.yaml": investigators.encode()}
    result = check_contents(contents, label="rules", template_names=template_names)
    if result.problems or result.ruleset is None:
        raise RulesInvalid(result.problems)
    return result.ruleset


def load_rules(rules_dir: Path, *, template_names: frozenset[str] | None = None) -> RuleSet:
    """A complete, valid rule set from `rules_dir`, or `RulesInvalid` listing every problem."""
    from .rules_check import check_contents  # the checker builds on the models above

    rules_dir = Path(rules_dir)
    result = check_contents(read_rule_files(rules_dir), label=rules_dir, template_names=template_names)
    if result.problems or result.ruleset is None:
        raise RulesInvalid(result.problems or [f"{rules_dir}: rules could not be loaded"])
    return result.ruleset
