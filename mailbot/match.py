"""Which case does a message belong to? Pure: the stage passes the facts and candidates in.

Evidence is tried strongest first, and the first that holds decides:

  (a) our case reference, only from someone who may use it (the case's citizen, a
      co-recipient, a known service); a stranger's reference → a new case for triage;
  (b) In-Reply-To/References to a Message-ID of the case;
  (c) a forwarded agency message from the citizen → their open case about that agency;
  (d) an agency's own file number remembered on a case (same trust rule as (a));
  (e) a status request from the address of the citizen's only open case;
  (f) fuzzy text similarity (rapidfuzz, batch `cdist`) against the citizen's recent cases
      (same address or same name key) and against recent near-duplicates from anyone
      (MinHash bands). Same address and score ≥ fuzzy_threshold → joins the case (a new
      complaint inside the duplicate window is flagged possible_duplicate); another address
      ≥ fuzzy_threshold inside the window → a new case flagged possible_duplicate with
      duplicate_of; triage_threshold ≤ score < fuzzy_threshold (or a closed case) → a new
      case flagged needs_triage with the candidates listed;
  (g) a mail from the address of the citizen's only open case with the same specific
      subject (after Re:/Fwd:/AW:/TR: prefixes; not a generic "klacht", "vraag" or an empty
      one) joins it, whatever its body: a follow-up that adds news shares little text with
      the complaint. Not for a referral or a web form (the sender is not the citizen).

Every Evidence detail of a candidate starts with the case reference. A referral whose
citizen has no address is never joined to a case by identity; it opens a case flagged
needs_triage, the first evidence (method "referral") saying why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from .model import Address, CaseCandidate, Evidence, Kind, Match
from .similarity import same_subject, text_scores

NO_MATCH = Match(case_id=None, ref=None)
SHOWN_CANDIDATES = 5  # candidates listed for staff and explain


@dataclass(frozen=True)
class Candidate(CaseCandidate):
    """A case as the matcher sees it: CaseCandidate plus what matching remembered.

    `text` is the case's normalised "subject\\nbody" (`normalize.match_text`)."""

    name_key: str = ""
    agencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The thresholds from `settings.matching`."""

    fuzzy_threshold: float = 70.0
    triage_threshold: float = 55.0
    duplicate_window_days: int = 30
    recent_case_days: int = 365


@dataclass(frozen=True)
class MessageFacts:
    """What matching needs to know of one message (built by the stage)."""

    sender: str  # From address, lower-cased ("" when none)
    kind: Kind
    received_at: datetime
    sender_is_service: bool = False  # an ombudsman service or agency: may quote references
    identity: Address | None = None  # the complainant: the sender, or the citizen of a referral
    name_key: str = ""  # normalize.name_key of the complainant's display name
    subject: str = ""  # normalize.subject_key
    body: str = ""  # normalize.body_key (the citizen's text, and any forwarded text)
    referred_by: str | None = None  # service id of the ombudsman service that referred the citizen
    forward_agencies: tuple[str, ...] = ()  # agencies whose mail the sender forwarded
    flags: tuple[str, ...] = ()  # from To/Cc: multi_addressed, agency_in_cc
    also_sent_to: tuple[str, ...] = ()  # service ids in To/Cc

    @property
    def identity_email(self) -> str:
        return self.identity.email if self.identity else self.sender


@dataclass(frozen=True)
class Found:
    """Candidate cases loaded by indexed queries, per kind of evidence."""

    by_reference: Sequence[CaseCandidate] = ()
    by_thread: Sequence[tuple[str, CaseCandidate]] = ()
    by_agency_ref: Sequence[tuple[str, CaseCandidate]] = ()  # ("service:REF", case)
    identity: Sequence[Candidate] = ()  # the complainant's recent cases (address or name key)
    similar: Sequence[Candidate] = ()  # recent cases sharing a MinHash band


@dataclass(frozen=True)
class Result:
    match: Match
    considered: tuple[Evidence, ...] = field(default=())  # every candidate scored, best first


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
    """A reference is accepted from the case's citizen, a co-recipient, or a known service."""
    sender = facts.sender
    return bool(sender) and (sender == case.citizen_email or sender in case.co_recipients
                             or facts.sender_is_service)


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

    identity = facts.identity_email
    own_open = [c for c in found.identity
                if identity and c.citizen_email == identity and c.status == "open"]
    considered: list[Evidence] = []
    if facts.forward_agencies and not facts.referred_by:  # (c)
        evidence = _agency_forward(facts, own_open)
        if evidence is not None:
            case, ev = evidence
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


