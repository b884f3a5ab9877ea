"""Look-ups in the services directory: addresses, domains, names in text, agency file numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mailbot.conditions import fold
from mailbot.model import Address, ForwardedMessage, Mail
from mailbot.rules import RuleSet, rules_from_texts
from mailbot.services import (
    _alias_patterns, agency_references, detect_services, service_for_address, services_in_text,
)

SERVICES = """
services:
  - id: de-lijn
    name: De Lijn
    kind: agency
    aliases: [vvm de lijn]
    domains: [delijn.be]
    reference_pattern: '\\b(?P<ref>DL-\\d{6})\\b'
  - id: de-lijn-klantendienst
    name: Klantendienst De Lijn
    kind: first_line
    addresses: [Klantendienst@DeLijn.be]
  - id: fod-financien
    name: FOD Financiën
    kind: agency
    aliases: [spf finances]
    domains: [minfin.fed.be]
    competent: false
    refer_to: federale-ombudsman
    reference_pattern: 'FIN/\\d{4}'
  - id: federale-ombudsman
    name: Federale Ombudsman
    kind: ombudsman
    domains: [federaalombudsman.be]
    competent: false
"""


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return rules_from_texts(services=SERVICES)


def test_exact_address_wins_over_domain(ruleset: RuleSet) -> None:
    """An address listed for a service is matched before another service's domain, in any case."""
    assert service_for_address(ruleset, "KLANTENDIENST@delijn.be").id == "de-lijn-klantendienst"
    assert service_for_address(ruleset, "info@delijn.be").id == "de-lijn"


def test_subdomains_belong_to_the_domain(ruleset: RuleSet) -> None:
    """A subdomain of a listed domain belongs to the service; a look-alike domain does not."""
    assert service_for_address(ruleset, "x@mail.delijn.be").id == "de-lijn"
    assert service_for_address(ruleset, "x@notdelijn.be") is None
    assert service_for_address(ruleset, "x@delijn.be.example") is None
    assert service_for_address(ruleset, "") is None


def test_names_in_text_whole_words_accents_and_order(ruleset: RuleSet) -> None:
    """Names and aliases are found as whole words, ignoring case and accents, in order of mention."""
    text = "Eerst schreef ik de FOD Financien, daarna de lijn en de federale ombudsman."
    assert [s.id for s in services_in_text(ruleset, text)] == ["fod-financien", "de-lijn", "federale-ombudsman"]
    assert services_in_text(ruleset, "delijnen en vvmdelijn") == ()


def test_agency_references_use_the_ref_group_or_the_whole_match(ruleset: RuleSet) -> None:
    """File numbers are found per service, the `ref` group when the pattern has one, without repeats."""
    text = "Uw dossier DL-123456 (zie ook DL-123456) en fin/2024."
    assert agency_references(ruleset, text) == (("de-lijn", "DL-123456"), ("fod-financien", "fin/2024"))


def test_detect_services_records_where_each_was_seen(ruleset: RuleSet) -> None:
    """Detection covers sender, To, Cc, forwarded senders, names in the text and file numbers."""
    mail = Mail(
        message_id="m1", subject="Klacht", from_=Address("", "burger@example.org"),
        to=(Address("", "klachten@vlaamseombudsdienst.be"), Address("", "info@federaalombudsman.be")),
        cc=(Address("", "klantendienst@delijn.be"),),
        forwarded=(ForwardedMessage(sender=Address("", "noreply@minfin.fed.be"), date=None, subject="", body=""),),
        text="Dossier DL-654321 bij De Lijn.",
    )
    seen = [(d.service.id, d.where) for d in detect_services(ruleset, mail)]
    assert seen == [("federale-ombudsman", "to"), ("de-lijn-klantendienst", "cc"),
                    ("fod-financien", "forwarded"), ("de-lijn", "text"), ("de-lijn", "reference")]


def test_referral_target_of_services(ruleset: RuleSet) -> None:
    """A non-competent agency refers to its refer_to; an ombudsman to itself; a competent one nowhere."""
    assert ruleset.service("fod-financien").referral_target == "federale-ombudsman"
    assert ruleset.service("federale-ombudsman").referral_target == "federale-ombudsman"
    assert ruleset.service("de-lijn").referral_target is None


@given(st.lists(st.sampled_from(["de", "lijn", "De Lijn", "vvm", "VVM De Lijn", "klantendienst", "fod",
                                 "financiën", "Financien", "spf finances", "federale", "ombudsman", "x",
                                 "-", ".", "/", "delijn", "lijnen", "é", "\u0301", "\n"]), max_size=12),
       st.lists(st.sampled_from([" ", "", "-", ", ", "\t"]), min_size=12, max_size=12))
@settings(max_examples=300, deadline=None)
def test_word_prefilter_finds_what_a_full_scan_finds(pieces: list[str], gaps: list[str]) -> None:
    """Skipping services none of whose names can start in the text changes no answer."""
    ruleset = rules_from_texts(services=SERVICES)
    text = "".join(piece + gap for piece, gap in zip(pieces, gaps))
    folded = fold(text)
    full = sorted(((hit.start(), order, service.id)
                   for order, (service, pattern, _) in enumerate(_alias_patterns(ruleset))
                   if (hit := pattern.search(folded))), key=lambda f: (f[0], f[1]))
    assert [s.id for s in services_in_text(ruleset, text)] == [sid for _, _, sid in full]
