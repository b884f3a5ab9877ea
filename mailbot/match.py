"""Which case does a message belong to? Pure: the stage passes the facts and candidates in.

Evidence is tried strongest first, and the first that holds decides:

  (a) our case reference, only from someone who may use it (the case's citizen, a
      co-recipient, a known service, the office's staff); a stranger's reference → a new
      case for triage;
  (b) In-Reply-To/References to a Message-ID of the case;
  (c) a forwarded agency message from the citizen → their open case about that agency,
      when the letter is the case's (`agency_forward`); someone else's letter → a new case
      for triage unless its text ties it;
  (d) an agency's own file number remembered on a case (same trust rule as (a));
  (e) a status request from the address of the citizen's only open case;
  (f) fuzzy text similarity (rapidfuzz, batch `cdist`) against the citizen's open and
      recent cases (same address, or same name key) and against recent near-duplicates
      from anyone (MinHash bands). Same address and score ≥ fuzzy_threshold → joins the case
      (a new complaint inside the duplicate window is flagged possible_duplicate); another
      address ≥ fuzzy_threshold inside the window, in the complainants' own words too and
      not about different agencies → a new case flagged possible_duplicate with duplicate_of
      (one of the same name first). Else a score ≥ triage_threshold (below fuzzy_threshold,
      or a closed case) of the same address, or of the same name not about another agency
      → a new case flagged needs_triage with the candidates (the same name: unless flagged
      possible_duplicate already);
  (g) a mail from the citizen's address with the specific subject of exactly one of their
      open cases (after Re:/Fwd:/AW:/TR: prefixes; not a generic "klacht", "vraag" or an
      empty one) joins it, whatever its body: a follow-up that adds news shares little text
      with the complaint. Not for a referral or a web form (the sender is not the citizen).

(c), (e), (f) and (g) consider only cases created by `Policy.latest_case` (the duplicate
window after the mail was received): an old mailbox imported after live mail does not join
newer cases by identity or text. A reference or a Message-ID, (a), (b), (d), still does.

Every Evidence detail of a candidate starts with the case reference. A referral whose
citizen has no address is never joined to a case by identity; it opens a case flagged
needs_triage, the first evidence (method "referral") saying why.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from .agency_forward import agency_forward
from .match_model import Candidate, Found, MessageFacts, Policy, Result, aware, created_by
from .model import CaseCandidate, Evidence, Kind, Match
from .similarity import own_scores, same_subject, text_scores

NO_MATCH = Match(case_id=None, ref=None)
SHOWN_CANDIDATES = 5  # candidates listed for staff and explain


def reference_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(prefix)}-(\d{{4}})-(\d{{6}})\b")


def find_references(subject: str, text: str, prefix: str) -> list[str]:
    """Case references in the subject first, then the body; each once, in order."""
    pattern = reference_pattern(prefix)
    found: list[str] = []
    for part in (subject, text):
        for m in pattern.finditer(part or ""):
            if m.group(0) not in found:
                found.append(m.group(0))
    return found


def may_use_reference(facts: MessageFacts, case: CaseCandidate) -> bool:
    """A reference is accepted from the case's citizen, a co-recipient, a known service, or the
    office's own staff (who may write about any case)."""
    sender = facts.sender
    return bool(sender) and (sender == case.citizen_email or sender in case.co_recipients
                             or facts.sender_is_service or facts.sender_is_staff)


# What (g) takes for the same subject, and how strong it is as evidence.
SAME_SUBJECT = 90.0  # fuzz.ratio of two subject keys: the same subject, give or take a typo
SAME_SUBJECT_SCORE = 85.0  # (g): as strong as a forward to the citizen's only open case