def _agency_forward(facts: MessageFacts, own_open: list[Candidate]) -> tuple[Candidate, Evidence] | None:
    agencies = set(facts.forward_agencies)
    names = ", ".join(facts.forward_agencies)
    about = [c for c in own_open if agencies & set(c.agencies)]
    if len(about) == 1:
        return about[0], Evidence("agency-forward", f"{about[0].ref}: forwarded mail from {names}; "
                                                    "the citizen's open case about it", 90.0)
    if len(about) > 1:
        scores = text_scores(facts.subject, facts.body, [c.text for c in about])
        best = max(range(len(about)), key=lambda i: scores[i][2])
        score = 60.0 + 0.4 * scores[best][2]
        return about[best], Evidence("agency-forward", f"{about[best].ref}: forwarded mail from {names}; "
                                     f"one of {len(about)} open cases about it (text {scores[best][2]:.0f})",
                                     round(score, 1))
    if len(own_open) == 1 and not own_open[0].agencies:
        return own_open[0], Evidence("agency-forward", f"{own_open[0].ref}: forwarded mail from {names}; "
                                     "the citizen's only open case, no agency recorded on it", 85.0)
    return None


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
        who = ("same address" if same else "same name, other address"
               if facts.name_key and case.name_key == facts.name_key else "other sender")
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
        within = case.created_at is None or _aware(case.created_at) >= window
        if facts.referred_by:  # the citizen wrote to both services
            return _with(join(case, evidence, ("multi_addressed",), referrer), considered)
        if facts.kind is Kind.NEW_COMPLAINT and within:
            return _with(join(case, evidence, ("possible_duplicate",), duplicate_of=case),
                         considered)
        return _with(join(case, evidence), considered)

    by_subject = _same_subject(facts, found, identity)  # (g), when it says more than the text
    if by_subject is not None and texts.get(by_subject[0].case_id, (0.0, 0.0))[1] < SAME_SUBJECT_SCORE:
        case, subject_score = by_subject
        body = f", body {texts[case.case_id][0]:.0f}" if case.case_id in texts else ""
        evidence = Evidence("identity", f"{case.ref}: same address, the citizen's only open case, "
                                        f"same subject ({subject_score:.0f}{body})", SAME_SUBJECT_SCORE)
        if evidence.score >= policy.fuzzy_threshold:
            return _with(join(case, evidence), considered)
        weak.append(evidence)  # a stricter office threshold: staff decide

    # Not joined: a new case. Flag what staff must look at.
    triage = [e for e in weak if e.method in ("reference", "agency-reference")
              or e.score >= policy.triage_threshold]
    triage += [e for score, case, e in scored if identity and case.citizen_email == identity
               and score >= policy.triage_threshold]
    extra_flags = list(referral_flags)
    if facts.referred_by and not identity:  # nobody to answer: staff find the citizen
        name = facts.identity.name if facts.identity else ""
        triage.insert(0, Evidence("referral", f"{facts.referred_by}: forwarded complaint of "
                                              f"{name or 'an unnamed citizen'} with no e-mail address, "
                                              "none stated in the cover note", 0.0))
    duplicate: list[Evidence] = []
    duplicate_of: CaseCandidate | None = None
    for score, case, evidence in scored:  # someone else sent (nearly) the same complaint
        if (case.citizen_email != identity and score >= policy.fuzzy_threshold
                and (case.created_at is None or _aware(case.created_at) >= window)):
            extra_flags.append("possible_duplicate")
            duplicate_of, duplicate = case, [evidence]
            break
    match = Match(None, None, tuple(triage[:1] or duplicate), needs_triage=bool(triage),
                  flags=_merge(tuple(facts.flags), tuple(extra_flags)),
                  also_sent_to=_merge(tuple(facts.also_sent_to), referrer),
                  duplicate_of_id=duplicate_of.case_id if duplicate_of else None,
                  duplicate_of_ref=duplicate_of.ref if duplicate_of else None,
                  citizen=facts.identity if facts.referred_by and identity else None,
                  candidates=tuple((triage + duplicate)[:SHOWN_CANDIDATES]))
    return Result(match, considered or tuple(weak))


def _same_subject(facts: MessageFacts, found: Found, identity: str) -> tuple[Candidate, float] | None:
    """(g) The citizen's only open case when this mail, from the citizen's own address, has
    the case's specific subject; None otherwise (several open cases: the subject alone
    cannot say which, and a subject shared by two of them proves nothing)."""
    if not identity or facts.sender != identity or facts.referred_by:
        return None
    own_open = [c for c in found.identity if c.citizen_email == identity and c.status == "open"]
    if len(own_open) != 1:
        return None
    score = same_subject(facts.subject, own_open[0].text)
    return (own_open[0], score) if score >= SAME_SUBJECT else None


def _with(result: Result, considered: tuple[Evidence, ...]) -> Result:
    return replace(result, considered=considered)


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ts(moment: datetime | None) -> float:
    return _aware(moment).timestamp() if moment else 0.0
