"""Which flags a message's decision added to its case, and why it is listed in "Te beoordelen".

Read per message, never from the case's accumulated flags: the `flags` list of an event on
the message (the `message_received` event when the decision's flags are recorded there, or
any other event on the message), else what the message's own recorded reasons and the case
show (DMARC failed, a status request from an address not on file, mail on a closed case).
"""

from __future__ import annotations

from .db import Case, Message, as_utc

# Flags that put a message in "Te beoordelen"; bookkeeping flags are never shown as a reason.
TRIAGE_FLAGS = frozenset({"needs_triage", "spoofed_sender", "multiple_from", "status_from_unknown_address",
                          "status_unmatched", "on_closed_case", "reference_from_unknown_address",
                          "no_reply_address"})
QUIET_FLAGS = frozenset({"agency_in_cc_reminded", "multi_addressed_told"})
# Flags a message can add that other sections already show (contact wishes, Cc, …).
SHOWN_ELSEWHERE = frozenset({"multi_addressed", "possible_duplicate", "agency_in_cc", "anonymity_requested",
                             "prefers_phone", "alternative_email", "solution_offered", "solution_accepted",
                             "referred_by", "undeliverable"})
TRIAGE_ORDER = ("spoofed_sender", "multiple_from", "on_closed_case", "status_from_unknown_address", "status_unmatched",
                "reference_from_unknown_address", "no_reply_address")
# The neutral answer a flag's sender got (its outbox state is shown with the flag).
NEUTRAL_REPLIES = (("reference_from_unknown_address", "receipt_neutral"),)
# Reasons decide/classify record on the message that tell a flag the decision added.
REASON_FLAGS = (("DMARC failed", "spoofed_sender"), ("sender not proven: dmarc=fail", "spoofed_sender"),
                ("sender not proven: several From", "multiple_from"), ("message on a closed case", "on_closed_case"))
STATUS_REASONS = ("status request in the text", "also asks for the status")


def added_flags(m: Message, case: Case | None, detail: dict, linked: list[dict], *, opened: bool) -> set[str]:
    """The flags `m`'s decision put on its case: recorded on an event of the message, or
    told by the message's own reasons and the case (for mail recorded without them)."""
    added: set[str] = set()
    for d in (detail, *linked):
        recorded = d.get("flags")
        if isinstance(recorded, (list, tuple)):
            added |= {str(f) for f in recorded}
    if case is None or isinstance(detail.get("flags"), (list, tuple)):
        return added  # the decision's own flags were recorded with the message: exact
    reasons = [str(r) for r in detail.get("reasons") or ()]
    for prefix, flag in REASON_FLAGS:
        if any(r.startswith(prefix) for r in reasons):
            added |= {flag, "needs_triage"}
    asked_status = m.kind == "status_request" or any(r in STATUS_REASONS for r in reasons)
    if opened:  # what the case was opened with came from this message
        added |= set(case.flags) & {"needs_triage"}
        if asked_status:
            added |= set(case.flags) & {"status_unmatched", "status_from_unknown_address"}
    else:
        if (asked_status and "status_from_unknown_address" in case.flags
                and (m.from_email or "").lower() != (case.citizen_email or "").lower()):
            added.add("status_from_unknown_address")
        if case.status == "closed" and case.closed_at is not None and as_utc(case.closed_at) <= as_utc(m.received_at):
            added |= {"on_closed_case", "needs_triage"}
    return added


def triage_labels(m: Message, added: set[str], replies_to: dict[str, list[tuple[str, str]]], *,
                  opened: bool) -> tuple[str, ...]:
    """Why a message is in "Te beoordelen" (keys of `triage` in labels.j2), with the answer
    the sender got when they asked for the status from an address not on file."""
    shown = [f for f in TRIAGE_ORDER if f in added
             and not (f == "status_unmatched" and "status_from_unknown_address" in added)]
    shown += sorted(added - TRIAGE_FLAGS - QUIET_FLAGS - SHOWN_ELSEWHERE)  # e.g. a flag staff have no label for
    if not shown and "needs_triage" in added and not opened:
        shown.append("needs_triage")  # a reason not recorded: at least say it was flagged
    neutral = next((template for flag, template in NEUTRAL_REPLIES if flag in added), None)
    if neutral is None and ({"status_from_unknown_address", "status_unmatched"} & added
                            or ("spoofed_sender" in added and m.kind == "status_request")):
        neutral = "status_neutral"
    if neutral is not None:
        states = [status for template, status in replies_to.get(m.message_id or "", [])
                  if template == neutral]
        shown.append(f"reply_{states[-1]}" if states else "no_reply")
    return tuple(shown)
