"""The pure matcher: facts and candidate cases in, a Match with its evidence out."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from mailbot.match import match_message
from mailbot.match_model import Candidate, Found, MessageFacts, Policy
from mailbot.model import Address, Kind
from mailbot.normalize import body_key, lsh_keys, match_text, name_key, split_match_text, subject_key
from mailbot.similarity import own_scores, same_subject, specific_subject, text_scores
from mailbot.webform import longest_answer

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
SOFIE = Address("Sofie Maes", "sofie@example.be")
STUDIE = ("In maart heb ik een studietoelage aangevraagd bij de afdeling Studietoelagen. Na vier maanden "
          "heb ik nog steeds geen beslissing. Ik heb hen twee keer gemaild en een keer gebeld, niemand "
          "weet wanneer mijn dossier behandeld wordt.")
REWORDED = ("Ik schrijf opnieuw over de studietoelage die ik in maart aanvroeg. Vier maanden later nog "
            "altijd geen beslissing. Mails en telefoontjes naar de afdeling Studietoelagen leveren niets "
            "op: niemand weet wanneer mijn dossier behandeld wordt.")
TRAM = ("Ik kreeg een boete van 75 euro op tram 1 omdat mijn abonnement niet geldig zou zijn. Het "
        "abonnement was geldig, de scanner werkte niet en De Lijn weigert de boete te annuleren.")


def case(case_id: int = 1, *, email: str = SOFIE.email, subject: str = "Klacht studietoelage",
         body: str = STUDIE, status: str = "open", age_days: int = 7, agencies: tuple[str, ...] = (),
         co_recipients: tuple[str, ...] = (), name: str = "Sofie Maes") -> Candidate:
    return Candidate(case_id=case_id, ref=f"VO-2026-{case_id:06d}", citizen_email=email,
                     citizen_name=name, subject=subject,
                     text=match_text(subject_key(subject), body_key(body)), status=status,
                     created_at=NOW - timedelta(days=age_days), co_recipients=co_recipients,
                     name_key=name_key(name), agencies=agencies)


def facts(*, sender: Address = SOFIE, subject: str = "Klacht studietoelage", body: str = STUDIE,
          kind: Kind = Kind.NEW_COMPLAINT, **kw) -> MessageFacts:
    identity = kw.pop("identity", sender)
    return MessageFacts(sender=sender.email, kind=kind, received_at=NOW, identity=identity,
                        name_key=name_key(identity.name), subject=subject_key(subject),
                        body=body_key(body), **kw)


def test_reference_from_the_citizen_joins_with_full_score():
    """Our reference used by the case's citizen threads the mail with score 100."""
    m = match_message(facts(), Found(by_reference=[case()])).match
    assert (m.case_id, m.score, m.evidence[0].method) == (1, 100.0, "reference")


def test_reference_from_a_stranger_opens_a_case_for_triage():
    """A stranger's mail quoting someone else's reference is not threaded but flagged needs_triage."""
    m = match_message(facts(sender=Address("", "x@example.org")), Found(by_reference=[case()])).match
    assert m.case_id is None and m.needs_triage and m.candidates[0].detail.startswith("VO-2026-000001")


def test_reference_from_a_co_recipient_or_a_service_is_accepted():
    """A co-recipient of the case and a known service may use the reference."""
    partner = Address("", "partner@example.be")
    with_partner = case(co_recipients=(partner.email,))
    assert match_message(facts(sender=partner), Found(by_reference=[with_partner])).match.case_id == 1
    agency = facts(sender=Address("", "info@delijn.be"), sender_is_service=True)
    assert match_message(agency, Found(by_reference=[case()])).match.case_id == 1


def test_in_reply_to_joins_and_keeps_recipient_flags():
    """A reply to one of the case's messages joins it; agency_in_cc from this mail is kept."""
    f = facts(flags=("agency_in_cc",), also_sent_to=("de-lijn",))
    m = match_message(f, Found(by_thread=[("ack@vo", case())])).match
    assert m.case_id == 1 and m.flags == ("agency_in_cc",) and m.also_sent_to == ("de-lijn",)


def test_automatic_mail_never_matches_fuzzily():
    """An automatic mail without reference or thread is matched to nothing, whatever its text."""
    assert match_message(facts(), Found(identity=[case()]), automatic=True).match.case_id is None


