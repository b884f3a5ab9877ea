"""`rules check` and `rules explain` as an administrator meets them (audit of the administrator's
experience): every variable of every branch checked, templates of one's own accepted, a missing
language refused, the digest rendered, explain on the files on disk, the shipped config usable."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import base_config, complaint
from mailbot import digest
from mailbot.cli import cli
from mailbot.render import Renderer, read_templates

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path / "rules", tmp_path / "templates"


def _edit(path: Path, old: str, new: str) -> int:
    """Replace `old` once; the line `new` starts on."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:text.index(old)].count("\n") + 1


def _check(*args: str):
    return CliRunner().invoke(cli, ["rules", "check", *args], obj={})


# ------------------------------------------------------------------ 1: every branch

def test_a_misspelt_variable_in_a_branch_the_sample_never_takes_is_refused(tree):
    """`{{ case_reff }}` in the closed-case branch of the status reply: the sample case is being
    investigated, yet check names the file and line (the real reply on a closed case failed)."""
    _, templates = tree
    line = _edit(templates / "status" / "nl.txt.j2", "Stand van zaken: uw dossier is afgesloten.",
                 "Stand van zaken: uw dossier {{ case_reff }} is afgesloten.")
    assert Renderer(templates).check() == [f"templates/status/nl.txt.j2:{line}: 'case_reff' is undefined"]


def test_a_misspelt_attribute_in_a_branch_is_refused_with_what_it_could_be(tree):
    _, templates = tree
    line = _edit(templates / "status" / "fr.html.j2", "{{ investigator.email }}", "{{ investigator.emial }}")
    assert Renderer(templates).check() == [
        f"templates/status/fr.html.j2:{line}: 'investigator' has no attribute 'emial' "
        "(investigator has email, name, phone)"]


def test_a_variable_only_some_replies_get_must_be_tested(tree):
    """`referred_by` is given only for a complaint another ombudsman forwarded: used without
    `is defined` every other acknowledgment would fail, and check renders one without it."""
    _, templates = tree
    path = templates / "ack_investigation" / "en.txt.j2"
    _edit(path, "{% if referred_by is defined and referred_by.name %}", "{% if referred_by.name %}")
    problems = Renderer(templates).check()
    assert problems and all(p.startswith("templates/ack_investigation/en.txt.j2:") for p in problems)
    assert "'referred_by' is undefined" in problems[0]


# ------------------------------------------------------------------ 2: what run time gives

def test_a_template_of_ones_own_gets_every_variable_run_time_gives(tree):
    """A copy of ack_investigation under a new name, used by a rule: accepted (it was refused
    with 'investigator' is undefined four times, though every reply gets it)."""
    rules, templates = tree
    shutil.copytree(templates / "ack_investigation", templates / "ack_mobiliteit")
    assert Renderer(templates).check() == []
    result = _check("--rules-dir", str(rules), "--templates-dir", str(templates))
    assert result.exit_code == 0, result.output
    assert "15 templates" in result.output


def test_the_forwarded_messages_date_may_be_shown(tree):
    _, templates = tree
    _edit(templates / "forward_added" / "nl.txt.j2", "Onderwerp van het bericht: {{ forwarded.subject }}",
          "Onderwerp van het bericht: {{ forwarded.subject }} ({{ forwarded.date }})")
    assert Renderer(templates).check() == []


# ------------------------------------------------------------------ 3: a missing language

def _without(templates: Path, name: str, language: str) -> None:
    for kind in ("txt", "html"):
        (templates / name / f"{language}.{kind}.j2").unlink()


def test_a_template_without_a_configured_language_is_refused(tree, tmp_path):
    """direct_answer without French: the French citizen got the French answer inside the Dutch
    template; check now refuses it, for the languages config.yaml names."""
    rules, templates = tree
    _without(templates, "direct_answer", "fr")
    _without(templates, "agency_in_cc", "de")
    result = _check("--rules-dir", str(rules), "--templates-dir", str(templates))
    assert result.exit_code == 1
    listed = [line for line in result.output.splitlines() if ".j2:" in line]
    assert [line.split(": ")[0] for line in listed] == [
        f"{templates}/agency_in_cc/de.html.j2:1", f"{templates}/agency_in_cc/de.txt.j2:1",
        f"{templates}/direct_answer/fr.html.j2:1", f"{templates}/direct_answer/fr.txt.j2:1"]
    assert "file missing (language 'fr' is in languages" in result.output

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(rules_dir=str(rules), templates_dir=str(templates),
                                                 languages=["nl", "fr"])))
    result = CliRunner().invoke(cli, ["--config", str(config), "rules", "check"], obj={})
    assert result.exit_code == 1 and "agency_in_cc" not in result.output
    assert "direct_answer/fr.txt.j2:1: file missing" in result.output


