"""Candidate cases for one message, through indexed queries only.

Every query is bounded by an index and a LIMIT (case reference, Message-ID, citizen
address or name key with created_at, case_key (kind, value, created_at)), so the cost of
matching one message does not grow with the number of cases. Identity and MinHash look-ups
read only cases created by `until` (`match_model.Policy.latest_case`): a mail imported from
an old mailbox is not matched by identity or text to a case opened long after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, func, insert, literal, or_, select, union_all
from sqlalchemy.orm import Session

from .db import Case, CaseKey, Message, table_of
from .db_statements import run
from .match_model import Candidate

IDENTITY_LIMIT = 20  # most recent cases of one citizen (address, and name key) considered
BAND_LIMIT = 20  # most recent cases per MinHash band key considered
SIMILAR_LIMIT = 20  # near-duplicate candidates compared, those sharing the most bands
REF_LIMIT = 10  # cases per agency file number


# Candidates are read as plain rows: the matcher needs these columns only, and an ORM
# object per candidate (with every JSON column decoded) cost more than the query.
_COLUMNS = (Case.id, Case.ref, Case.citizen_email, Case.citizen_name, Case.subject, Case.match_text,
            Case.status, Case.created_at, Case.co_recipients, Case.citizen_name_key,
            Case.match_agencies)


def candidate(row: Sequence[Any]) -> Candidate:
    (case_id, ref, citizen_email, citizen_name, subject, match_text, status, created_at,
     co_recipients, name_key, agencies) = row
    return Candidate(case_id=case_id, ref=ref, citizen_email=citizen_email,
                     citizen_name=citizen_name, subject=subject, text=match_text or "",
                     status=status, created_at=created_at, co_recipients=tuple(co_recipients or ()),
                     name_key=name_key or "", agencies=tuple(agencies or ()))


def by_refs(session: Session, refs: Sequence[str]) -> list[Candidate]:
    """Cases with one of our references, in the order the references were found."""
    if not refs:
        return []
    rows = run(session, select(*_COLUMNS).where(Case.ref.in_(list(refs))))
    return sorted((candidate(row) for row in rows), key=lambda c: refs.index(c.ref))


def by_message_ids(session: Session, message_ids: Sequence[str]) -> list[tuple[str, Candidate]]:
    """(Message-ID, case) for messages we sent or received, in the order asked."""
    ids = [m for m in dict.fromkeys(message_ids) if m][:100]
    if not ids:
        return []
    rows = run(session, select(Message.message_id, *_COLUMNS).join(Case, Message.case_id == Case.id)
               .where(Message.message_id.in_(ids)).order_by(Message.id.desc()))
    found: dict[str, Candidate] = {}
    for row in rows:
        found.setdefault(row[0], candidate(row[1:]))
    return [(m, found[m]) for m in ids if m in found]


def by_identity(session: Session, email: str, name_key: str, since: datetime,
                until: datetime) -> list[Candidate]:
    """The citizen's cases created by `until`: of the same address, those still open whatever
    their age and those created since `since`; then of the same name key from another
    address, those created since `since` (a name is weaker evidence than an address, and a
    common name has many old cases)."""
    if not (email or name_key):
        return []
    params = {"email": email or None, "name_key": name_key or None, "since": since, "until": until}
    found: dict[int, Candidate] = {}
    for row in run(session, _BY_IDENTITY, params):  # address matches come first
        columns: Sequence[Any] = row[1:]  # after the `source` column of the union
        found.setdefault(columns[0], candidate(columns))
    return list(found.values())


def _cases_by(column: Any, key: str, source: int, *, open_ones: bool) -> Any:
    since = Case.created_at >= bindparam("since")
    inner = (select(literal(source).label("source"), *_COLUMNS)
             .where(column == bindparam(key), Case.created_at <= bindparam("until"),
                    or_(since, Case.status == "open") if open_ones else since)
             .order_by(Case.created_at.desc()).limit(IDENTITY_LIMIT).subquery())
    return select(inner)


# Built once (constructing a statement costs more than SQLite answering it); one round
# trip for both look-ups, each through its own (column, created_at) index, newest first:
# the address look-up reads that address's cases, the open ones of any age among them.
_IDENTITY = union_all(_cases_by(Case.citizen_email, "email", 0, open_ones=True),
                      _cases_by(Case.citizen_name_key, "name_key", 1, open_ones=False)).subquery()
_BY_IDENTITY = select(_IDENTITY).order_by(_IDENTITY.c.source)


@lru_cache(maxsize=32)
def _keys_statement(count: int, with_period: bool) -> CompoundSelect:
    parts = []
    for i in range(count):
        query = select(literal(i).label("i"), CaseKey.case_id.label("case_id")).where(
            CaseKey.kind == bindparam("kind"), CaseKey.value == bindparam(f"v{i}"))
        if with_period:
            query = query.where(CaseKey.created_at >= bindparam("since"),
                                CaseKey.created_at <= bindparam("until"))
        inner = query.order_by(CaseKey.created_at.desc()).limit(bindparam("limit")).subquery()
        parts.append(select(inner.c.i, inner.c.case_id))
    return union_all(*parts)


def by_agency_refs(session: Session, values: Sequence[str]) -> list[tuple[str, Candidate]]:
    """(service:reference, case) for agency file numbers remembered on cases."""
    return _cases_by_keys(session, "agency_ref", values, REF_LIMIT)


def similar(session: Session, band_keys: Sequence[str], since: datetime,
            until: datetime) -> list[Candidate]:
    """Cases created between `since` and `until` sharing a MinHash band with the text:
    near-duplicates from anyone.

    The `SIMILAR_LIMIT` cases sharing the most bands, newest first among equals: the more
    bands two texts share, the closer they are, so a campaign of one text sent by
    hundreds of citizens costs the fuzzy comparison of twenty cases, not hundreds.
    """
    wanted = list(dict.fromkeys(band_keys))
    if not wanted:
        return []
    params = _key_params("lsh", wanted, BAND_LIMIT) | {"since": since, "until": until, "top": SIMILAR_LIMIT}
    return [candidate(row) for row in run(session, _similar_statement(len(wanted)), params)]


@lru_cache(maxsize=32)
def _similar_statement(count: int) -> Any:
    keys = _keys_statement(count, True).subquery()
    shared = func.count().label("shared")
    best = (select(keys.c.case_id, shared).group_by(keys.c.case_id)
            .order_by(shared.desc(), keys.c.case_id.desc()).limit(bindparam("top")).subquery())
    return (select(*_COLUMNS).join_from(best, Case, Case.id == best.c.case_id)
            .order_by(best.c.shared.desc(), Case.id.desc()))


def _cases_by_keys(session: Session, kind: str, values: Iterable[str],
                   limit: int) -> list[tuple[str, Candidate]]:
    """(value, case) for case keys equal to one of `values`, newest first, `limit` per value.

    One statement for all values and their cases (a UNION ALL of per-value index look-ups
    joined to the cases), built once per shape: the five MinHash bands of a mail cost one
    round trip, not ten.
    """
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return []
    rows = run(session, _cases_by_keys_statement(len(wanted)), _key_params(kind, wanted, limit))
    return [(wanted[row[0]], candidate(row[1:])) for row in rows]


def _key_params(kind: str, values: list[str], limit: int) -> dict[str, object]:
    """The parameters of `_keys_statement` but its period: one `v<i>` per value."""
    return {"kind": kind, "limit": limit, **{f"v{i}": value for i, value in enumerate(values)}}


@lru_cache(maxsize=32)
def _cases_by_keys_statement(count: int) -> Any:
    keys = _keys_statement(count, False).subquery()
    return (select(keys.c.i, *_COLUMNS).join_from(keys, Case, Case.id == keys.c.case_id)
            .order_by(keys.c.i, Case.id.desc()))


def add_keys(session: Session, case: Case, kind: str, values: Iterable[str], *,
             new_case: bool = False) -> None:
    """Remember keys for a case, each once (a case opened by this message has none yet)."""
    values = list(dict.fromkeys(v[:200] for v in values if v))
    if not values:
        return
    known = set(run(session, select(CaseKey.value).where(
        CaseKey.case_id == case.id, CaseKey.kind == kind)).scalars()) if case.id and not new_case else set()
    rows = [{"kind": kind, "value": value, "case_id": case.id, "created_at": case.created_at}
            for value in values if value not in known]
    if rows:  # one multi-row INSERT; later mails in the same batch must find these keys
        run(session, insert(table_of(CaseKey)), rows)
