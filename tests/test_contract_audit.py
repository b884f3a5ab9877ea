"""The contract audit of DESIGN.md's fixed promises, fixed:

1. "Every case has a reference carried in the subject of every reply": the neutral status answer
   and the neutral receipt to a case opened for someone who quoted another case's reference carry
   the reference of their own case (not the quoted one), so their answer to it links back; a
   stranger writing on someone else's case still learns nothing, not even its reference.
2. `rules explain --json` shows each reply's subject as it would be sent, not the incoming one.
3. `rules check` names a broken template by a path that opens from the current directory.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import REPO, base_config, complaint
from mailbot.cli import cli
from mailbot.compose import build_subject
from mailbot.db import Case, Outbox
from mailbot.model import Address, Reply
from mailbot.pipeline import process_files

JAN = ("Jan Peeters", "jan.peeters@example.be")
OTHER = ("Jan Peeters", "jan.nieuw@other.example")
STRANGER = ("Lies Wouters", "lies.stranger@other.example")
TOPIC = "Klacht over mijn studietoelage"


def cases(app) -> list[Case]:
    with app.sessions() as session:
        return list(session.execute(select(Case).order_by(Case.id)).scalars())


def sent(app) -> list[tuple[str, str, EmailMessage]]:
    """(template, recipient, parsed MIME) of every queued reply, oldest first."""
    with app.sessions() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars()
        return [(o.template, o.recipient, message_from_bytes(o.mime, policy=default)) for o in rows]


def body(message: EmailMessage) -> str:
    return "".join(message.get_body((part,)).get_content() for part in ("plain", "html"))


@pytest.fixture
def app(make_app, sqlite_url):
    app = make_app(db_url=sqlite_url)
    process_files(app.intake, [complaint(name=JAN[0], sender=JAN[1], subject=TOPIC)])
    return app


# ------------------------------------------------------------------ 1: the reply's own reference

@pytest.mark.parametrize(("kind", "text", "template", "prefix"), [
    ("status", "Geachte,\n\nWat is de stand van zaken in mijn dossier?\n\nJan Peeters", "status_neutral", "Uw vraag"),
    ("new mail", "Geachte,\n\nIk wil nog een document toevoegen aan mijn klacht over de studietoelage, zie "
                 "bijlage.\n\nJan Peeters", "receipt_neutral", "Uw bericht"),
])
def test_quoting_another_case_from_another_address_gets_the_own_case_reference(app, kind, text, template, prefix):
    """The audit's mails 07 and 10: a new case for the sender, whose neutral reply carries that
    case's reference in the subject and not the quoted one; the text names neither, Reply-To
    names nobody. Their answer to it, quoting the subject, joins their case (no third case)."""
    [quoted] = cases(app)
    process_files(app.intake, [complaint(name=OTHER[0], sender=OTHER[1], body=text,
                                         subject=f"Re: Uw klacht [{quoted.ref}] {TOPIC}")])
    _, own = cases(app)
    assert own.citizen_email == OTHER[1] and "needs_triage" in own.flags
    name, to, reply = sent(app)[-1]
    assert (name, to) == (template, OTHER[1])
    assert reply["Subject"] == f"{prefix} [{own.ref}] {TOPIC}"
    assert quoted.ref not in reply["Subject"]
    assert quoted.ref not in body(reply) and own.ref not in body(reply)
    assert reply["Reply-To"] is None

    process_files(app.intake, [complaint(name=OTHER[0], sender=OTHER[1], subject=f"Re: {reply['Subject']}",
                                         body="Geachte,\n\nHierbij nog het attest van de school.\n\nJan")])
    assert len(cases(app)) == 2  # linked by the reference of their own case


def test_a_stranger_on_someone_elses_case_still_learns_no_reference(app):
    """A status question in the thread of Jan's case (In-Reply-To his acknowledgment) from an
    address not on file joins his case: the neutral answer names no reference at all."""
    [case] = cases(app)
    ack = sent(app)[0][2]["Message-ID"]
    process_files(app.intake, [complaint(
        name=STRANGER[0], sender=STRANGER[1], subject=f"Re: {TOPIC}",
        body="Goedendag,\n\nWat is de stand van zaken in dit dossier?\n\nLies",
        extra_headers=f"In-Reply-To: {ack}\r\nReferences: {ack}\r\n")])
    assert len(cases(app)) == 1
    name, to, reply = sent(app)[-1]
    assert (name, to) == ("status_neutral", STRANGER[1])
    assert reply["Subject"] == f"Uw vraag: {TOPIC}"
    assert not re.search(r"VO-\d{4}-\d{6}", reply["Subject"] + body(reply))


def test_reply_case_ref_names_a_case_only_to_its_own_address():
    """The rule behind it: a neutral template names the recipient's own case, nobody else's."""
    from mailbot.replies import reply_case_ref

    case = Case(ref="VO-2026-000002", citizen_email="Jan.Nieuw@other.example")
    for template in ("status_neutral", "receipt_neutral"):
        assert reply_case_ref(case, Reply(template, Address("", OTHER[1]), "nl", TOPIC)) == case.ref
        assert reply_case_ref(case, Reply(template, Address("", STRANGER[1]), "nl", TOPIC)) == ""
    assert reply_case_ref(case, Reply("ack_investigation", Address("", OTHER[1]), "nl", TOPIC)) == case.ref
    assert reply_case_ref(None, Reply("status_neutral", Address("", OTHER[1]), "nl", TOPIC)) == ""


@pytest.mark.parametrize(("original", "expected"), [
    ("Re: Uw klacht [VO-2026-000001] Lekkend dak", "Uw vraag [VO-2026-000007] Lekkend dak"),
    ("Re: Uw vraag [VO-2026-000007] Re: Uw klacht [VO-2026-000001] Lekkend dak", "Uw vraag [VO-2026-000007] Lekkend dak"),
    ("Lekkend dak [VO-2025-000123] en [VO-2026-000007]", "Uw vraag [VO-2026-000007] Lekkend dak en"),
    ("Re: [ticket 12] Lekkend dak", "Uw vraag [VO-2026-000007] [ticket 12] Lekkend dak"),  # not a reference
])
def test_subject_names_one_case_its_own(original, expected):
    """With a reference, every other `[REF]` tag leaves the repeated subject; other tags stay."""
    assert build_subject("Uw vraag", "VO-2026-000007", original) == expected


def test_subject_without_reference_keeps_what_the_citizen_wrote():
    """No reference of our own (no case to name): the tags the citizen quoted stay theirs."""
    assert build_subject("Uw bericht", "", "Re: [VO-2026-000001] Lekkend dak") == "Uw bericht: [VO-2026-000001] Lekkend dak"


# ------------------------------------------------------------------ 2: explain shows the sent subject

def _config(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**overrides)))
    return path


def _explain(config: Path, raw: bytes, tmp_path: Path) -> dict:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(raw)
    result = CliRunner().invoke(cli, ["--config", str(config), "rules", "explain", str(mail), "--json"], obj={})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_explain_json_shows_the_subject_the_reply_is_sent_with(app, tmp_path, sqlite_url):
    """A new case: `Uw klacht [its coming reference] …`; Jan's status question: his case's;
    a status question quoting Jan's case from another address: `Uw vraag [their new case] …`.
    Each equal to the subject the pipeline then really sends."""
    [case] = cases(app)
    config = _config(tmp_path, db_url=sqlite_url)
    year = datetime.now(timezone.utc).year
    coming = f"VO-{year}-{int(case.ref.rsplit('-', 1)[1]) + 1:06d}" if case.ref.startswith(f"VO-{year}-") \
        else f"VO-{year}-000001"

    new = complaint(name="Marie Dubois", sender="marie@example.com", subject="Busabonnement",
                    body="Geachte,\n\nDe Lijn heeft mijn abonnement twee keer aangerekend en antwoordt niet op "
                         "mijn mails. Ik heb hen al drie keer gemaild.\n\nMarie Dubois")
    assert _explain(config, new, tmp_path)["replies"][0]["subject"] == f"Uw klacht [{coming}] Busabonnement"

    own = complaint(name=JAN[0], sender=JAN[1], subject=f"Re: Uw klacht [{case.ref}] {TOPIC}",
                    body="Geachte,\n\nWat is de stand van zaken in mijn dossier?\n\nJan Peeters")
    [reply] = _explain(config, own, tmp_path)["replies"]
    assert (reply["template"], reply["subject"]) == ("status", f"Uw klacht [{case.ref}] {TOPIC}")

    status = complaint(name=OTHER[0], sender=OTHER[1], subject=f"Re: Uw klacht [{case.ref}] {TOPIC}",
                       body="Geachte,\n\nWat is de stand van zaken in mijn dossier?\n\nJan Peeters")
    [explained] = _explain(config, status, tmp_path)["replies"]
    assert explained["template"] == "status_neutral"
    process_files(app.intake, [status])
    assert explained["subject"] == sent(app)[-1][2]["Subject"] == f"Uw vraag [{cases(app)[-1].ref}] {TOPIC}"


# ------------------------------------------------------------------ 3: rules check paths that open

def test_rules_check_names_template_files_that_open_from_the_current_directory(tmp_path, monkeypatch):
    """Templates configured as `tpl` next to config.yaml, checked from another directory: the
    broken file is named by a path that exists from there (as the rule files are)."""
    folder = tmp_path / "cfg"
    shutil.copytree(REPO / "templates", folder / "tpl")
    broken = folder / "tpl" / "status" / "nl.txt.j2"
    broken.write_text(broken.read_text(encoding="utf-8").replace("{% endblock %}", "{{ no_such_variable }}\n"
                                                                  "{% endblock %}"), encoding="utf-8")
    digest = folder / "tpl" / "_digest" / "nl.txt.j2"
    digest.write_text(digest.read_text(encoding="utf-8") + "{% if d %}\n", encoding="utf-8")
    config = _config(folder, templates_dir="tpl")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["--config", str(config), "rules", "check"], obj={})
    assert result.exit_code == 1
    named = [line.split(":")[0] for line in result.output.splitlines() if re.match(r"^\S+\.j2:\d+: ", line)]
    assert len(named) == 2, result.output
    assert {Path(p).resolve() for p in named} == {broken.resolve(), digest.resolve()}
    assert all(Path(p).is_file() for p in named)

    # A relative --templates-dir is named as given: it opens from where it was given.
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(cli, ["rules", "check", "--rules-dir", str(REPO / "rules"),
                                      "--templates-dir", "tpl"], obj={})
    assert "tpl/status/nl.txt.j2:" in result.output and Path("tpl/status/nl.txt.j2").is_file()