# ------------------------------------------------------------------ 6: the digest rendered

def test_a_misspelt_name_in_the_digest_is_found_with_its_line(tree):
    _, templates = tree
    line = _edit(templates / "_digest" / "nl.txt.j2", "Dagoverzicht klachtenpostbus — {{ office }}",
                 "Dagoverzicht klachtenpostbus — {{ office }} {{ d.totals.ontvangen }}")
    assert digest.check_templates(templates) == [
        f"templates/_digest/nl.txt.j2:{line}: 'dict object' has no attribute 'ontvangen'"]


def test_an_old_labels_file_without_a_new_sections_title_is_found(tree):
    """labels.j2 kept from before `idle_open` existed: every digest would fail."""
    _, templates = tree
    labels = templates / "_digest" / "labels.j2"
    labels.write_text("".join(line for line in labels.read_text(encoding="utf-8").splitlines(keepends=True)
                              if not line.lstrip().startswith('"idle_open"')), encoding="utf-8")
    problems = digest.check_templates(templates)
    assert problems and all(re.match(r"templates/_digest/nl\.(txt|html)\.j2:\d+: .*'idle_open' "
                                     r"\(labels\.j2 has no title for the digest section 'idle_open'\)", p)
                            for p in problems), problems


def test_the_digest_check_lists_every_section_a_digest_has(make_app, sqlite_url):
    """The sample digests of the check have the sections `collect` builds, in its order."""
    from mailbot.digest_data import collect

    app = make_app(db_url=sqlite_url)
    with app.sessions() as session:
        data = collect(session, app.settings, date(2026, 11, 23))
    assert tuple(s.key for s in data.decisions) == digest.DECISION_SECTIONS
    assert tuple(s.key for s in data.info) == digest.INFO_SECTIONS
    assert all(s.count for s in digest.sample_digests()[0].decisions + digest.sample_digests()[0].info)


# ------------------------------------------------------------------ 7: the shipped config

def test_rules_commands_work_with_the_shipped_config_without_the_servers_secrets(tmp_path, monkeypatch):
    """config.yaml as shipped, in the current folder, without MAILBOT_IMAP_HOST and the other
    secrets of the mail servers: `rules check` and `rules explain` work (they connect to none)."""
    for name in ("MAILBOT_IMAP_HOST", "MAILBOT_IMAP_PASSWORD", "MAILBOT_SMTP_HOST", "MAILBOT_SMTP_PASSWORD",
                 "MAILBOT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for folder in ("rules", "templates"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    monkeypatch.chdir(tmp_path)
    result = _check()
    assert result.exit_code == 0, result.output
    (tmp_path / "mail.eml").write_bytes(complaint())
    result = CliRunner().invoke(cli, ["rules", "explain", "mail.eml"], obj={})
    assert result.exit_code == 0, result.output
    assert "kind:      new_complaint" in result.stdout
    assert not (tmp_path / "mailbot.sqlite3").exists()
    # what the robot needs to run is still required
    assert CliRunner().invoke(cli, ["case", "list"], obj={}).exit_code == 2


@pytest.mark.parametrize("token_url", ["https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
                                       "https://login.microsoftonline.com/${MAILBOT_TENANT}/oauth2/v2.0/token",
                                       "${MAILBOT_TOKEN_URL}"])
def test_rules_check_works_without_the_oauth2_secret_of_the_servers(tmp_path, monkeypatch, token_url):
    """An office signing in with OAuth2 (README: Microsoft 365) keeps the client secret, and
    maybe its tenant or whole token endpoint, where the robot runs: `rules check` on an
    administrator's machine works without them."""
    for name in ("MAILBOT_IMAP_HOST", "MAILBOT_IMAP_PASSWORD", "MAILBOT_SMTP_HOST", "MAILBOT_SMTP_PASSWORD",
                 "MAILBOT_OAUTH2_SECRET", "MAILBOT_TENANT", "MAILBOT_TOKEN_URL", "MAILBOT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for folder in ("rules", "templates"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    oauth2 = {"token_url": token_url,
              "grant_type": "client_credentials", "client_id": "app", "client_secret": "${MAILBOT_OAUTH2_SECRET}",
              "scope": "https://outlook.office365.com/.default"}
    config["imap"].pop("password", None)
    config["imap"]["oauth2"] = oauth2
    config["smtp"].pop("password", None)
    config["smtp"]["oauth2"] = oauth2 | {"scope": "https://outlook.office365.com/.default"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = _check()
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(cli, ["case", "list"], obj={}).exit_code == 2  # the robot still needs it


# ------------------------------------------------------------------ 4, 5: rules explain

def _config(tmp_path: Path, rules: Path, templates: Path, db_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=db_url, rules_dir=str(rules), templates_dir=str(templates))))
    return path