def match_message(facts: MessageFacts, found: Found, policy: Policy = Policy(),
                  *, automatic: bool = False) -> Result:
    """The best case for a message among the candidates, with its evidence."""
    flags, also = tuple(facts.flags), tuple(facts.also_sent_to)
    weak: list[Evidence] = []

    def join(case: CaseCandidate, evidence: Evidence, extra_flags: tuple[str, ...] = (),
             extra_also: tuple[str, ...] = (), duplicate_of: CaseCandidate | None = None) -> Result:
        return Result(Match(case.case_id, case.ref, (evidence,), flags=_merge(flags, extra_flags),
                            also_sent_to=_merge(also, extra_also),
                            duplicate_of_id=duplicate_of.case_id if duplicate_of else None,
                            duplicate_of_ref=duplicate_of.ref if duplicate_of else None),
                      (evidence,))

    for case in found.by_reference:  # (a)
        if may_use_reference(facts, case):
            return join(case, Evidence("reference", f"{case.ref} in subject or body", 100.0))
        weak.append(Evidence("reference", f"{case.ref} quoted by a sender unknown to the case", 40.0))
    for message_id, case in found.by_thread:  # (b)
        return join(case, Evidence("in-reply-to", f"{case.ref}: refers to <{message_id}>", 95.0))
    if automatic:  # a robot's mail only ever threads by reference or Message-ID
        return Result(Match(None, None, tuple(weak[:1]), needs_triage=True, candidates=tuple(weak))
                      if weak else NO_MATCH, tuple(weak))

    # Identity and text: no case opened well after the mail was written (an old mailbox
    # imported after live mail does not thread into newer cases).
    latest = policy.latest_case(facts.received_at)
    found = replace(found, identity=[c for c in found.identity if created_by(c, latest)],
                    similar=[c for c in found.similar if created_by(c, latest)])
    identity = facts.identity_email
    own_open = [c for c in found.identity
                if identity and c.citizen_email == identity and c.status == "open"]
    considered: list[Evidence] = []
    if facts.forward_agencies and not facts.referred_by:  # (c)
        forward = agency_forward(facts, own_open)
        if forward is not None:
            case, ev = forward
            considered.append(ev)
            if ev.score >= policy.fuzzy_threshold:
                return join(case, ev)
    for value, case in found.by_agency_ref:  # (d)
        if may_use_reference(facts, case) or case.citizen_email == identity:
            return join(case, Evidence("agency-reference", f"{case.ref}: agency file number {value}", 92.0))
        weak.append(Evidence("agency-reference", f"{case.ref}: file number {value} quoted by a sender "
                                                 "unknown to the case", 40.0))
    if facts.kind is Kind.STATUS_REQUEST and len(own_open) == 1:  # (e)
        return join(own_open[0], Evidence("identity", f"{own_open[0].ref}: status request from the "
                                                      "address of the citizen's only open case", 90.0))
    return _fuzzy(facts, found, policy, weak + considered, join)


def _fuzzy(facts: MessageFacts, found: Found, policy: Policy, weak: list[Evidence], join) -> Result:
    identity = facts.identity_email
    pool: dict[int, Candidate] = {}
    for case in (*found.identity, *found.similar):
        pool.setdefault(case.case_id, case)
    cases = list(pool.values())
    scores = text_scores(facts.subject, facts.body, [c.text for c in cases]) if (
        facts.subject or facts.body) else [(0.0, 0.0, 0.0)] * len(cases)
    window = facts.received_at - timedelta(days=policy.duplicate_window_days)
    scored: list[tuple[float, Candidate, Evidence]] = []
    texts = {case.case_id: (s_body, score) for case, (_, s_body, score) in zip(cases, scores)}
    for case, (s_subject, s_body, score) in zip(cases, scores):
        same = case.citizen_email == identity
        who = ("same address" if same else "same name, other address" if _same_name(facts, case)
               else "other sender")
        detail = (f"{case.ref}: {who}, {case.status}; subject {s_subject:.0f}, body {s_body:.0f}")
        scored.append((score, case, Evidence("fuzzy", detail, round(score, 1))))
    scored.sort(key=lambda s: (-s[0], -_ts(s[1].created_at)))
    considered = tuple(e for _, _, e in scored[:SHOWN_CANDIDATES])
    referral_flags = ("referred_by",) if facts.referred_by else ()
    referrer = (facts.referred_by,) if facts.referred_by else ()

    for score, case, evidence in scored:  # the same citizen's case, confident enough
        if (not identity or case.citizen_email != identity or score < policy.fuzzy_threshold
                or case.status != "open"):
            continue
        within = _since(case.created_at, window)
        if facts.referred_by:  # the citizen wrote to both services
            return _with(join(case, evidence, ("multi_addressed",), referrer), considered)
        if facts.kind is Kind.NEW_COMPLAINT and within:
            return _with(join(case, evidence, ("possible_duplicate",), duplicate_of=case),
                         considered)
        return _with(join(case, evidence), considered)

    by_subject = _same_subject(facts, found, identity)  # (g), when it says more than the text
    if by_subject is not None and texts.get(by_subject[0].case_id, (0.0, 0.0))[1] < SAME_SUBJECT_SCORE:
        case, subject_score, which = by_subject
        body = f", body {texts[case.case_id][0]:.0f}" if case.case_id in texts else ""
        evidence = Evidence("identity", f"{case.ref}: same address, {which}, "
                                        f"same subject ({subject_score:.0f}{body})", SAME_SUBJECT_SCORE)
        if evidence.score >= policy.fuzzy_threshold:
            return _with(join(case, evidence), considered)
        weak.append(evidence)  # a stricter office threshold: staff decide

    # Not joined: a new case. Flag what staff must look at.
    duplicate_of, duplicate = _duplicate(facts, scored, policy, window)
    triage = [e for e in weak if e.method in ("reference", "agency-reference", "agency-forward")
              or e.score >= policy.triage_threshold]
    triage += [e for score, case, e in scored
               if identity and case.citizen_email == identity and score >= policy.triage_threshold]
    # The same name at another address may be the citizen writing from elsewhere: listed, and
    # flagged needs_triage unless a possible duplicate has staff look at the case already.
    same_name = [e for score, case, e in scored
                 if score >= policy.triage_threshold and case is not duplicate_of
                 and case.citizen_email != identity and _same_name(facts, case)
                 and not _other_agencies(facts, case)]
    extra_flags = [*referral_flags, *(("possible_duplicate",) if duplicate_of else ())]
    if facts.referred_by and not identity:  # nobody to answer: staff find the citizen
        name = facts.identity.name if facts.identity else ""
        triage.insert(0, Evidence("referral", f"{facts.referred_by}: forwarded complaint of "
                                              f"{name or 'an unnamed citizen'} with no e-mail address, "
                                              "none stated in the cover note", 0.0))
    elif facts.webform and not identity:  # the citizen left the form's e-mail field empty
        name = facts.identity.name if facts.identity else ""
        triage.insert(0, Evidence("webform", f"web form complaint of {name or 'an unnamed citizen'} "
                                             "with no e-mail address: contact by phone or post", 0.0))
    flagged = triage + ([] if duplicate_of else same_name)
    match = Match(None, None, tuple(flagged[:1] or duplicate), needs_triage=bool(flagged),
                  flags=_merge(tuple(facts.flags), tuple(extra_flags)),
                  also_sent_to=_merge(tuple(facts.also_sent_to), referrer),
                  duplicate_of_id=duplicate_of.case_id if duplicate_of else None,
                  duplicate_of_ref=duplicate_of.ref if duplicate_of else None,
                  citizen=facts.identity if (facts.referred_by and identity) or (facts.webform and not identity)
                  else None,
                  candidates=tuple((triage + same_name + duplicate)[:SHOWN_CANDIDATES]))
    return Result(match, considered or tuple(weak))


