"""A seeded day for the digest, report and retention tests: one item in every digest section.

The day is Monday 23 November 2026 (Europe/Brussels, UTC+1). Names, addresses and phone
numbers used here are listed in PERSONAL so tests can assert that reports leak none.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from mailbot.db import Case, Event, Message, Outbox, RawMail

DAY = "2026-11-23"
UTC = timezone.utc
PERSONAL = ["jan.peeters@example.be", "Jan", "Peeters", "marie.dubois@example.be", "Dubois",
            "piet.janssens@example.be", "Janssens", "0470 12 34 56", "+32470123456", "sofie.maes@example.be",
            "Maes", "karel.de.smet@example.be", "Smet", "lotte.claes@example.be", "Claes", "Studietoelage",
            "Huurpremie", "Kinderbijslag"]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """November `day` at local (UTC+1) `hour`:`minute`, as an aware UTC datetime."""
    return datetime(2026, 11, day, hour - 1, minute, tzinfo=UTC)


class Seeder:
    def __init__(self, session) -> None:
        self.session = session
        self.n = 0

    def case(self, number: int, *, name: str, email: str, subject: str, created: datetime, **kw) -> Case:
        values = dict(status="open", language="nl", team="onderwijs", investigator_email="an.peeters@vlaamseombudsdienst.be",
                      investigator_name="An Peeters", outcome="investigation", flags=[], also_sent_to=[],
                      first_reaction_at=created + timedelta(minutes=1))
        values.update(kw)
        case = Case(ref=f"VO-2026-{number:06d}", citizen_email=email, citizen_name=name, subject=subject,
                    created_at=created, updated_at=created, **values)
        self.session.add(case)
        self.session.flush()
        return case

    def message(self, case: Case | None, *, kind: str, received: datetime, subject: str = "", sender: str = "",
                name: str = "", evidence: list | None = None, raw: bool = True, **kw) -> Message:
        self.n += 1
        body = f"bericht {self.n} van {name} {sender} tel 0470 12 34 56".encode()
        sha = hashlib.sha256(body).hexdigest()
        if raw:
            self.session.add(RawMail(sha256=sha, data=body))
        message = Message(case_id=case.id if case else None, direction="in", kind=kind,
                          message_id=f"m{self.n}@mail.example.be", from_email=sender, from_name=name,
                          subject=subject, received_at=received, body_text=body.decode(), sha256=sha,
                          size=len(body), language="nl", **kw)
        self.session.add(message)
        self.session.flush()
        self.session.add(Event(type="message_received", case_id=case.id if case else None, message_pk=message.id,
                               detail={"kind": kind, "reasons": [], "evidence": evidence or []}, created_at=received))
        return message

    def outbox(self, case: Case | None, *, template: str, recipient: str, status: str, created: datetime,
               last_error: str | None = None) -> Outbox:
        self.n += 1
        row = Outbox(case_id=case.id if case else None, template=template, recipient=recipient,
                     message_id=f"out{self.n}@vlaamseombudsdienst.be", mime=b"From: x\r\n\r\nhallo " + recipient.encode(),
                     status=status, attempts=1, next_attempt_at=created, created_at=created, last_error=last_error,
                     sent_at=created if status == "sent" else None)
        self.session.add(row)
        self.session.flush()
        return row


def seed(session) -> dict[str, Case]:
    """Fill the database with the seeded day; returns the cases by role."""
    s = Seeder(session)
    cases: dict[str, Case] = {}
    triage = s.case(1, name="Jan <script>alert(1)</script> Peeters", email="jan.peeters@example.be",
                    subject="Studietoelage <script>alert('x')</script>", created=at(23, 9), flags=["needs_triage"])
    s.message(triage, kind="new_complaint", received=at(23, 9), subject=triage.subject,
              sender=triage.citizen_email, name=triage.citizen_name,
              evidence=[{"method": "reference", "detail": "VO-2026-000099 quoted by a sender unknown to the case",
                         "score": 40.0}, {"method": "fuzzy", "detail": "name and subject like VO-2026-000098",
                                          "score": 72.5}])
    cases["triage"] = triage
    multi = s.case(2, name="Marie Dubois", email="marie.dubois@example.be", subject="Huurpremie geweigerd",
                   created=at(23, 10), flags=["multi_addressed", "possible_duplicate"],
                   also_sent_to=["federale-ombudsman"], duplicate_of_id=triage.id, team="wonen",
                   investigator_email="bert.wouters@vlaamseombudsdienst.be", investigator_name="Bert Wouters")
    s.message(multi, kind="new_complaint", received=at(23, 10), subject=multi.subject, sender=multi.citizen_email,
              name=multi.citizen_name)
    s.message(multi, kind="status_request", received=at(23, 15), subject="Wat is de stand van zaken?",
              sender=multi.citizen_email, name=multi.citizen_name)
    s.outbox(multi, template="status", recipient=multi.citizen_email, status="sent", created=at(23, 15, 1))
    cases["multi"] = multi
    cc = s.case(3, name="Piet Janssens", email="piet.janssens@example.be", subject="Kinderbijslag te laat",
                created=at(23, 11), flags=["agency_in_cc", "agency_in_cc_reminded"])
    s.message(cc, kind="new_complaint", received=at(23, 11), subject=cc.subject, sender=cc.citizen_email,
              name=cc.citizen_name, cc_addrs=["info@groeipakket.be"])
    cases["cc"] = cc
    anon = s.case(4, name="Sofie Maes", email="sofie.maes@example.be", subject="Belasting op tweede verblijf",
                  created=at(23, 12), flags=["anonymity_requested", "prefers_phone"], outcome="refer_ombudsman",
                  investigator_email=None, investigator_name=None, team=None)
    s.message(anon, kind="new_complaint", received=at(23, 12), subject=anon.subject, sender=anon.citizen_email,
              name=anon.citizen_name)
    cases["anon"] = anon
    s.message(None, kind="unreadable", received=at(23, 13), subject="", sender="", raw=True,
              quarantine_reason="message of 31457280 bytes exceeds the limit of 26214400")
    bounced = s.case(5, name="Karel De Smet", email="karel.de.smet@example.be", subject="Rijbewijs",
                     created=at(20, 9), flags=["undeliverable"])
    failed = s.outbox(bounced, template="ack_investigation", recipient=bounced.citizen_email, status="failed",
                      created=at(20, 9), last_error="550 5.1.1 user unknown")
    session.add(Event(type="reply_failed", case_id=bounced.id, created_at=at(23, 8),
                      detail={"template": "ack_investigation", "outbox_id": failed.id, "permanent": True}))
    cases["bounced"] = bounced
    held = s.case(6, name="Lotte Claes", email="lotte.claes@example.be", subject="Parkeerkaart", created=at(22, 9))
    s.message(held, kind="follow_up", received=at(23, 14), subject="nog een vraag", sender=held.citizen_email,
              name=held.citizen_name)
    s.outbox(held, template="forward_added", recipient=held.citizen_email, status="held", created=at(23, 14),
             last_error="replies_per_case_per_day")
    cases["held"] = held
    session.add(Event(type="rules_reload_failed", created_at=at(23, 7),
                      detail={"error": "rules/routing.yaml:12: unknown key 'thne'"}))
    late = s.case(7, name="Jan Peeters", email="jan.peeters@example.be", subject="Premie zonnepanelen",
                  created=at(17, 10), first_reaction_at=None)
    cases["late"] = late
    recent = s.case(8, name="Marie Dubois", email="marie.dubois@example.be", subject="Subsidie",
                    created=at(19, 10), first_reaction_at=None)
    cases["recent"] = recent
    s.message(triage, kind="agency_forward", received=at(23, 16), subject="Fwd: uw dossier 2026/123",
              sender=triage.citizen_email, name="Jan Peeters",
              original_sender="Departement Onderwijs <info@onderwijs.vlaanderen.be>",
              original_subject="Uw dossier 2026/123")
    for day, kind in ((20, "new_complaint"), (20, "follow_up"), (21, "automatic"), (22, "new_complaint")):
        s.message(None, kind=kind, received=at(day, 12), subject="ouder bericht", sender="x@example.be")
    session.flush()
    return cases