def _explain(config: Path, mail: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), "rules", "explain", str(mail), *args], obj={})


def test_explain_shows_each_replys_subject_and_with_show_reply_its_text(tree, tmp_path, sqlite_url):
    rules, templates = tree
    config = _config(tmp_path, rules, templates, sqlite_url)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(complaint())
    year = datetime.now(timezone.utc).year
    result = _explain(config, mail)
    assert result.exit_code == 0, result.output
    assert f"           subject: Uw klacht [VO-{year}-000001] Klacht over mijn studietoelage" in result.stdout
    assert "| Beste Jan Peeters," not in result.stdout
    shown = _explain(config, mail, "--show-reply")
    assert "           text:\n             | Beste Jan Peeters,\n" in shown.stdout
    assert f"| Uw dossiernummer is VO-{year}-000001." in shown.stdout
    [reply] = json.loads(_explain(config, mail, "--json", "--show-reply").stdout)["replies"]
    assert reply["text"].startswith("Beste Jan Peeters,\n")


def test_explain_text_says_when_a_replys_template_fails(tree, make_app, sqlite_url):
    """A template failing on this mail (here: a set put in use without a check): the text
    output says the reply would not be sent and why, as --json did."""
    from mailbot.explain import explain, explain_text

    _, templates = tree
    _edit(templates / "ack_investigation" / "nl.txt.j2", "Uw dossiernummer is {{ case_ref }}.",
          "Uw dossiernummer is {{ case_reff }}.")
    app = make_app(db_url=sqlite_url)
    app.renderer.use(read_templates(templates))
    result = explain(app, complaint())
    [reply] = result["replies"]
    assert "case_reff" in reply["template_error"]
    text = explain_text(result)
    assert "reply:     ack_investigation (nl) to" in text
    assert re.search(r"NOT SENT: its template fails: \S*ack_investigation/nl\.txt\.j2:\d+: 'case_reff' is undefined",
                     text), text


def _broken(rules: Path) -> int:
    return _edit(rules / "routing.yaml", "    then:\n", "    thne:\n")


def test_explain_on_refused_files_says_so_and_explains_with_the_last_good_only_when_asked(tree, tmp_path,
                                                                                          sqlite_url, caplog):
    """Broken files on disk: explain used to explain silently with the last good set from the
    database. Now: the problems on stderr and exit 1; --last-good explains with that set, under
    a banner."""
    rules, templates = tree
    config = _config(tmp_path, rules, templates, sqlite_url)
    assert CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"], obj={}).exit_code == 0
    from mailbot.app import create_app
    from mailbot.config import load_settings

    app = create_app(load_settings(config))
    app.routing.reload_if_changed()  # a running robot saves the set in force
    app.close()
    _broken(rules)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(complaint())

    refused = _explain(config, mail)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert f"{rules}/routing.yaml:" in refused.stderr and "not explained" in refused.stderr

    caplog.clear()
    fallback = _explain(config, mail, "--last-good")
    assert fallback.exit_code == 0, fallback.output
    assert "explained with the last good set saved in the database, not with the files on disk" in fallback.stderr
    assert "kind:      new_complaint" in fallback.stdout
    # The banner says it: the start on the last good set is logged as a warning, not an error.
    assert [r.levelname for r in caplog.records if r.name == "mailbot.rules"] == ["WARNING"]


def test_explain_without_a_database_file_gives_no_spurious_error(tree, tmp_path, sqlite_url, caplog):
    rules, templates = tree
    config = _config(tmp_path, rules, templates, sqlite_url)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(complaint())
    _broken(rules)
    result = _explain(config, mail, "--last-good")
    assert result.exit_code == 1
    assert "no such table" not in result.output + caplog.text
    assert "there is no database, so no last good set either" in result.stderr
    assert not Path(sqlite_url[len("sqlite:///"):]).exists()


def test_rules_check_refuses_a_broken_staff_notice_template_as_a_reload_does(tree):
    """`rules check` and the running robot's reload check the same templates: a staff notice
    naming a variable it never gets is refused by both."""
    rules, templates = tree
    line = _edit(templates / "_staff_notice" / "nl.txt.j2", "Dossier:      {{ case_ref }}",
                 "Dossier:      {{ case_reff }}")
    result = _check("--rules-dir", str(rules), "--templates-dir", str(templates))
    assert result.exit_code == 1
    assert f"_staff_notice/nl.txt.j2:{line}:" in result.output and "case_reff" in result.output