def _duplicate(facts: MessageFacts, scored: list[tuple[float, Candidate, Evidence]], policy: Policy,
               window: datetime) -> tuple[Candidate | None, list[Evidence]]:
    """Someone else's recent case with (nearly) the same complaint: the same text, and the same
    in the complainants' own words (not a letter both forwarded, not a web form's fixed text),
    unless the two name different agencies. One of the same name first: likelier the same person."""
    for score, case, evidence in sorted(scored, key=lambda s: not _same_name(facts, s[1])):
        if (case.citizen_email == facts.identity_email or score < policy.fuzzy_threshold
                or not _since(case.created_at, window) or _other_agencies(facts, case)):
            continue
        [(_, _, own)] = own_scores(*facts.own, [case.text])
        if own >= policy.fuzzy_threshold:
            return case, [replace(evidence, detail=f"{evidence.detail}, own words {own:.0f}")]
    return None, []


def _same_name(facts: MessageFacts, case: Candidate) -> bool:
    return bool(facts.name_key) and case.name_key == facts.name_key


def _other_agencies(facts: MessageFacts, case: Candidate) -> bool:
    """Whether the mail and the case name different agencies: two complaints, however alike."""
    return bool(facts.agencies and case.agencies and not set(facts.agencies) & set(case.agencies))


def _same_subject(facts: MessageFacts, found: Found, identity: str) -> tuple[Candidate, float, str] | None:
    """(g) The citizen's one open case with this mail's specific subject, the subject score,
    and which case it is; None when none or several have it (a subject two cases share
    cannot say which) or the mail is not from the citizen's own address."""
    if not identity or facts.sender != identity or facts.referred_by:
        return None
    own_open = [c for c in found.identity if c.citizen_email == identity and c.status == "open"]
    hits = [(c, score) for c in own_open if (score := same_subject(facts.subject, c.text)) >= SAME_SUBJECT]
    if len(hits) != 1:
        return None
    which = ("the citizen's only open case" if len(own_open) == 1
             else f"the only one of the citizen's {len(own_open)} open cases with this subject")
    return hits[0][0], hits[0][1], which


def _with(result: Result, considered: tuple[Evidence, ...]) -> Result:
    return replace(result, considered=considered)


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _since(moment: datetime | None, window: datetime) -> bool:
    return moment is None or aware(moment) >= window


def _ts(moment: datetime | None) -> float:
    return aware(moment).timestamp() if moment else 0.0