def test_agency_forward_joins_the_open_case_about_that_agency():
    """A forwarded De Lijn letter joins the citizen's open De Lijn case, not their other case."""
    cases = [case(1), case(2, subject="Boete tram", body=TRAM, agencies=("de-lijn",))]
    f = facts(kind=Kind.AGENCY_FORWARD, subject="Fwd: Uw klacht", body="Beste klant, wij bekijken het.",
              forward_agencies=("de-lijn-klantendienst", "de-lijn"))
    m = match_message(f, Found(identity=cases)).match
    assert (m.case_id, m.evidence[0].method, m.score) == (2, "agency-forward", 90.0)


def test_agency_forward_to_the_only_open_case_without_agency():
    """With one open case whose agency is unknown, a forwarded agency letter joins it."""
    f = facts(kind=Kind.AGENCY_FORWARD, body="Uw aanvraag is in behandeling.", forward_agencies=("agodi",))
    assert match_message(f, Found(identity=[case()])).match.case_id == 1


FOR_FATIMA = "Ik schrijf namens mevrouw Fatima El Amrani: de VDAB stopte haar begeleiding zonder reden."


def test_agency_forward_addressed_to_someone_else_is_not_joined_for_the_agency_alone():
    """A forwarded VDAB letter addressed to another person does not join the sender's case
    about VDAB: a new case for triage naming it. Addressed to the citizen, to the citizen's
    name at another address, or to the person the case is written for, it joins."""
    vdab = case(subject="Klacht VDAB begeleiding", body=FOR_FATIMA, agencies=("vdab",))

    def forward(to: Address) -> MessageFacts:
        return facts(kind=Kind.AGENCY_FORWARD, subject="Fwd: Beslissing", body="Geachte, u was afwezig.",
                     forward_agencies=("vdab",), forward_to=(to,))

    other = match_message(forward(Address("", "bram.hermans@example.be")), Found(identity=[vdab])).match
    assert other.case_id is None and other.needs_triage
    assert other.candidates[0].method == "agency-forward" and other.candidates[0].detail.startswith(vdab.ref)
    for to in (Address("", SOFIE.email), Address("Sofie Maes", "sofie@work.example"),
               Address("", "fatima.elamrani@example.be"), Address("Fatima El Amrani", "f@example.be")):
        assert match_message(forward(to), Found(identity=[vdab])).match.case_id == 1, to


def test_agency_forward_addressed_to_someone_else_joins_on_its_text():
    """Someone else's letter whose text is the case's (a copy of the complaint) still joins."""
    f = facts(kind=Kind.AGENCY_FORWARD, body=STUDIE, forward_agencies=("agodi",),
              forward_to=(Address("", "someone.else@example.be"),))
    m = match_message(f, Found(identity=[case(agencies=("agodi",))])).match
    assert m.case_id == 1 and m.evidence[0].method == "agency-forward"


def test_cases_opened_long_after_the_mail_are_not_its_case_by_identity_or_text():
    """An old mail (an import) is not joined to, nor a duplicate of, a case opened more than
    the duplicate window after it was received; by our reference it still is. Within the
    window it is (an archive is not in date order)."""
    later, other = case(age_days=-40), case(2, email="other@example.be", age_days=-40)
    m = match_message(facts(), Found(identity=[later], similar=[other])).match
    assert m.case_id is None and not m.flags and not m.needs_triage
    assert match_message(facts(), Found(by_reference=[later])).match.case_id == 1
    assert match_message(facts(), Found(identity=[case(age_days=-20)])).match.case_id == 1


def test_agency_reference_joins_for_the_citizen_and_not_for_a_stranger():
    """An agency file number remembered on a case threads the citizen's mail; a stranger's is triaged."""
    found = Found(by_agency_ref=[("de-lijn:DL-2026417", case())])
    assert match_message(facts(body="Is er nieuws?"), found).match.evidence[0].method == "agency-reference"
    stranger = match_message(facts(sender=Address("", "x@example.org"), body="Is er nieuws?"), found).match
    assert stranger.case_id is None and stranger.needs_triage


def test_status_request_joins_the_only_open_case():
    """A status request from the address of the citizen's only open case joins it."""
    f = facts(kind=Kind.STATUS_REQUEST, subject="Stand van zaken", body="Wat is de stand van zaken?")
    assert match_message(f, Found(identity=[case()])).match.case_id == 1


