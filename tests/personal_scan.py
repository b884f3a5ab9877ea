"""The audit's scan (/tmp/audit_dig/p1/scan.py) on any database: every column of every table
that still contains one of the terms. MIME is read decoded too, so a base64 or quoted-printable
body cannot hide a name."""

from __future__ import annotations

import email
import email.policy
import json

from sqlalchemy import select

from mailbot.db import Base


def _texts(value: object) -> list[str]:
    if isinstance(value, bytes):
        texts = [value.decode("utf-8", "replace")]
        for part in email.message_from_bytes(value, policy=email.policy.default).walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode("utf-8", "replace"))
        return texts
    if isinstance(value, (dict, list)):
        return [json.dumps(value, ensure_ascii=False)]
    return [str(value)]


def scan(sessions, *terms: str) -> list[str]:
    """`table.column id=…: term` for every hit, case-insensitive."""
    hits = []
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                key = row.get("id", row.get("sha256", row.get("email")))
                for column, value in row.items():
                    if value is None:
                        continue
                    text = "\n".join(_texts(value)).lower()
                    hits += [f"{table.name}.{column} {key}: {term}" for term in terms if term.lower() in text]
    return hits


def dump(sessions) -> list:
    """Every row of every table, for "the dry run changed nothing"."""
    with sessions() as session:
        return [(table.name, [tuple(row) for row in session.execute(select(table).order_by(*table.primary_key))])
                for table in Base.metadata.sorted_tables]
