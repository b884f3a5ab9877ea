"""How a referral reply tells the citizen where to go: the service's contact details, its
name and website in the reply's language, the templates' fallback line when none are known,
and the `rules check` warning about a referral target without any contact details."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mailbot.compose import strip_reply_markers
from mailbot.model import Address, Mail
from mailbot.render import LANGUAGES, Renderer
from mailbot.route import Routing
from mailbot.routing_stage import RoutingStage
from mailbot.rules import RulesInvalid, load_rules, rules_from_texts
from mailbot.rules_check import check_contents, check_dir
from mailbot.services import Service, services_in_text
from mailbot.template_vars import sample_context

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "rules"
TEMPLATES = REPO / "templates"
PEOPLE = "teams: [{id: t, name: T}]\ninvestigators: [{name: An, email: an@office.example, team: t}]\n"

SERVICES = """services:
  - id: fed
    name: Federale Ombudsman
    names: {fr: Médiateur fédéral, de: Föderaler Ombudsmann}
    kind: ombudsman
    competent: false
    contact: https://www.federaalombudsman.be
    websites: {fr: https://www.mediateurfederal.be}
    phone: 0800 99 961
  - {id: gent, name: Ombudsdienst Gent, kind: ombudsman, competent: false}
  - {id: wonen, name: Wonen in Vlaanderen, kind: agency}
  - {id: vdab, name: VDAB, kind: agency, contact: https://www.vdab.be}
  - {id: fin, name: FOD Financien, names: {en: FPS Finance}, kind: agency, competent: false, refer_to: fed}
"""


def _check(routing: str, services: str = SERVICES):
    contents = {"services.yaml": services.encode(), "routing.yaml": ("rules:\n" + routing).encode(),
                "investigators.yaml": PEOPLE.encode()}
    if not routing:
        contents["routing.yaml"] = b"rules: []\n"
    return check_contents(contents, label="rules")


def _service(**fields: object) -> Service:
    return Service.model_validate({"id": "s", "name": "Dienst", "kind": "ombudsman", "competent": False, **fields})


# ------------------------------------------------------------------------ the services model

def test_name_and_website_follow_the_reply_language_with_fallbacks() -> None:
    """`names`/`websites` give the official name and site per language; other languages use
    `name` and the website in `contact`; a postal address in `contact` is no website."""
    service = _service(names={"fr": "Service", "de": "Dienststelle"}, contact="https://nl.example",
                       websites={"fr": "https://fr.example"}, phone="0800 00 000")
    assert [service.name_in(lang) for lang in ("nl", "fr", "en", "de", "xx")] == [
        "Dienst", "Service", "Dienst", "Dienststelle", "Dienst"]
    assert [service.website_in(lang) for lang in ("nl", "fr", "en")] == [
        "https://nl.example", "https://fr.example", "https://nl.example"]
    assert _service(contact="Leuvenseweg 48, 1000 Brussel").website_in("nl") == ""


def test_has_contact_counts_every_way_to_reach_the_service() -> None:
    """A contact, a phone, a website in any language or an address each count; a name does not."""
    assert not _service(names={"fr": "Service"}).has_contact
    for fields in ({"contact": "Straat 1, 1000 Brussel"}, {"phone": "1700"},
                   {"websites": {"de": "https://de.example"}}, {"addresses": ["info@dienst.example"]}):
        assert _service(**fields).has_contact, fields


@pytest.mark.parametrize("fields, message", [
    ({"contact": "https://www.delijn.be (klantendienst)"}, "a website is the address alone"),
    ({"websites": {"fr": "www.mediateurfederal.be"}}, "is not a website address"),
    ({"names": {"fr": " "}}, "a name may not be empty"),
])
def test_malformed_contact_data_is_refused(fields: dict[str, object], message: str) -> None:
    """A website with a note after it (it would become a broken link), a website without
    http(s)://, and an empty localised name are refused at load."""
    with pytest.raises(ValueError, match=message):
        _service(**fields)


def test_an_unknown_language_is_reported_at_its_line_with_a_suggestion() -> None:
    """`names: {fre: …}` is a typo for a language: reported at its line, `fr` suggested."""
    services = SERVICES.replace("names: {fr: Médiateur fédéral, de:", "names: {fre: Médiateur fédéral, de:")
    result = _check("", services)
    assert result.problems == ["rules/services.yaml:4: service 'fed': unknown language 'fre' (did you mean 'fr'?)"]


def test_localised_names_are_found_in_a_text() -> None:
    """A citizen writing in English names the service by its English name: it is detected."""
    ruleset = rules_from_texts(services=SERVICES, investigators=PEOPLE)
    assert [s.id for s in services_in_text(ruleset, "The FPS Finance never answered.")] == ["fin"]


# ----------------------------------------------------------------- the context of the reply

@pytest.fixture(scope="module")
def stage() -> RoutingStage:
    return RoutingStage(SHIPPED)


def test_referral_names_the_service_and_its_site_in_the_replys_language(stage: RoutingStage) -> None:
    """refer_ombudsman: the French reply names the Médiateur fédéral with its French site; the
    Dutch one the Federale Ombudsman; both give the free phone number."""
    routing = Routing(outcome="refer_ombudsman", template="referred_ombudsman", refer_to="federale-ombudsman")
    fr, nl, de = (stage.template_context(routing, lang)["service"] for lang in ("fr", "nl", "de"))
    assert (fr["name"], fr["website"], fr["phone"]) == (
        "Médiateur fédéral", "https://www.mediateurfederal.be", "0800 99 961")
    assert (nl["name"], nl["website"]) == ("Federale Ombudsman", "https://www.federaalombudsman.be")
    assert (de["name"], de["website"]) == ("Föderaler Ombudsmann", "https://www.federaalombudsman.be")


def test_flemish_agencies_keep_their_dutch_names(stage: RoutingStage) -> None:
    """refer_agency in a French reply: Wonen in Vlaanderen stays Wonen in Vlaanderen, with its site."""
    routing = Routing(outcome="refer_agency", template="referred_agency", refer_to="wonen-vlaanderen")
    agency = stage.template_context(routing, "fr")["agency"]
    assert (agency["name"], agency["website"]) == ("Wonen in Vlaanderen", "https://www.wonenvlaanderen.be")


def test_detected_ombudsman_services_are_listed_in_the_replys_language(stage: RoutingStage) -> None:
    """The `services` list (multi_addressed) names each ombudsman service in the reply's language."""
    routing = Routing(services=("federale-ombudsman", "wonen-vlaanderen", "kinderrechtencommissariaat"))
    assert stage.template_context(routing, "en")["services"] == ["Federal Ombudsman", "Kinderrechtencommissariaat"]


def test_referred_by_names_the_forwarding_ombudsman_only_for_a_referral(stage: RoutingStage) -> None:
    """`referred_by` is the ombudsman service that sent the mail, when the mail is flagged a
    referral; a citizen's own mail, or a flagged mail from an agency, gets none."""
    federal = Mail(message_id="m", subject="FW: klacht", from_=Address("", "contact@federaalombudsman.be"))
    assert stage.referral_context(federal, {"referred_by"}, "de")["referred_by"]["name"] == "Föderaler Ombudsmann"
    assert stage.referral_context(federal, set(), "de") == {}
    agency = Mail(message_id="m", subject="FW: klacht", from_=Address("", "info@vdab.be"))
    assert stage.referral_context(agency, {"referred_by"}, "nl") == {}


# ------------------------------------------------------------------------------ the templates

@pytest.mark.parametrize("name, variable, fallback", [
    ("referred_agency", "agency", "1700"), ("referred_ombudsman", "service", "www.ombudsman.be")])
def test_a_referral_without_contact_details_says_where_to_look(name: str, variable: str, fallback: str) -> None:
    """With no e-mail, phone, website or address, every language points to 1700/vlaanderen.be
    (an agency) or www.ombudsman.be (an ombudsman service); with details, the line is left out."""
    renderer = Renderer(TEMPLATES)
    for lang in LANGUAGES:
        context = sample_context(name)
        context[variable] = {"name": "Dienst X", "email": "", "phone": "", "website": "", "address": ""}
        bare = renderer.render(name, lang, context)
        assert fallback in bare.text and fallback in bare.html, lang
        if name == "referred_agency":
            assert "www.vlaanderen.be" in bare.text, lang
        full = renderer.render(name, lang, sample_context(name))
        assert fallback not in full.text.replace(sample_context(name)[variable]["phone"], ""), lang


ACK_SENTENCES = {
    "nl": ("Een andere ombudsdienst (Federale Ombudsman) heeft uw klacht aan ons", "niet\nopnieuw in te dienen"),
    "fr": ("Un autre service de médiation (Médiateur fédéral) nous a transmis", "n'avez pas besoin"),
    "en": ("Another ombudsman service (Federal Ombudsman) has passed your", "You do not need to"),
    "de": ("Eine andere Ombudsstelle (Föderaler Ombudsmann) hat uns Ihre Beschwerde", "nicht erneut einzureichen"),
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_acknowledgment_of_a_referral_says_who_forwarded_it(lang: str) -> None:
    """ack_investigation with `referred_by`: who passed the complaint on and that the citizen
    need not submit it again, in text and HTML; without it, no such sentence."""
    renderer = Renderer(TEMPLATES)
    context = sample_context("ack_investigation")
    names = {"nl": "Federale Ombudsman", "fr": "Médiateur fédéral", "en": "Federal Ombudsman",
             "de": "Föderaler Ombudsmann"}
    context["referred_by"] = {"name": names[lang], "email": "", "phone": "", "website": "", "address": ""}
    rendered = renderer.render("ack_investigation", lang, context)
    who, again = ACK_SENTENCES[lang]
    assert who in rendered.text and again in rendered.text
    assert names[lang] in rendered.html
    plain = renderer.render("ack_investigation", lang, sample_context("ack_investigation"))
    assert names[lang] not in plain.text and again.split("\n")[-1] not in plain.text


def test_forward_markers_of_our_four_languages_are_stripped() -> None:
    """`Doorgestuurd:`, `Weitergeleitet:`, `Transféré :` and `TR:` are forward markers, also stacked;
    a word that merely starts like one is kept."""
    assert strip_reply_markers("Doorgestuurd: klacht over schooltoelage") == "klacht over schooltoelage"
    assert strip_reply_markers("WG: Weitergeleitet: Beschwerde") == "Beschwerde"
    assert strip_reply_markers("Transféré : TR: plainte") == "plainte"
    assert strip_reply_markers("Doorgestuurde post kwijt") == "Doorgestuurde post kwijt"


# ------------------------------------------------------------------------------ rules check

def test_a_referral_target_without_contact_details_is_a_warning() -> None:
    """An explicit refer_ombudsman to a service with no contact, phone, website or address is
    accepted with a warning at the service's line naming the rule; `rules check` shows it."""
    result = _check("  - {name: gent-rule, then: {refer_ombudsman: gent}}\n")
    assert result.ruleset is not None and result.problems == []
    assert result.warnings == [
        "rules/services.yaml:10: service 'gent': no contact, website, phone or address, yet rule 'gent-rule' can "
        "refer citizens to it: the reply can only point to www.ombudsman.be (add contact: https://… and/or phone)"]
    assert result.summary.startswith("warning: rules/services.yaml:10: service 'gent': no contact")
    assert result.summary.splitlines()[-1].startswith("rules OK: ")


def test_detected_referrals_are_checked_against_what_their_condition_lets_through() -> None:
    """`refer_agency: detected` can point at any agency the rule's service condition allows:
    Wonen in Vlaanderen (no contact) is warned about; VDAB (a website) and FOD Financiën (not
    competent, excluded by the condition) are not. A disabled rule refers nobody."""
    rule = "  - {name: first, when: {service: {kind: [agency], competent: true}}, then: {refer_agency: detected}}\n"
    [warning] = _check(rule).warnings
    assert warning.startswith("rules/services.yaml:11: service 'wonen': no contact")
    assert "rule 'first'" in warning and "1700 and www.vlaanderen.be" in warning
    assert _check(rule.replace("{name: first,", "{name: first, enabled: false,")).warnings == []
    ombudsman = "  - {name: any, then: {refer_ombudsman: detected}}\n"  # every referral target
    assert [w.split(":")[2] for w in _check(ombudsman).warnings] == [" service 'gent'"]


def test_a_service_with_contact_details_gives_no_warning() -> None:
    """Once the service has a phone, the same rule is accepted without a warning."""
    services = SERVICES.replace("{id: gent, name: Ombudsdienst Gent,", "{id: gent, phone: '09 000 00 00', "
                                                                        "name: Ombudsdienst Gent,")
    result = _check("  - {name: gent-rule, then: {refer_ombudsman: gent}}\n", services)
    assert result.warnings == [] and result.summary.startswith("rules OK: ")


def test_every_shipped_referral_target_can_be_reached() -> None:
    """The shipped rules load without warnings: every ombudsman service and every Flemish agency
    a referral rule can point at has contact details (and the shipped websites are bare URLs)."""
    result = check_dir(SHIPPED)
    assert result.problems == [] and result.warnings == []
    ruleset = load_rules(SHIPPED)
    for service in ruleset.services:
        if service.kind == "ombudsman" or (service.kind == "agency" and service.competent):
            assert service.has_contact, service.id


def test_official_names_of_the_shipped_federal_ombudsman() -> None:
    """The Federal Ombudsman has its official name in fr, en and de and its French website."""
    federal = load_rules(SHIPPED).service("federale-ombudsman")
    assert federal is not None
    assert [federal.name_in(lang) for lang in LANGUAGES] == [
        "Federale Ombudsman", "Médiateur fédéral", "Federal Ombudsman", "Föderaler Ombudsmann"]
    assert federal.website_in("fr") == "https://www.mediateurfederal.be"


def test_rules_invalid_still_lists_problems_not_warnings() -> None:
    """Warnings never stop loading; a real problem still does."""
    with pytest.raises(RulesInvalid):
        rules_from_texts(services=SERVICES, investigators=PEOPLE,
                         routing="rules:\n  - {name: r, then: {refer_ombudsman: nowhere}}\n")
    rules_from_texts(services=SERVICES, investigators=PEOPLE,
                     routing="rules:\n  - {name: r, then: {refer_ombudsman: gent}}\n")


def test_the_agency_in_cc_reminder_names_the_agency_in_the_citizens_language(make_app, sqlite_url):
    """A French complaint with the SNCB in Cc: the reminder says SNCB, not NMBS."""
    from sqlalchemy import select

    from conftest import complaint
    from mailbot.db import Outbox
    from mailbot.pipeline import process_files

    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint(
        sender="claire.dupont@example.be", name="Claire Dupont", subject="Plainte remboursement abonnement",
        to="klachten@vlaamseombudsdienst.be", extra_headers="Cc: SNCB <klantendienst@belgiantrain.be>\r\n",
        body="Madame, Monsieur,\n\nJ'ai déjà écrit plusieurs fois au service clientèle de la SNCB pour le "
             "remboursement de mon abonnement, sans aucune réponse depuis trois mois.\n\nClaire Dupont\n")])
    with app.sessions() as session:
        mimes = session.execute(select(Outbox.mime).where(Outbox.template == "agency_in_cc")).scalars().all()
    assert len(mimes) == 1
    text = email.message_from_bytes(mimes[0], policy=email.policy.default).get_body(("plain",)).get_content()
    assert "SNCB" in text and "NMBS" not in text