def test_resubmission_within_window_joins_as_possible_duplicate():
    """A reworded resubmission within the window joins the first case flagged possible_duplicate."""
    m = match_message(facts(subject="Nog altijd geen beslissing", body=REWORDED), Found(identity=[case()])).match
    assert m.case_id == 1 and "possible_duplicate" in m.flags and m.duplicate_of_id == 1
    assert m.duplicate_of_ref == case().ref
    assert m.evidence[0].method == "fuzzy" and m.score >= Policy().fuzzy_threshold


def test_similar_mail_after_the_window_is_a_plain_follow_up():
    """Past the duplicate window a similar mail still joins, without possible_duplicate."""
    m = match_message(facts(body=REWORDED), Found(identity=[case(age_days=90)])).match
    assert m.case_id == 1 and "possible_duplicate" not in m.flags


def test_unrelated_complaint_of_the_same_citizen_is_a_new_case():
    """Another complaint of the same citizen gets a new case, not flagged for triage."""
    m = match_message(facts(subject="Boete tram", body=TRAM), Found(identity=[case()])).match
    assert m.case_id is None and not m.needs_triage and not m.flags


def test_uncertain_similarity_is_listed_for_triage():
    """Between triage_threshold and fuzzy_threshold: a new case flagged needs_triage with the candidate."""
    policy = Policy(fuzzy_threshold=99.0, triage_threshold=60.0)
    m = match_message(facts(body=REWORDED), Found(identity=[case()]), policy).match
    assert m.case_id is None and m.needs_triage and m.candidates[0].method == "fuzzy"


def test_similar_to_a_closed_case_is_triaged_not_joined():
    """A resubmission about a closed case opens a new case for staff to decide on reopening."""
    m = match_message(facts(body=REWORDED), Found(identity=[case(status="closed")])).match
    assert m.case_id is None and m.needs_triage


def test_same_text_from_another_address_is_a_new_flagged_case():
    """Near-identical text from another address: a new case flagged possible_duplicate with duplicate_of."""
    other = facts(sender=Address("Sofie M.", "sofie73@gmail.example"))
    m = match_message(other, Found(similar=[case()])).match
    assert m.case_id is None and "possible_duplicate" in m.flags and m.duplicate_of_id == 1
    assert m.duplicate_of_ref == case().ref  # for the review event, without another query


def test_same_text_about_different_agencies_is_not_a_duplicate():
    """Another address, the same text, but the two complaints name different agencies: no
    possible_duplicate. About the same agency, or one names none: flagged."""
    other = facts(sender=Address("", "sofie73@gmail.example"), agencies=("vdab",))
    assert match_message(other, Found(similar=[case(agencies=("de-lijn",))])).match.duplicate_of_id is None
    for agencies in (("vdab", "de-lijn"), ()):
        assert match_message(other, Found(similar=[case(agencies=agencies)])).match.duplicate_of_id == 1


def test_duplicate_across_citizens_is_judged_on_their_own_words():
    """The same forwarded letter with different notes of two citizens is no duplicate: what
    counts is what each wrote, on the message's side and on the case's."""
    letter = STUDIE  # stands for a standard letter both forwarded
    note = facts(sender=Address("", "koen@example.be"), body=f"Wat moet ik hiermee? {letter}",
                 own_subject="", own_body=body_key("Wat moet ik hiermee? Mijn dochter is ingeschreven."))
    assert match_message(note, Found(similar=[case()])).match.duplicate_of_id is None
    stored = replace(case(), text=match_text(subject_key("Klacht studietoelage"), body_key(letter),
                                             body_key("Zie hieronder, mijn zoon zit wel op school.")))
    other = facts(sender=Address("", "koen@example.be"))
    assert match_message(other, Found(similar=[stored])).match.duplicate_of_id is None
    [(_, _, own)] = own_scores(*note.own, [stored.text])
    assert own < Policy().triage_threshold


def test_similar_complaint_of_the_same_name_from_another_address_is_triaged():
    """Same name, another address, similar text but no duplicate: a new case flagged
    needs_triage listing that case; another name is not listed."""
    work = facts(sender=Address("Sofie Maes", "sofie@work.example"), body=REWORDED)
    m = match_message(work, Found(identity=[case(age_days=60)])).match
    assert m.case_id is None and m.needs_triage and not m.flags
    assert m.candidates[0].detail.startswith("VO-2026-000001: same name, other address")
    stranger = facts(sender=Address("Piet Claes", "piet@example.org"), body=REWORDED)
    assert not match_message(stranger, Found(similar=[case(age_days=60)])).match.needs_triage


