"""Loose ends of the staff notice, the rules and the digest: a staff notice that does not leave
is listed apart from the citizens' replies; `rules explain` shows the notices a mail would
cause; a reload asks every configured language of the templates, as `rules check` does; the
digest says whether a refused reload was recovered and, every day until fixed, that the files
on disk are still refused; a web form's phone field is the citizen's contact phone."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import REPO, base_config, complaint
from helpers import append_all, imap_config
from mailbot import digest
from mailbot.cli import cli
from mailbot.db import Case, Event, Outbox
from mailbot.digest_data import collect
from mailbot.explain import explain, explain_text
from mailbot.pipeline import process_files
from mailbot.render import Renderer
from mailbot.routing_stage import RoutingStage

INTAKE = "intake@vlaamseombudsdienst.example"  # rules/routing.yaml, rule urgent-situation
OFFICE = "klachten@vlaamseombudsdienst.be"  # conftest's smtp.from_address
FORM = "formulier@vlaamseombudsdienst.be"
BRUSSELS = ZoneInfo("Europe/Brussels")
URGENT_BODY = ("Geachte,\n\nMorgen worden wij uit onze woning gezet door de sociale huisvestingsmaatschappij.\n"
               "Wij hebben drie kinderen en weten niet waar naartoe.\n\nMet vriendelijke groeten,\nJan Peeters")
DMARC_FAIL = "Authentication-Results: mx.vlaamseombudsdienst.be; dmarc=fail (p=none) header.from=example.be\r\n"
NOTICES = "Meldingen aan medewerkers die niet vertrokken"
NOT_SENT = "Antwoorden die niet vertrekken en storingen: burgers kregen (nog) niets"
UNDELIVERABLE = "Onbestelbaar"
RULES_FAILED = "Routeringsregels niet herladen"


def urgent(**kwargs) -> bytes:
    return complaint(**{"subject": "Dringend: uithuiszetting morgen", "body": URGENT_BODY, **kwargs})


def today() -> date:
    return datetime.now(BRUSSELS).date()


def digest_text(app, day: date) -> str:
    with app.sessions() as session:
        return digest.render(app.settings, collect(session, app.settings, day)).text


def section(text: str, title: str) -> str:
    """The lines of the digest section with `title` (its items), up to the next section; ""
    when the digest has none."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{title} (")), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def ref_of(app, sender: str) -> str:
    with app.sessions() as session:
        return session.execute(select(Case.ref).where(Case.citizen_email == sender)).scalar_one()


# ------------------------------------------------------------------ 1: staff notices apart

def test_a_staff_notice_that_does_not_leave_is_listed_apart_from_the_citizens_replies(make_app, smtp_sink, db_url):
    """One notice refused by the server (failed), one deferred (waiting to be retried), and a
    citizen's acknowledgment deferred too: the notices are in their own section, with the
    command for the failed one; the citizens' sections list the citizen's reply only."""
    app = make_app(db_url=db_url, smtp={"port": smtp_sink.port, "concurrency": 1})
    # DMARC failed: no reply to the claimed sender, so the notice is the one mail out.
    process_files(app.intake, [urgent(sender="an.smet@example.be", name="An Smet", extra_headers=DMARC_FAIL)])
    smtp_sink.failures.append(f"550 5.1.1 <{INTAKE}>: Recipient address rejected")
    assert app.send_outbox().failed == 1
    process_files(app.intake, [urgent(sender="bert.claes@example.be", name="Bert Claes", extra_headers=DMARC_FAIL),
                               complaint(sender="carla.peeters@example.be", name="Carla Peeters")])
    smtp_sink.failures += ["451 4.3.0 Try again later"] * 2
    app.send_outbox()
    with app.sessions() as session:
        failed = session.execute(select(Outbox).where(Outbox.status == "failed")).scalar_one()
        waiting = dict(session.execute(select(Outbox.template, func.count()).where(
            Outbox.status == "pending", Outbox.last_error.is_not(None)).group_by(Outbox.template)).all())
    assert failed.template == "staff_notice" and waiting == {"staff_notice": 1, "ack_investigation": 1}

    text = digest_text(app, today())
    notices = section(text, NOTICES)
    assert notices.startswith(f"{NOTICES} (2)")
    for expected in (ref_of(app, "an.smet@example.be"), ref_of(app, "bert.claes@example.be"), f"aan: {INTAKE}",
                     f"mailbot outbox retry {failed.id}", "Dringend: uithuiszetting morgen"):
        assert expected in notices, expected
    citizens = section(text, NOT_SENT)
    assert ref_of(app, "carla.peeters@example.be") in citizens and INTAKE not in citizens
    assert INTAKE not in section(text, UNDELIVERABLE)
    assert f"    {NOTICES}: 2" in text  # counted among the decisions


# ------------------------------------------------------------------ 2: rules explain

