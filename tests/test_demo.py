"""`mailbot demo`: the whole flow on embedded servers, run as a user would run it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailbot.cli import cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `mailbot demo --output DIR` in a subprocess, started from an unrelated folder."""
    elsewhere = tmp_path_factory.mktemp("cwd")
    output = tmp_path_factory.mktemp("demo") / "out"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mailbot", "demo", "--output", str(output)],
                          cwd=elsewhere, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    cases = json.loads((output / "cases.json").read_text(encoding="utf-8")) if proc.returncode == 0 else []
    return {"proc": proc, "output": output, "cases": cases, "seconds": seconds,
            "by_citizen": _by_citizen(cases)}


def _by_citizen(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for case in cases:
        first.setdefault(case["citizen_email"], case)
    return first


def _replies(output: Path) -> list[tuple[str, Any]]:
    return [(path.name, message_from_bytes(path.read_bytes(), policy=policy.default))
            for path in sorted((output / "replies").glob("*.eml"))]


def test_demo_exits_zero_in_seconds_and_says_where_the_files_are(demo):
    """The demo exits 0 within seconds, from any folder, and names its output files."""
    proc = demo["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert demo["seconds"] < 30
    out = proc.stdout
    for expected in ("What the robot did with each mail:", "Cases (mailbot case list):", "Replies sent",
                     "Quarantined:", str(demo["output"] / "replies"), str(demo["output"] / "config.yaml")):
        assert expected in out
    # The embedded mailbox has the office's folders: no "check for a typo" warning about its own config.
    assert "did not exist" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr[-2000:]
    assert "round 1" in proc.stderr and "round 2" in proc.stderr  # progress lines with durations
    assert "INFO" not in proc.stderr  # per-message logging stays out of the way


def test_demo_cases_carry_the_flags_of_each_feature(demo):
    """Each scenario mail leads to the case, flags and services the office's policy asks for."""
    by = demo["by_citizen"]
    assert {"agency_in_cc"} <= set(by["tom.wouters@example.be"]["flags"])
    assert by["tom.wouters@example.be"]["also_sent_to"] == ["de-lijn-klantendienst"]
    assert "multi_addressed" in by["pieter.desmet@example.be"]["flags"]
    assert by["pieter.desmet@example.be"]["also_sent_to"] == ["federale-ombudsman"]
    assert by["nadia.benali@example.be"]["also_sent_to"] == ["kinderrechtencommissariaat"]
    assert "anonymity_requested" in by["ine.verhoeven@example.be"]["flags"]
    assert "prefers_phone" in by["luc.peeters@example.be"]["flags"]
    assert by["sarah.vermeulen@example.be"]["priority"] == "urgent"
    assert by["marie.dubois@example.com"]["language"] == "fr"
    assert by["sofie.maes@example.be"]["investigator_email"]  # an investigation names its investigator
    assert by["koen.jacobs@example.be"]["investigator_email"] is None  # quick service: referred
    assert "needs_triage" in by["info@example.org"]["flags"]  # a stranger quoting a reference


def test_demo_threads_follow_ups_forwards_status_requests_and_the_resubmission(demo):
    """Round two joins the cases of round one: status request, forwarded agency letters, follow-up, resubmission."""
    by = demo["by_citizen"]
    tom = [m for m in by["tom.wouters@example.be"]["messages"] if m["kind"] == "agency_forward"]
    assert len(tom) == 1 and "klantendienst@delijn.be" in (tom[0]["original_sender"] or "")
    marie = by["marie.dubois@example.com"]
    assert any(m["kind"] == "agency_forward" and "vdab.be" in (m["original_sender"] or "") for m in marie["messages"])
    assert "possible_duplicate" in marie["flags"] or marie["duplicate_of"] is not None
    kinds = [m["kind"] for m in by["sofie.maes@example.be"]["messages"]]
    assert kinds == ["new_complaint", "outgoing", "status_request", "outgoing"]
    assert [m["kind"] for m in by["luc.peeters@example.be"]["messages"]].count("follow_up") == 1
    citizens = [c["citizen_email"] for c in demo["cases"]]
    assert citizens.count("marie.dubois@example.com") == 1 and citizens.count("tom.wouters@example.be") == 1
    assert citizens.count("lotte.claes@example.be") == 1  # the second copy of her mail made no second case


def test_demo_replies_are_written_and_never_go_to_robots(demo):
    """Every reply is an .eml in replies/, carries its case reference (but the two that have no
    case to name), and no automatic mail got one."""
    replies = _replies(demo["output"])
    names = " ".join(name for name, _ in replies)
    for template in ("ack_investigation", "agency_in_cc", "referred_ombudsman", "referred_agency",
                     "multi_addressed", "direct_answer", "ask_info", "status", "forward_added", "status_neutral",
                     "undeliverable"):
        assert f"-{template}-" in names
    refs = {c["ref"] for c in demo["cases"]}
    assert "-staff_notice-intake.eml" in names  # the urgent case's notice to the intake desk
    for name, message in replies:
        # The intake desk's notice is staff mail answering nobody (RFC 3834: auto-generated).
        assert message["Auto-Submitted"] == ("auto-generated" if "-staff_notice-" in name else "auto-replied")
        if "status_neutral" not in name and "undeliverable" not in name:
            assert any(ref in message["Subject"] for ref in refs), name
    recipients = {str(message["To"]) for _, message in replies}
    assert not any("els.janssens" in r or "MAILER-DAEMON" in r for r in recipients)
    scanned = [n for n, m in replies if "scanner@" in str(m["To"])]  # the oversize mail's sender
    assert [n.split("-")[1] for n in scanned] == ["undeliverable"]
    stranger = [(n, m) for n, m in replies if "info@example.org" in str(m["To"])]
    assert [n.split("-")[1] for n, _ in stranger] == ["status_neutral"]  # reveals nothing about the case
    assert not any(ref in stranger[0][1].get_body(("plain",)).get_content() for ref in refs)
    assert stranger[0][1]["Reply-To"] is None  # nor who handles it
    french = next(m for n, m in replies if "ack_investigation-marie.dubois" in n)
    assert "plainte" in french.get_body(("plain",)).get_content()  # answered in French


def test_demo_quarantines_the_oversize_mail_and_ignores_automatic_mail(demo):
    """The oversize mail is quarantined with its reason; the out-of-office and bounce open no case."""
    db = sqlite3.connect(demo["output"] / "mailbot.sqlite3")
    try:
        reasons = [r for (r,) in db.execute("SELECT quarantine_reason FROM message WHERE quarantine_reason IS NOT NULL")]
        automatic = db.execute("SELECT count(*) FROM message WHERE kind = 'automatic' AND case_id IS NULL").fetchone()
    finally:
        db.close()
    assert len(reasons) == 1 and "exceeds the limit" in reasons[0]
    assert automatic[0] == 2
    citizens = {c["citizen_email"] for c in demo["cases"]}
    assert "els.janssens@example.be" not in citizens and "scanner@example.be" not in citizens


def test_demo_writes_the_digest(demo):
    """The digest is written as HTML and plain text, and the report points to it."""
    html = (demo["output"] / "digest.html").read_text(encoding="utf-8")
    assert "<html" in html.lower() and "VO-" in html
    assert "VO-" in (demo["output"] / "digest.txt").read_text(encoding="utf-8")
    assert "Digest for staff:" in demo["proc"].stdout and "digest: not available" not in demo["proc"].stdout


def test_demo_json_prints_the_cases(tmp_path):
    """`mailbot demo --json` prints the cases as JSON with the fields `case list --json` promises."""
    result = CliRunner().invoke(cli, ["demo", "--output", str(tmp_path / "out"), "--json"], obj={})
    assert result.exit_code == 0, result.output[-2000:]
    cases = json.loads(result.stdout)
    assert len(cases) >= 12
    assert {"ref", "status", "citizen_email", "flags", "also_sent_to", "duplicate_of", "messages"} <= set(cases[0])


def test_shipped_resources_fall_back_to_package_data(tmp_path, monkeypatch):
    """Outside a checkout, rules/ and templates/ are found in the package's `_shipped` data."""
    from mailbot import _resources

    package = tmp_path / "site-packages" / "mailbot"
    (package / "_shipped" / "rules").mkdir(parents=True)
    (package / "_shipped" / "rules" / "routing.yaml").write_text("rules: []\n")
    (tmp_path / "site-packages" / "rules").mkdir()  # someone else's folder, not a checkout
    monkeypatch.setattr(_resources, "_PACKAGE", package)
    assert _resources.rules_dir() == package / "_shipped" / "rules"
    with pytest.raises(FileNotFoundError):
        _resources.templates_dir()


def test_demo_direct_answer_and_ask_info_say_what_they_announce(demo):
    """The neighbour dispute's reply carries the answer it announces (where to go), and the empty
    complaint's reply lists the information it asks for, in text and HTML."""
    replies = _replies(demo["output"])
    [answer] = [m for n, m in replies if "-direct_answer-" in n]
    text = " ".join(answer.get_body(("plain",)).get_content().split())
    html = answer.get_body(("html",)).get_content()
    assert "Hieronder vindt u ons antwoord. Uw klacht gaat over een geschil met uw buren." in text
    for words in ("vrederechter", "buurtbemiddeling", "www.rechtbanken-tribunaux.be"):
        assert words in text and words in html
    [asked] = [m for n, m in replies if "-ask_info-" in n]
    lines = asked.get_body(("plain",)).get_content().splitlines()
    items = [line for line in lines if line.startswith("  - ")]
    assert items[:3] == ["  - een korte beschrijving van wat er is gebeurd",
                         "  - over welke overheidsdienst uw klacht gaat",
                         "  - wanneer het is gebeurd (een datum of een periode)"]
    assert len(items) == 4 and asked.get_body(("html",)).get_content().count("<li>") == 4
