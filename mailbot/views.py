"""Cases as plain data for `mailbot case list/show --json` and the text tables."""

from __future__ import annotations

from typing import Any

from .db import Case, Message, utc_iso


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_email,
        "subject": message.subject,
        "received_at": utc_iso(message.received_at),
        "original_sender": message.original_sender,
    }


def case_dict(case: Case, *, with_messages: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ref": case.ref,
        "status": case.status,
        "citizen_email": case.citizen_email,
        "citizen_name": case.citizen_name,
        "investigator_email": case.investigator_email,
        "investigator_name": case.investigator_name,
        "team": case.team,
        "language": case.language,
        "subject": case.subject,
        "outcome": case.outcome,
        "created_at": utc_iso(case.created_at),
        "closed_at": utc_iso(case.closed_at),
        "flags": sorted(case.flags),
        "also_sent_to": list(case.also_sent_to),
        "duplicate_of": case.duplicate_of.ref if case.duplicate_of else None,
        "contact": {"phone": case.contact_phone, "email": case.contact_email},
    }
    if with_messages:
        data["messages"] = [message_dict(m) for m in case.messages]
    return data


def case_table(cases: list[Case]) -> str:
    """A fixed-width table for people."""
    header = ("REF", "STATUS", "CITIZEN", "INVESTIGATOR", "LANG", "MSGS", "FLAGS")
    rows = [(c.ref, c.status, c.citizen_email, c.investigator_email or "-", c.language,
             str(len(c.messages)), ",".join(sorted(c.flags)) or "-") for c in cases]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def case_text(case: Case) -> str:
    data = case_dict(case)
    lines = [f"{data['ref']}  ({data['status']})", f"  citizen:      {data['citizen_name']} <{data['citizen_email']}>",
             f"  investigator: {data['investigator_name'] or '-'} <{data['investigator_email'] or '-'}>",
             f"  language:     {data['language']}", f"  created:      {data['created_at']}",
             *([f"  closed:       {data['closed_at']}"] if data["closed_at"] else []),
             f"  flags:        {', '.join(data['flags']) or '-'}",
             f"  also sent to: {', '.join(data['also_sent_to']) or '-'}",
             f"  duplicate of: {data['duplicate_of'] or '-'}",
             f"  contact:      {', '.join(v for v in data['contact'].values() if v) or '-'}", "  messages:"]
    for m in data["messages"]:
        arrow = "→" if m["direction"] == "out" else "←"
        extra = f" (from the agency: {m['original_sender']})" if m["original_sender"] else ""
        lines.append(f"    {arrow} {m['received_at'][:16]} {m['kind']:<15} {m['from']}: {m['subject']}{extra}")
    return "\n".join(lines)
