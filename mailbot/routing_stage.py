"""Routing with the live rule set: hot reload between batches, investigator choice.

A changed rules/ directory is loaded completely or not at all: an invalid edit
keeps the last good rules in force, logs the problems and records them for the
digest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from . import store
from .assign import InvestigatorLoad, Pick, explain_pick
from .decide import RoutingOutcome
from .errors import RulesError
from .model import Classification, Investigator, Mail
from .route import Routing, route
from .rules import RuleSet, load_rules, rules_fingerprint
from .services import Service

log = logging.getLogger("mailbot.rules")


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
    def __init__(self, rules_dir: Path, *, template_names: frozenset[str] | None = None,
                 ruleset: RuleSet | None = None) -> None:
        self.rules_dir = rules_dir
        self.template_names = template_names
        self.ruleset = ruleset or load_rules(rules_dir, template_names=template_names)
        self._fingerprint = rules_fingerprint(rules_dir)
        self.last_error: str | None = None

    def reload_if_changed(self) -> bool:
        """Swap in the new rules if the files changed and are valid; True when swapped."""
        fingerprint = rules_fingerprint(self.rules_dir)
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            ruleset = load_rules(self.rules_dir, template_names=self.template_names)
        except RulesError as err:
            self.last_error = str(err)
            log.error("rules not reloaded, the last good rules stay in force:\n%s", err)
            return False
        self.ruleset, self.last_error = ruleset, None
        log.info("rules reloaded (%s)", ruleset.fingerprint[:12])
        return True

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
        pick = None
        if routing.outcome == "investigation" or routing.investigator_email:
            pick = self.pick(session, routing, classification.language, now)
        outcome = RoutingOutcome(outcome=routing.outcome, template=routing.template,
                                 flags=tuple(routing.flags), rules_fired=tuple(routing.fired),
                                 team=routing.team, tags=tuple(routing.tags),
                                 priority=routing.priority, notify=tuple(routing.notify),
                                 context=self.template_context(routing, classification.language)
                                 | self.referral_context(mail, flags | set(routing.flags), classification.language))
        return RoutedComplaint(outcome, routing, pick)

    def pick(self, session: Session, routing: Routing, language: str, now: datetime) -> Pick:
        loads = {email: InvestigatorLoad(open_cases=count, last_assigned_at=last)
                 for email, (count, last) in store.investigator_loads(
                     session, [p.email for p in self.ruleset.investigators]).items()}
        return explain_pick(self.ruleset, team=routing.team, language=language,
                            strategy=routing.strategy, load=loads, today=now.date(),
                            preferred=routing.investigator_email)

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


def _party(service: Service, language: str = "nl") -> dict[str, str]:
    """A service as the templates' `service`/`agency` variable, named in the reply's language
    (its official name there, else `name`) with that language's website."""
    website = service.website_in(language)
    address = "" if service.contact.startswith(("http://", "https://")) else service.contact
    return {"name": service.name_in(language), "email": service.addresses[0] if service.addresses else "",
            "phone": service.phone, "website": website, "address": address}
