"""Retention: personal data has a limited life after a case is closed (DESIGN.md, privacy).

- cases closed more than `retention.closed_case_days` ago: pseudonymised (see `privacy`),
  their raw mail deleted;
- quarantined mail older than `retention.quarantine_days`: raw bytes deleted, sender and
  subject blanked (the reason stays, for the statistics);
- sent digests older than `retention.digest_days`: deleted from the outbox.

`dry_run` does all of it in a transaction that is rolled back, so the counts it reports are
exactly what a real run would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import sessionmaker

from .config import Settings
from .db import Case, Message, Outbox, RawMail
from .privacy import PSEUDONYM_DOMAIN, PurgeCounts, Scrubber
from .store import add_event


@dataclass
class RetentionReport:
    closed_cases: PurgeCounts = field(default_factory=PurgeCounts)
    quarantined: int = 0
    digests: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "closed_cases": self.closed_cases.as_dict(),
                "quarantined_raw_deleted": self.quarantined, "digests_deleted": self.digests}


def run_retention(sessions: sessionmaker, settings: Settings, now: datetime, *,
                  dry_run: bool = False) -> RetentionReport:
    policy = settings.retention
    report = RetentionReport(dry_run=dry_run)
    with sessions() as session:
        scrub = Scrubber(session)
        closed_before = now - timedelta(days=policy.closed_case_days)
        cases = session.execute(select(Case).where(
            Case.status == "closed", Case.closed_at.is_not(None), Case.closed_at < closed_before,
            Case.citizen_email.not_like(f"%@{PSEUDONYM_DOMAIN}")).order_by(Case.id)).scalars()
        for case in cases:
            scrub.case(case)
        scrub.delete_raw()
        report.closed_cases = scrub.counts

        quarantine_before = now - timedelta(days=policy.quarantine_days)
        stale = list(session.execute(select(Message).join(RawMail, RawMail.sha256 == Message.sha256).where(
            Message.quarantine_reason.is_not(None), Message.received_at < quarantine_before)).scalars())
        for message in stale:
            message.from_email, message.from_name, message.subject, message.body_text = "", "", "", ""
            message.to_addrs, message.cc_addrs = [], []
        shas = {m.sha256 for m in stale}
        if shas:
            report.quarantined = session.execute(select(func.count()).select_from(RawMail)
                                                 .where(RawMail.sha256.in_(shas))).scalar_one()
            session.execute(delete(RawMail).where(RawMail.sha256.in_(shas)))

        digest_before = now - timedelta(days=policy.digest_days)
        report.digests = session.execute(delete(Outbox).where(
            Outbox.template == "digest", Outbox.case_id.is_(None),
            Outbox.status.in_(("sent", "failed", "cancelled")), Outbox.created_at < digest_before)).rowcount or 0

        if dry_run:
            session.rollback()
        else:
            counts = report.closed_cases
            add_event(session, "retention_run", cases=counts.cases, messages=counts.messages,
                      raw_mails=counts.raw_mails, quarantined_raw=report.quarantined, digests=report.digests)
            session.commit()
    return report