def test_referral_joins_the_citizens_case_as_multi_addressed():
    """A referral whose citizen already wrote to us joins that case, multi_addressed, referrer in also_sent_to."""
    f = facts(sender=Address("", "ombudsdienst@stad.gent"), identity=SOFIE, referred_by="ombudsdienst-gent",
              sender_is_service=True)
    m = match_message(f, Found(identity=[case()])).match
    assert m.case_id == 1 and "multi_addressed" in m.flags and m.also_sent_to == ("ombudsdienst-gent",)


def test_new_referral_is_the_citizens_case():
    """A referral about a new complaint opens a case for the citizen, flagged referred_by."""
    f = facts(sender=Address("", "ombudsdienst@stad.gent"), identity=SOFIE, referred_by="ombudsdienst-gent",
              sender_is_service=True)
    m = match_message(f, Found()).match
    assert m.case_id is None and m.citizen == SOFIE and m.flags == ("referred_by",)
    assert m.also_sent_to == ("ombudsdienst-gent",)


NEWS = "Gisteren kreeg ik een brief met een nieuwe weigering. Ik stuur hem mee in bijlage."


def test_follow_up_with_the_subject_of_the_only_open_case_joins_it():
    """A "Re: <case subject>" from the address of the citizen's only open case joins it, however
    different its body, as a follow-up (not a possible duplicate)."""
    f = facts(subject="Re: Klacht over mijn studietoelage", body=NEWS)
    m = match_message(f, Found(identity=[case(subject="Klacht over mijn studietoelage")])).match
    assert m.case_id == 1 and m.evidence[0].method == "identity" and m.score >= Policy().fuzzy_threshold
    assert "same subject" in m.evidence[0].detail and not m.flags


def test_same_subject_prefixes_are_ignored():
    """AW:, TR:, Fwd: and repeated prefixes count as the same subject; a typo still does."""
    for subject in ("AW: AW: Klacht studietoelage", "TR: klacht studietoelage", "Fwd: Klacht studietoelage"):
        assert match_message(facts(subject=subject, body=NEWS), Found(identity=[case()])).match.case_id == 1


def test_same_subject_joins_the_one_of_several_open_cases_that_has_it():
    """With two open cases, a "Re: <subject of one of them>" joins that one."""
    cases = [case(1), case(2, subject="Boete tram", body=TRAM)]
    m = match_message(facts(subject="Re: Klacht studietoelage", body=NEWS), Found(identity=cases)).match
    assert m.case_id == 1 and m.evidence[0].method == "identity"
    assert "the only one of the citizen's 2 open cases with this subject" in m.evidence[0].detail


def test_same_subject_does_not_choose_between_open_cases_sharing_it():
    """When two open cases have the subject, it does not say which: a new case."""
    cases = [case(1), case(2, body=TRAM)]
    m = match_message(facts(subject="Re: Klacht studietoelage", body=NEWS), Found(identity=cases)).match
    assert m.case_id is None


def test_generic_or_empty_subject_does_not_join():
    """A generic subject ("klacht", "vraag", "Mijn klacht") or none proves nothing."""
    for subject in ("Klacht", "Vraag", "Mijn klacht", "Plainte", ""):
        m = match_message(facts(subject=f"Re: {subject}", body=NEWS),
                          Found(identity=[case(subject=subject)])).match
        assert m.case_id is None, subject


def test_same_subject_needs_the_citizens_own_open_case_and_address():
    """Closed case, another sender, or a referral: the same subject does not join."""
    f = facts(subject="Re: Klacht studietoelage", body=NEWS)
    assert match_message(f, Found(identity=[case(status="closed")])).match.case_id is None
    other = facts(sender=Address("Sofie Maes", "sofie73@gmail.example"), subject="Re: Klacht studietoelage",
                  body=NEWS)
    assert match_message(other, Found(identity=[case()])).match.case_id is None
    referral = facts(sender=Address("", "ombudsdienst@stad.gent"), identity=SOFIE, body=NEWS,
                     referred_by="ombudsdienst-gent", sender_is_service=True)
    assert match_message(referral, Found(identity=[case()])).match.case_id is None