def test_rules_explain_shows_the_staff_notices_without_sending_them(tmp_path, make_app, sqlite_url):
    """Two rules ask for the intake address, one also for our own address: explain names each
    address with the rules that asked, the notice's subject (its text with --show-reply), says
    our own address is skipped, and writes nothing."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    data = yaml.safe_load((rules / "routing.yaml").read_text())
    for rule in data["rules"]:
        if rule["name"] == "urgent-situation":
            rule["then"]["notify"] = [INTAKE, OFFICE]
        if rule["name"] == "anonymity-requested":
            rule["then"]["notify"] = [INTAKE.upper()]
    (rules / "routing.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    app = make_app(db_url=sqlite_url, rules_dir=str(rules), templates_dir=str(templates))
    raw = urgent(body=URGENT_BODY + "\n\nIk wil anoniem blijven tegenover de dienst.")

    result = explain(app, raw, show_reply=True)
    intake, own = result["staff_notices"]
    assert intake["to"] == INTAKE and intake["rules"] == ["urgent-situation", "anonymity-requested"]
    assert intake["subject"] == ("VO-2026-000001".join(("[", "] Melding: urgent-situation, anonymity-requested – "))
                                 + "Dringend: uithuiszetting morgen")
    assert "mailbot case show VO-2026-000001" in intake["text"] and "Prioriteit:   dringend" in intake["text"]
    assert own["to"] == OFFICE and own["rules"] == ["urgent-situation"] and "own addresses" in own["skipped"]
    lines = explain_text(result).splitlines()
    assert f"staff notice: to {INTAKE} (asked by urgent-situation, anonymity-requested)" in lines
    assert f"           subject: {intake['subject']}" in lines
    assert f"staff notice: to {OFFICE} (asked by urgent-situation)" in lines
    assert not any(line.startswith("staff notice") for line in explain_text(explain(app, complaint())).splitlines())
    with app.sessions() as session:
        assert session.execute(select(func.count()).select_from(Outbox)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Case)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() == 0


# ------------------------------------------------------------------ 3: the reload's languages

def _remove_language(templates, lang: str) -> None:
    for path in templates.rglob(f"{lang}.*.j2"):
        path.unlink()


def _stage(app, rules, templates, languages: tuple[str, ...]) -> RoutingStage:
    """The routing stage as `create_app` builds it, with config.yaml's languages."""
    return RoutingStage(rules, renderer=Renderer(templates), sessions=app.sessions,
                        timezone=app.settings.schedule.timezone, languages=languages)


def _reload(stage: RoutingStage) -> bool:
    stage.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
    return stage.reload_if_changed()


def _rules_check(tmp_path, rules, templates, languages: list[str]) -> int:
    config = tmp_path / f"config-{'-'.join(languages)}.yaml"
    config.write_text(yaml.safe_dump(base_config(rules_dir=str(rules), templates_dir=str(templates),
                                                 languages=languages)))
    return CliRunner().invoke(cli, ["--config", str(config), "rules", "check"], obj={}).exit_code


@pytest.mark.parametrize("configured", [["nl", "fr", "en", "de"], ["nl", "fr", "en"]], ids=["four", "three"])
def test_a_reload_refuses_what_rules_check_refuses_and_takes_what_it_takes(tmp_path, make_app, sqlite_url,
                                                                           configured):
    """French removed while French is configured: `rules check` refuses the folder and so does
    the running robot's reload (the French templates stay in force). German removed while
    German is not configured: `rules check` accepts it and so does the reload (before, the
    reload asked for every language's subject prefix and refused it)."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    app = make_app(db_url=sqlite_url, rules_dir=str(rules), templates_dir=str(templates), languages=configured)
    stage = _stage(app, rules, templates, tuple(configured))
    dropped = "de" if "de" not in configured else "fr"
    _remove_language(templates, dropped)

    accepted = _rules_check(tmp_path, rules, templates, configured) == 0
    swapped = _reload(stage)
    assert accepted == swapped == (dropped not in configured)
    assert (stage.last_error is None) == accepted
    assert (dropped in stage.renderer.languages("ack_investigation")) == (not accepted)  # the set in force
    if not accepted:
        assert f"ack_investigation/{dropped}.txt.j2:1: file missing" in (stage.last_error or "")


# ------------------------------------------------------------------ 4: refused reloads in the digest

def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BRUSSELS).astimezone(timezone.utc)


def test_a_refused_reload_says_whether_it_was_recovered_and_stays_listed_until_fixed(make_app, db_url):
    """Monday: refused at 09:00, taken again at 09:30 (a recorded reload), refused at 14:00 and
    not fixed that day. Tuesday: one line, the files are still refused since Monday 14:00.
    Fixed on Wednesday at 10:00: Wednesday's digest says nothing more."""
    app = make_app(db_url=db_url)
    monday = date(2026, 11, 23)
    events = [("rules_reload_failed", _at(monday, 9), "rules/routing.yaml:3: unknown key 'priorty'"),
              ("rules_reloaded", _at(monday, 9, 30), ""),
              ("rules_reload_failed", _at(monday, 14), "templates/status/nl.txt.j2:2: unexpected end of template"),
              ("rules_reloaded", _at(monday + timedelta(days=2), 10), "")]
    with app.sessions.begin() as session:
        for type_, at, error in events:
            session.add(Event(type=type_, detail={"error": error} if error else {}, created_at=at))

    first = section(digest_text(app, monday), RULES_FAILED)
    assert first.startswith(f"{RULES_FAILED} (2)")
    assert "geweigerd om 09:00; daarna hersteld om 09:30" in first
    assert "geweigerd om 14:00; aan het eind van de dag nog altijd geweigerd" in first
    tuesday = section(digest_text(app, monday + timedelta(days=1)), RULES_FAILED)
    assert tuesday.startswith(f"{RULES_FAILED} (1)")
    assert "nog altijd geweigerd (sinds 23-11-2026 14:00)" in tuesday and "status/nl.txt.j2:2" in tuesday
    assert section(digest_text(app, monday + timedelta(days=2)), RULES_FAILED) == ""  # fixed that day


