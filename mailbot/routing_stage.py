"""Routing with the live rule set: hot reload between batches, investigator choice.

A changed rules/ directory is loaded completely or not at all: an invalid edit
keeps the last good rules in force, logs the problems and records them for the
digest.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from . import store
from .assign import InvestigatorLoad, pick_investigator
from .decide import RoutingOutcome
from .errors import RulesError
from .model import Classification, Investigator, Mail
from .route import route
from .rules import RuleSet, load_rules, rules_fingerprint

log = logging.getLogger("mailbot.rules")


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

    def trusted_senders(self) -> frozenset[str]:
        """Addresses of known services: they may quote our references."""
        return frozenset(a.lower() for s in self.ruleset.services for a in s.addresses)

    def route(self, session: Session, mail: Mail, classification: Classification,
              now: datetime, flags: frozenset[str] = frozenset()) -> tuple[RoutingOutcome, Investigator | None]:
        routing = route(mail, classification, self.ruleset, flags=flags)
        investigator = None
        if routing.outcome == "investigation" or routing.investigator_email:
            investigator = self.pick(session, routing.team, classification.language,
                                     routing.strategy, routing.investigator_email, now)
        outcome = RoutingOutcome(outcome=routing.outcome, template=routing.template,
                                 flags=tuple(routing.flags), rules_fired=tuple(routing.fired))
        return outcome, investigator

    def pick(self, session: Session, team: str | None, language: str, strategy: str,
             explicit: str | None, now: datetime) -> Investigator | None:
        if explicit:
            chosen = self.ruleset.investigator(explicit)
            if chosen is not None:
                return chosen
        loads = {email: InvestigatorLoad(open_cases=count, last_assigned_at=last)
                 for email, (count, last) in store.investigator_loads(session).items()}
        return pick_investigator(self.ruleset, team=team, language=language, strategy=strategy,
                                 load=loads, today=now.date())
