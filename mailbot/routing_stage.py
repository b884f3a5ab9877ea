"""Routing with the live rule set: hot reload between batches, investigator choice.

Rules and templates are reloaded together, completely or not at all: when a file in rules/
or templates/ changed, everything on disk is checked as `mailbot rules check` checks it (the
rules against the template names on disk, every template rendered, the digest templates),
and put in force only when it passes. An invalid edit keeps the last good rules and
templates in force (the templates from memory), logs the problems and records them for the
digest once; it is tried again when any of the files changes.

The set in force is saved in the database (`last_good`). When the files are invalid
at start, the robot starts on the saved set instead of not at all; with none saved it
refuses to start, as before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from . import store
from .assign import InvestigatorLoad, Pick, explain_pick
from .config import ScheduleSettings
from .db_engine import describe_error
from .decide import RoutingOutcome
from .last_good import RuleFiles, load_last_good, save_last_good
from .model import Classification, Investigator, Mail
from .render import Renderer, TemplateSet, read_templates
from .route import Routing, route
from .rules import RuleSet, RulesInvalid, read_rule_files, rules_from_texts
from .rules_check import check_contents
from .services import Service
from .template_check import template_problems

log = logging.getLogger("mailbot.rules")
OFFICE_TIMEZONE = str(ScheduleSettings.model_fields["timezone"].default)  # when the caller passes none


@dataclass(frozen=True)
class RoutedComplaint:
    """The routing verdict, the investigator chosen and why."""

    outcome: RoutingOutcome
    routing: Routing
    pick: Pick | None

    @property
    def investigator(self) -> Investigator | None:
        return self.pick.investigator if self.pick else None



class RoutingStage:
    """The rules in force (and, with a `renderer`, the templates in force).

    `renderer`: the templates are reloaded with the rules and the rules are checked against
    its template names; without one, against `template_names` (None: not checked).
    `sessions`: the set in force is saved there, and started on when the files are invalid.
    """

    def __init__(self, rules_dir: Path, *, template_names: frozenset[str] | None = None,
                 ruleset: RuleSet | None = None, renderer: Renderer | None = None,
                 sessions: sessionmaker | None = None, timezone: str = OFFICE_TIMEZONE,
                 languages: tuple[str, ...] | None = None, required: bool = True) -> None:
        self.rules_dir = Path(rules_dir)
        # config.yaml's languages: every reply template needs them, as `rules check` asks
        # (None: the Dutch files only); what it refuses is never taken by a reload.
        self.languages = languages
        self.zone = ZoneInfo(timezone)  # absences are office days, not UTC days
        self.renderer = renderer
        self.sessions = sessions if renderer is not None else None
        self._template_names = template_names
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._saved: str | None = None  # the set last saved in (or read from) the database
        self._save_failed: str | None = None
        self._start_error: str | None = None  # recorded as an event at the first poll
        files = read_rule_files(self.rules_dir)
        templates = read_templates(renderer.templates_dir) if renderer is not None else None
        self._seen = _state(files, templates)  # what reload_if_changed last looked at
        self._pending: tuple[str, str] | None = None  # a change seen once, taken when seen again
        self._files: RuleFiles = files  # the rule files in force, saved with the templates
        if ruleset is not None:  # given, not read: nothing to save
            self.ruleset, self.sessions = ruleset, None
            return
        try:
            self.ruleset, candidate = self._check(files, templates)
        except RulesInvalid as err:
            try:
                self._start_on_last_good(err)
            except RulesInvalid as unusable:
                if required:
                    raise
                self._without_rules(unusable)
            return
        if candidate is not None and renderer is not None:
            renderer.use(candidate)

    @property
    def template_names(self) -> frozenset[str] | None:
        """The names the rules may use: the templates in force."""
        return self.renderer.names() if self.renderer is not None else self._template_names

    @property
    def fingerprint(self) -> str:
        """Identifies the rules and templates in force together."""
        templates = self.renderer.fingerprint if self.renderer is not None else ""
        return hashlib.sha256(f"{self.ruleset.fingerprint}\0{templates}".encode()).hexdigest()

    def reload_if_changed(self) -> bool:
        """Swap in the rules and templates on disk if a file changed and all of it is valid;
        True when swapped. Also saves the set in force in the database when not yet done."""
        with self._lock:
            swapped = self._reload()
            self._save()
        return swapped

    def _reload(self) -> bool:
        files = read_rule_files(self.rules_dir)
        templates = read_templates(self.renderer.templates_dir) if self.renderer is not None else None
        seen = _state(files, templates)
        if seen == self._seen:
            self._pending = None
            return False
        if seen != self._pending:  # a deploy may be half copied: take it when it reads the same next time
            self._pending = seen
            log.info("rules or templates changed on disk; taken at the next check if unchanged by then")
            return False
        try:
            ruleset, candidate = self._check(files, templates)
        except RulesInvalid as err:
            if self._moved(templates):
                return False  # edited while being checked: checked again at the next poll
            self._seen, self.last_error, self._pending = seen, str(err), None
            log.error("rules not reloaded, the last good rules and templates stay in force:\n%s", err)
            return False
        if self._moved(templates):
            return False
        self._seen, self.last_error, self._pending = seen, None, None
        changed = []
        if ruleset.fingerprint != self.ruleset.fingerprint:
            changed.append(f"rules {ruleset.fingerprint[:12]}")
        if candidate is not None and self.renderer is not None and candidate.fingerprint != self.renderer.fingerprint:
            changed.append(f"templates {candidate.fingerprint[:12]}")
            self.renderer.use(candidate)
        self.ruleset, self._files = ruleset, files
        log.info("rules reloaded (%s)", ", ".join(changed) or "the files are back to the set in force")
        return bool(changed)

    def _moved(self, templates: TemplateSet | None) -> bool:
        """The templates changed since they were read (the digest check reads the folder)."""
        return (templates is not None and self.renderer is not None
                and templates.fingerprint != self.renderer.fingerprint
                and read_templates(self.renderer.templates_dir).fingerprint != templates.fingerprint)

    def _check(self, files: RuleFiles, templates: TemplateSet | None, *,
               on_disk: bool = True) -> tuple[RuleSet, Renderer | None]:
        """The rule set and a renderer over `templates`, when `mailbot rules check` would pass
        on them; RulesInvalid listing every problem otherwise."""
        candidate = None
        problems: list[str] = []
        names = self._template_names
        if templates is not None and self.renderer is not None:
            candidate = (self.renderer if templates.fingerprint == self.renderer.fingerprint
                         else Renderer(self.renderer.templates_dir, templates))
            # The saved set was in force already: started on even when it lacks a language
            # configured since (a robot replying in Dutch beats none; the digest says why).
            problems = template_problems(candidate, digest=on_disk, languages=self.languages if on_disk else None)
            names = candidate.names()
        result = check_contents(files, label=self.rules_dir, template_names=names)
        problems = result.problems + problems
        if problems or result.ruleset is None:
            raise RulesInvalid(problems or [f"{self.rules_dir}: rules could not be loaded"])
        return result.ruleset, candidate

    def _start_on_last_good(self, err: RulesInvalid) -> None:
        """Start on the set saved in the database; without one (or an unusable one), `err`."""
        saved = load_last_good(self.sessions) if self.sessions is not None else None
        if saved is None:
            raise err
        fingerprint, saved_at, files, templates = saved
        try:
            ruleset, candidate = self._check(files, templates, on_disk=False)
        except RulesInvalid as stale:
            raise RulesInvalid([*err.problems, f"(the last good rules saved {saved_at:%Y-%m-%d %H:%M} "
                                               f"cannot be used either: {stale.problems[0]})"]) from err
        self.ruleset, self._files, self._saved = ruleset, files, fingerprint
        if candidate is not None and self.renderer is not None:
            self.renderer.use(candidate)
        self.last_error = self._start_error = str(err)
        log.error("rules/templates on disk refused (%d problem(s), first: %s); started on the last good set "
                  "saved %s UTC (%s); run 'mailbot rules check'", len(err.problems), " ".join(err.problems[0].split()),
                  f"{saved_at:%Y-%m-%d %H:%M}", fingerprint[:12])

    def _without_rules(self, err: RulesInvalid) -> None:
        """No rules at all, for a command that routes no mail (`required=False`: a case
        look-up, the digest, the outbox): it goes on, told why; nothing is saved."""
        self.ruleset, self.sessions = rules_from_texts(), None
        self.last_error = str(err)
        log.warning("rules/templates refused and no last good set to start on (%d problem(s), first: %s); "
                    "this command goes on without them: run 'mailbot rules check'",
                    len(err.problems), " ".join(err.problems[0].split()))

    def _save(self) -> None:
        """Record a start on the saved set (once), and save the set in force (once per set)."""
        if self.sessions is None or self.renderer is None:
            return
        fingerprint = self.fingerprint
        try:
            if self._start_error is not None:
                with self.sessions.begin() as session:  # shown in the next digest
                    store.add_event(session, "rules_reload_failed", error=self._start_error[:4000],
                                    started_on_last_good=(self._saved or "")[:12])
                self._start_error = None
            if self._saved != fingerprint:
                try:
                    with self.sessions.begin() as session:
                        save_last_good(session, fingerprint, self._files, self.renderer.templates)
                except IntegrityError:
                    pass  # another worker saved the same set at the same moment
                self._saved = fingerprint
        except SQLAlchemyError as err:  # the poll itself reports an unavailable database
            if self._save_failed != describe_error(err):
                log.warning("the rules in force could not be saved as the last good set: %s", describe_error(err))
            self._save_failed = describe_error(err)

    def is_service_address(self, email: str) -> bool:
        """True for an address of a known service or agency: never auto-answered."""
        from .services import service_for_address

        return service_for_address(self.ruleset, email) is not None

    def trusted_senders(self) -> frozenset[str]:
        """Addresses of known services: they may quote our references."""
        return frozenset(a.lower() for s in self.ruleset.services for a in s.addresses)

    def route(self, session: Session, mail: Mail, classification: Classification, now: datetime,
              flags: frozenset[str] = frozenset()) -> RoutedComplaint:
        routing = route(mail, classification, self.ruleset, flags=flags)
        language = self.reply_language(routing.template, classification.language)
        pick = None
        if routing.outcome == "investigation" or routing.investigator_email:
            pick = self.pick(session, routing, classification.language, now)
        outcome = RoutingOutcome(outcome=routing.outcome, template=routing.template,
                                 flags=tuple(routing.flags), rules_fired=tuple(routing.fired),
                                 team=routing.team, tags=tuple(routing.tags),
                                 priority=routing.priority, notify=tuple(routing.notify),
                                 context=self.template_context(routing, language)
                                 | self.referral_context(mail, flags | set(routing.flags), language))
        return RoutedComplaint(outcome, routing, pick)

    def pick(self, session: Session, routing: Routing, language: str, now: datetime) -> Pick:
        loads = {email: InvestigatorLoad(open_cases=count, last_assigned_at=last)
                 for email, (count, last) in store.investigator_loads(
                     session, [p.email for p in self.ruleset.investigators]).items()}
        return explain_pick(self.ruleset, team=routing.team, language=language,
                            strategy=routing.strategy, load=loads, today=self.office_date(now),
                            preferred=routing.investigator_email)

    def office_date(self, now: datetime) -> date:
        """The date at the office: at 00:30 in Brussels it is already tomorrow there (a naive
        `now` is UTC)."""
        return (now if now.tzinfo is not None else now.replace(tzinfo=dt_timezone.utc)).astimezone(self.zone).date()

    def agency_in_copy(self, mail: Mail, language: str = "nl") -> dict[str, str] | None:
        """The agency (or its complaints desk) the citizen put in To/Cc, as template data."""
        from .services import service_for_address

        for address in mail.recipients:
            service = service_for_address(self.ruleset, address.email)
            if service is not None and service.kind in ("agency", "first_line"):
                return _party(service, language) | {"email": address.email}
        return None

    def referral_context(self, mail: Mail, flags: frozenset[str] | set[str], language: str) -> dict[str, Any]:
        """`referred_by`: the ombudsman service that forwarded the citizen's complaint to us
        (case flag `referred_by`), named in the reply's language; nothing for other mail."""
        from .services import service_for_address

        sender = service_for_address(self.ruleset, mail.from_.email) if mail.from_ else None
        if "referred_by" not in flags or sender is None or sender.kind != "ombudsman":
            return {}
        return {"referred_by": _party(sender, language)}

    def reply_language(self, template: str | None, language: str) -> str:
        """The language the reply's template is rendered in: the mail's, or the renderer's
        fallback (Dutch) when the template lacks it. The rule's texts must follow it: a French
        answer text in a Dutch reply is no answer."""
        if self.renderer is None or template is None or template not in self.renderer.names():
            return language
        return self.renderer.resolve_language(template, language)

    def template_context(self, routing: Routing, language: str = "nl") -> dict[str, Any]:
        """The referral's service or agency, the services detected, and the rule's answer or
        questions in the reply's `language`, for the reply."""
        context: dict[str, Any] = {}
        if routing.answer_text is not None:
            context["answer_text"] = routing.answer_text.in_language(language)
        if routing.questions is not None:
            context["questions"] = list(routing.questions.in_language(language))
        target = self.ruleset.service(routing.refer_to) if routing.refer_to else None
        if target is not None:
            context["service" if routing.outcome == "refer_ombudsman" else "agency"] = _party(target, language)
        names = [s.name_in(language) for sid in routing.services
                 if (s := self.ruleset.service(sid)) and s.kind == "ombudsman"]
        if names:
            context["services"] = names
        return context


def _state(files: RuleFiles, templates: TemplateSet | None) -> tuple[str, str]:
    from .rules import fingerprint_of

    return fingerprint_of(files), templates.fingerprint if templates is not None else ""


def _party(service: Service, language: str = "nl") -> dict[str, str]:
    """A service as the templates' `service`/`agency` variable, named in the reply's language
    (its official name there, else `name`) with that language's website."""
    website = service.website_in(language)
    address = "" if service.contact.startswith(("http://", "https://")) else service.contact
    return {"name": service.name_in(language), "email": service.addresses[0] if service.addresses else "",
            "phone": service.phone, "website": website, "address": address}