@pytest.mark.dovecot
def test_a_real_reload_fixed_later_is_said_recovered(tmp_path, make_app, dovecot, sqlite_url):
    """Through the poll's reload: a typo refused, then a fixed (changed) set taken: the day's
    digest says when it was recovered and the next day's says nothing; a second typo left in
    place is listed the next day as still refused."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    app = make_app(imap=imap_config(dovecot), db_url=sqlite_url, rules_dir=str(rules))
    routing = (rules / "routing.yaml").read_text()

    def deploy(text: str) -> None:
        (rules / "routing.yaml").write_text(text)
        app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
        append_all(dovecot, [complaint(sender=f"{len(text)}@example.be")])
        app.poll_once()

    deploy(routing.replace("priority: urgent", "priorty: urgent", 1))
    deploy(routing.replace("rules:\n", "rules:\n  - name: extra\n    then: {tags: [extra]}\n    continue: true\n", 1))
    with app.sessions() as session:
        [failed] = session.execute(select(Event).where(Event.type == "rules_reload_failed")).scalars()
    day = failed.created_at.replace(tzinfo=timezone.utc).astimezone(BRUSSELS).date()
    assert "daarna hersteld om" in section(digest_text(app, day), RULES_FAILED)
    assert section(digest_text(app, day + timedelta(days=1)), RULES_FAILED) == ""

    deploy(routing.replace("priority: urgent", "priorty: urgent", 1))
    assert "nog altijd geweigerd (sinds" in section(digest_text(app, day + timedelta(days=1)), RULES_FAILED)


@pytest.mark.dovecot
def test_a_refused_edit_reverted_is_said_recovered(tmp_path, make_app, dovecot, sqlite_url):
    """A typo refused, then the file put back as it was (the set in force: nothing new is saved
    as the last good set): the poll records the reload, and the digest says it was recovered."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    app = make_app(imap=imap_config(dovecot), db_url=sqlite_url, rules_dir=str(rules))
    routing = (rules / "routing.yaml").read_text()
    for number, text in enumerate((routing.replace("priority: urgent", "priorty: urgent", 1), routing)):
        (rules / "routing.yaml").write_text(text)
        app.routing.reload_if_changed()  # a deploy is taken when two checks read it the same: this is the first
        append_all(dovecot, [complaint(sender=f"burger{number}@example.be")])
        app.poll_once()
    assert app.routing.last_error is None
    with app.sessions() as session:
        [failed] = session.execute(select(Event).where(Event.type == "rules_reload_failed")).scalars()
    day = failed.created_at.replace(tzinfo=timezone.utc).astimezone(BRUSSELS).date()
    assert "daarna hersteld om" in section(digest_text(app, day), RULES_FAILED)
    assert section(digest_text(app, day + timedelta(days=1)), RULES_FAILED) == ""


# ------------------------------------------------------------------ 5: a web form's phone field

def test_a_web_forms_phone_field_is_the_contact_phone_of_a_citizen_without_address(make_app, sqlite_url):
    """A form without the citizen's e-mail address, its phone field after a number the complaint
    mentions: the case keeps the form's number as the contact phone, and the digest shows it
    beside "neem telefonisch of per post contact op"."""
    app = make_app(db_url=sqlite_url, webform_senders=[FORM])
    body = ("Naam: Bert Zonderadres\nTelefoon: 0470 12 34 56\n\nUw klacht:\nMijn huurpremie wordt niet uitbetaald "
            "door Wonen in Vlaanderen sinds januari. Ik belde hun lijn 02 553 01 01 al drie keer.\n")
    process_files(app.intake, [complaint(sender=FORM, name="Klachtenformulier", subject="Klachtenformulier",
                                         body=body)])
    with app.sessions() as session:
        case = session.execute(select(Case)).scalar_one()
    assert (case.citizen_email, case.citizen_name, case.contact_phone) == ("", "Bert Zonderadres", "+32470123456")
    triage = section(digest_text(app, case.created_at.replace(tzinfo=timezone.utc).astimezone(BRUSSELS).date()),
                     "Te beoordelen: onzekere koppelingen en afzenders")
    assert "neem telefonisch of per post contact op" in triage and "tel. +32470123456" in triage
