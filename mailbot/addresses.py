"""What we know about citizens' addresses: which ones are undeliverable."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Case


def undeliverable(session: Session, email: str) -> bool:
    """True when an earlier reply to `email` bounced permanently or was refused (5xx)."""
    if not email:
        return False
    flagged = session.execute(
        select(Case.flags).where(Case.citizen_email == email).order_by(Case.id.desc()).limit(20)).scalars()
    return any("undeliverable" in flags for flags in flagged)
