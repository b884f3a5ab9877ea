"""Who is the office's own staff: pure, from the settings and the rule set in force.

Investigators keep the complaints mailbox in Cc when they write to a citizen, and the intake
desk forwards to it complaints that reached a colleague's own mailbox. Such mail is the
office's, not a citizen's: it is never answered and never makes its sender a case's citizen
(`decide`); it is filed on the case it names (`matching_stage`), or listed for staff in the
digest, a forwarded complaint too: who wrote it and what it is, a person decides.
"""

from __future__ import annotations

from typing import Any


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


def is_staff(email: str, settings: Any, ruleset: Any) -> bool:
    """Whether `email` is a colleague's: an investigator of the rules in force, a digest
    recipient, an address a routing rule notifies, or any address in `office.staff_domains`
    (none by default: a domain is staff's only when the administrator says so; a city's shared
    domain or a mail provider's holds citizens too). Never the robot's own addresses (handled
    as loops) nor a web-form robot (its mail carries the citizen)."""
    return Staff(settings, ruleset).includes(email)


class Staff:
    """`is_staff` for one rule set, its address sets built once (asked for every message)."""

    def __init__(self, settings: Any, ruleset: Any) -> None:
        self.ruleset = ruleset
        self._robots = {a.lower() for a in (settings.smtp.from_address,
                                            *(box.username for box in settings.all_mailboxes),
                                            *settings.webform_senders)}
        named = {i.email.lower() for i in ruleset.investigators}
        named |= {a.lower() for a in settings.digest.recipients}
        named |= {a.lower() for team in settings.digest.teams.values() for a in team}
        named |= {a.lower() for rule in ruleset.routing for a in rule.then.notify}
        self._named = frozenset(named)
        self._domains = frozenset(settings.office.staff_domains)

    def includes(self, email: str) -> bool:
        email = email.strip().lower()
        if not email or "@" not in email or email in self._robots:
            return False
        return email in self._named or _domain(email) in self._domains