def test_same_subject_below_a_stricter_threshold_is_triaged():
    """When the office sets fuzzy_threshold above the same-subject score, the case is listed for triage."""
    m = match_message(facts(subject="Re: Klacht studietoelage", body=NEWS), Found(identity=[case()]),
                      Policy(fuzzy_threshold=90.0)).match
    assert m.case_id is None and m.needs_triage and m.candidates[0].method == "identity"


def test_specific_and_same_subject():
    """A subject is specific with six letters outside the generic words; equality is whole-string."""
    assert not specific_subject(subject_key("Mijn klacht")) and not specific_subject("")
    assert specific_subject(subject_key("Klacht over VDAB uitkering"))
    assert same_subject(subject_key("klacht"), case(subject="Klacht studietoelage").text) == 0.0
    assert same_subject(subject_key("Studietoelage"), case(subject="Klacht studietoelage").text) < 90


def test_no_address_identity_never_joins_cases_without_address():
    """A complainant without an address (a referral naming only the citizen) matches no case
    whose citizen address is empty either."""
    f = facts(sender=Address("", "ombudsdienst@stad.gent"), identity=Address("Sofie Maes", ""),
              referred_by="ombudsdienst-gent", sender_is_service=True)
    m = match_message(f, Found(identity=[case(email="")])).match
    assert m.case_id is None


def test_short_mail_is_not_a_subset_match():
    """A three-word mail whose words all occur in a case does not score as identical."""
    [(_, _, score)] = text_scores("vraag", body_key("studietoelage dossier maart"),
                                  [case().text])
    assert score < Policy().triage_threshold


def test_normalisation_removes_prefixes_references_and_accents():
    """Subjects lose Re/Fwd/TR prefixes, [tags] and references; names become sorted folded words."""
    from mailbot.match import reference_pattern

    assert subject_key("RE: TR: [VO-2026-000001] Décision sur ma prime", reference_pattern("VO")) == \
        "decision prime"
    assert name_key("Peeters, Jan") == name_key("jan PEETERS") == "jan peeters"
    assert name_key("Jan") == ""


def test_stored_text_keeps_the_complainants_own_words_apart():
    """A case's match_text has a third line with the complainant's own words only when they
    are not the whole body; a text stored without it is all the complainant's."""
    assert match_text("s", "a b c", "a b c") == match_text("s", "a b c") == "s\na b c"
    assert split_match_text(match_text("s", "note letter", "note")) == ("s", "note letter", "note")
    assert split_match_text(match_text("s", "letter", "")) == ("s", "letter", "")
    assert split_match_text("s\nbody") == ("s", "body", "body")
    assert text_scores("s", "note letter", [match_text("s", "note letter", "note")])[0][1] == 100.0


def test_web_form_answer_is_the_longest_field():
    """A web form's own words: the longest answer, on the label's line or in the paragraphs
    below it up to a paragraph with field lines (the consent footer); a text without fields whole."""
    form = ("Naam: An Janssens\nAdres: Kerkstraat 5, 9000 Gent\nBetrokken dienst: De Lijn\n\nUw klacht:\n"
            "Geachte,\n\nDe bus 58 rijdt niet meer langs onze halte.\n\n"
            "Dit bericht werd verstuurd via het klachtenformulier op https://www.example.be/form.\n"
            "Toestemming verwerking persoonsgegevens: ja\n")
    assert longest_answer(form) == "Geachte,\n\nDe bus 58 rijdt niet meer langs onze halte."
    assert longest_answer("Klacht: de bus rijdt niet\nNaam: An") == "de bus rijdt niet"
    assert longest_answer("Uw klacht:\n\nTekst van de robot.\nNaam: An Janssens") == "An Janssens"
    plain = "Gewoon een mail, zie https://www.example.be."
    assert longest_answer(plain) == plain


def test_minhash_bands_are_stable_and_shared_by_near_duplicates():
    """The same text gives the same band keys in every process; a lightly edited copy shares one."""
    keys = lsh_keys(body_key(STUDIE))
    assert len(keys) == 5 and keys == lsh_keys(body_key(STUDIE))
    edited = lsh_keys(body_key(STUDIE.replace("twee keer", "drie keer")))
    assert set(keys) & set(edited)
    assert not set(keys) & set(lsh_keys(body_key(TRAM)))
