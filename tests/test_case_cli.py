"""The staff's look-ups `mailbot case show` and `case list` (audit F1): stored strings never
act on the terminal, a reply shows whether it left, an investigator sees the whole case with
its history, times are local, and a case can be found among many."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from conftest import base_config
from mailbot.cli import cli
from mailbot.db import Case, Event, Message, Outbox
from mailbot.privacy import erase_case

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=timezone.utc)  # 11:00 in Brussels (CET)
# What mail can carry into a stored string: screen clear, window title, colour, a bidi
# override, a backspace, a zero-width space.
HOSTILE = "Klant\x1b[2J\x1b]0;pwned\x07 \x1b[31mDe Lijn\x1b[0m \u202egnitset\x08\u200b"
ACTIVE = ("\x1b", "\x07", "\x08", "\u202e", "\u200b", "\x9b")


@pytest.fixture
def app(make_app, db_url):
    return make_app(db_url=db_url)


@pytest.fixture
def config(tmp_path, app) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(db_url=str(app.settings.database.url))))
    return path


def _run(config: Path, *args: str):
    """The CLI as on a terminal: click keeps escape sequences (`color=True`)."""
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, color=True,
                              catch_exceptions=False)


_numbers = iter(range(1, 10**6))


def _case(app, **fields: Any) -> str:
    number = next(_numbers)
    values = {"ref": f"VO-2026-{number:06d}", "citizen_email": f"burger{number}@example.be",
              "citizen_name": f"Burger {number}", "subject": f"Klacht {number}", "created_at": T0,
              "updated_at": T0, **fields}
    with app.sessions.begin() as session:
        session.add(Case(**values))
    return values["ref"]


def _case_id(app, ref: str) -> int:
    with app.sessions() as session:
        return session.execute(select(Case.id).where(Case.ref == ref)).scalar_one()


def _message(app, ref: str, *, direction: str = "in", at: datetime = T0, **fields: Any) -> int:
    values = {"case_id": _case_id(app, ref), "direction": direction,
              "kind": "outgoing" if direction == "out" else "follow_up",
              "message_id": f"m{next(_numbers)}@example.be", "sha256": "0" * 64, "received_at": at,
              "from_email": "klachten@vlaamseombudsdienst.be" if direction == "out" else "burger@example.be",
              "subject": "Re: Klacht", **fields}
    with app.sessions.begin() as session:
        message = Message(**values)
        session.add(message)
        session.flush()
        return message.id


def _reply(app, ref: str, status: str, *, template: str = "ack_investigation", error: str | None = None,
           at: datetime = T0) -> None:
    """A queued reply as `replies.queue_reply` writes it: its outgoing message, then its outbox row."""
    pk = _message(app, ref, direction="out", at=at, subject=f"Uw klacht ({status})")
    with app.sessions.begin() as session:
        session.add(Outbox(case_id=_case_id(app, ref), message_pk=pk, template=template,
                           recipient="burger@example.be", message_id=f"o{pk}@vlaamseombudsdienst.be",
                           mime=b"", status=status, last_error=error, attempts=1, created_at=at,
                           next_attempt_at=at, sent_at=at if status == "sent" else None))


def _event(app, ref: str, type_: str, at: datetime = T0, **detail: Any) -> None:
    with app.sessions.begin() as session:
        session.add(Event(case_id=_case_id(app, ref), type=type_, detail=detail, created_at=at))


# -- 1. terminal injection ------------------------------------------------------------------


def test_stored_strings_cannot_act_on_the_terminal(app, config):
    """Escape sequences, bidi overrides and other controls in names, subjects, a forwarded
    agency's sender and an SMTP error reach `case show`, `case list` and `outbox list` as
    plain visible text; the JSON keeps the data as stored."""
    ref = _case(app, citizen_name=HOSTILE, subject=HOSTILE, team=HOSTILE)
    _message(app, ref, kind="agency_forward", original_sender=f"{HOSTILE} <klantendienst@delijn.be>",
             subject=HOSTILE)
    _reply(app, ref, "failed", error=f"550 {HOSTILE}")
    outputs = [_run(config, "case", "show", ref).output, _run(config, "case", "list").output,
               _run(config, "outbox", "list").output]
    for output in outputs:
        assert not [c for c in ACTIVE if c in output], output
        assert "Klant De Lijn gnitset" in output
    assert "from the agency: Klant De Lijn gnitset <klantendienst@delijn.be>" in outputs[0]

    shown = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert shown["citizen_name"] == shown["subject"] == HOSTILE
    assert shown["messages"][0]["original_sender"].startswith(HOSTILE)
    assert shown["messages"][1]["delivery"]["reason"] == f"550 {HOSTILE}"


# -- 2. what became of each reply -----------------------------------------------------------


def test_case_show_says_what_became_of_each_reply(app, config):
    """A reply's message row is written when it is queued: `case show` tells from the outbox
    whether it was sent, waits, was held (and why), failed (with the error) or was cancelled."""
    ref = _case(app)
    _message(app, ref, kind="new_complaint")
    _reply(app, ref, "sent", template="ack_investigation")
    _reply(app, ref, "pending", template="status_reply")
    _reply(app, ref, "held", template="follow_up_ack", error="3 replies to this case today (limit 3)")
    _reply(app, ref, "failed", template="referral", error="550 5.1.1 mailbox unknown")
    _reply(app, ref, "cancelled", template="receipt_neutral")

    text = _run(config, "case", "show", ref).output
    assert "ack_investigation: sent 2026-11-23 11:00 +01:00" in text
    assert "status_reply: waiting to be sent" in text
    assert "follow_up_ack: held for staff" in text and "3 replies to this case today (limit 3)" in text
    assert "referral: failed" in text and "550 5.1.1 mailbox unknown" in text
    assert "receipt_neutral: cancelled, never sent" in text
    assert text.count("to burger@example.be") == 5

    messages = json.loads(_run(config, "case", "show", ref, "--json").output)["messages"]
    assert "delivery" not in messages[0]  # mail in: nothing to deliver
    states = [(m["delivery"]["template"], m["delivery"]["status"], m["delivery"]["reason"]) for m in messages[1:]]
    assert states == [("ack_investigation", "sent", None), ("status_reply", "pending", None),
                      ("follow_up_ack", "held", "3 replies to this case today (limit 3)"),
                      ("referral", "failed", "550 5.1.1 mailbox unknown"), ("receipt_neutral", "cancelled", None)]


# -- 3. what an investigator needs ----------------------------------------------------------


def test_case_show_has_what_an_investigator_needs(app, config):
    """Subject, outcome, team, the investigator's phone, priority, tags, the cases recorded
    as its duplicates, why it was flagged, and who closed and reopened it with their note."""
    ref = _case(app, outcome="refer_agency", team="mobiliteit-omgeving", investigator_name="Els Maes",
                investigator_email="els.maes@vlaamseombudsdienst.example", investigator_phone="+32 2 000 00 21",
                priority="urgent", tags=["eerstelijn", "snelle-dienstverlening"], flags=["possible_duplicate"])
    duplicate = _case(app, duplicate_of_id=_case_id(app, ref), created_at=T0 + timedelta(days=1))
    _event(app, ref, "message_received", kind="new_complaint", reasons=["rule x fired"],
           flags=["possible_duplicate"],
           evidence=[{"method": "fuzzy", "detail": "VO-2026-000001: other sender, open; subject 100",
                      "score": 94.3}])
    assert _run(config, "case", "close", ref, "--by", "alice", "--note", "afgehandeld").exit_code == 0
    assert _run(config, "case", "reopen", ref, "--by", "bob", "--note", "burger belde terug").exit_code == 0

    text = _run(config, "case", "show", ref).output
    for expected in ("subject:      Klacht", "outcome:      refer_agency", "team:         mobiliteit-omgeving",
                     "Els Maes <els.maes@vlaamseombudsdienst.example>, +32 2 000 00 21",
                     "priority:     urgent", "tags:         eerstelijn, snelle-dienstverlening",
                     f"duplicates:   {duplicate}",
                     "flagged possible_duplicate: VO-2026-000001: other sender, open; subject 100",
                     "closed by alice: afgehandeld", "reopened by bob: burger belde terug"):
        assert expected in text, expected
    assert "personal data" not in text
    assert text.index("closed by alice") < text.index("reopened by bob")

    shown = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert (shown["priority"], shown["tags"]) == ("urgent", ["eerstelijn", "snelle-dienstverlening"])
    assert shown["investigator_phone"] == "+32 2 000 00 21" and shown["duplicates"] == [duplicate]
    assert [e["type"] for e in shown["history"]] == ["message_received", "case_closed", "case_reopened"]
    assert shown["history"][1]["detail"]["note"] == "afgehandeld" and shown["pseudonymised"] is False


def test_case_show_says_the_personal_data_was_erased(app, config):
    """A case pseudonymised on an erasure request says so, in text and JSON."""
    ref = _case(app)
    _message(app, ref, kind="new_complaint")
    assert erase_case(app.sessions, ref) is not None

    text = _run(config, "case", "show", ref).output
    today = datetime.now(timezone.utc).astimezone(ZoneInfo("Europe/Brussels")).strftime("%Y-%m-%d")
    assert f"personal data: pseudonymised on an erasure request on {today}" in text
    shown = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert shown["pseudonymised"] is True
    assert [e["detail"] for e in shown["history"] if e["type"] == "case_pseudonymised"] == [{"why": "erasure"}]
    assert erase_case(app.sessions, ref) is not None  # again: nothing left to say it twice
    again = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert [e["type"] for e in again["history"]].count("case_pseudonymised") == 1


# -- 4. and 5. local times, messages in the order they came in ------------------------------


def test_times_are_local_with_their_offset_and_messages_in_the_order_they_came(app, config):
    """Text shows the office's time (Europe/Brussels) with its offset, to the minute, winter
    and summer; JSON stays UTC. Messages recorded out of order (an import) are listed by
    when they came in."""
    ref = _case(app, closed_at=datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc), status="closed")
    _message(app, ref, at=T0 + timedelta(hours=2), subject="later")
    _message(app, ref, at=T0, subject="earlier")
    _message(app, ref, at=T0 + timedelta(hours=2), subject="later, recorded last")

    text = _run(config, "case", "show", ref).output
    assert "created:      2026-11-23 11:00 +01:00" in text and "closed:       2026-07-01 12:00 +02:00" in text
    assert text.index("earlier") < text.index("later") < text.index("later, recorded last")
    assert "13:00 +01:00 follow_up" in text
    shown = json.loads(_run(config, "case", "show", ref, "--json").output)
    assert shown["created_at"] == "2026-11-23T10:00:00.123456+00:00"
    assert [m["subject"] for m in shown["messages"]] == ["earlier", "later", "later, recorded last"]


# -- 6. finding a case ----------------------------------------------------------------------


def _refs(result) -> list[str]:
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_case_list_finds_cases_by_citizen_flag_team_investigator_and_day(app, config):
    """Every filter narrows the list, newest first (created, then id); a citizen is found by
    a whole address or any part of address or name, in any case; days are local days."""
    late_night = datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc)  # 23 November, 00:30 in Brussels
    a = _case(app, citizen_email="an.peeters@example.be", citizen_name="An Peeters", created_at=late_night,
              flags=["needs_triage"], team="onderwijs", investigator_email="els.maes@vlaamseombudsdienst.example",
              investigator_name="Els Maes")
    b = _case(app, citizen_email="", citizen_name="Karel Vermeersch", created_at=T0, flags=["needs_triage_x"])
    c = _case(app, citizen_email="jan.peeters@example.be", citizen_name="Jan", created_at=T0, status="closed",
              team="mobiliteit")
    d = _case(app, citizen_email="piet@example.be", citizen_name="Piet",
              created_at=datetime(2026, 11, 22, 22, 30, tzinfo=timezone.utc))  # 23:30 on the 22nd

    assert _refs(_run(config, "case", "list")) == [c, b, a, d]
    assert _refs(_run(config, "case", "list", "--citizen", "PEETERS")) == [c, a]
    assert _refs(_run(config, "case", "list", "--citizen", "An.Peeters@example.be")) == [a]
    assert _refs(_run(config, "case", "list", "--citizen", "vermeer")) == [b]
    assert _refs(_run(config, "case", "list", "--flag", "needs_triage")) == [a]
    assert _refs(_run(config, "case", "list", "--team", "mobiliteit")) == [c]
    assert _refs(_run(config, "case", "list", "--investigator", "maes")) == [a]
    assert _refs(_run(config, "case", "list", "--investigator", "Els.Maes@vlaamseombudsdienst.example")) == [a]
    assert _refs(_run(config, "case", "list", "--status", "closed")) == [c]
    assert _refs(_run(config, "case", "list", "--since", "2026-11-23")) == [c, b, a]
    assert _refs(_run(config, "case", "list", "--until", "2026-11-22")) == [d]
    assert _refs(_run(config, "case", "list", "--since", "2026-11-23", "--citizen", "peeters",
                      "--status", "open")) == [a]

    listed = _run(config, "case", "list").stdout
    assert "Karel Vermeersch" in listed  # no address: the name
    assert "2026-11-23" in listed.splitlines()[3] and "2026-11-22" in listed.splitlines()[4]
    assert json.loads(_run(config, "case", "list", "--json", "--flag", "needs_triage").output)[0]["ref"] == a


def test_case_list_pages_and_says_how_many_it_left_out(app, config):
    """--limit and --offset page through the cases; stderr says "N of M shown" when the
    page is not all of them, and nothing when it is."""
    refs = [_case(app, created_at=T0 + timedelta(minutes=i)) for i in range(5)][::-1]
    first = _run(config, "case", "list", "--limit", "2")
    assert _refs(first) == refs[:2] and "2 of 5 shown; next page: --offset 2" in first.stderr
    last = _run(config, "case", "list", "--limit", "2", "--offset", "4")
    assert _refs(last) == refs[4:] and "1 of 5 shown" in last.stderr and "next page" not in last.stderr
    every = _run(config, "case", "list")
    assert _refs(every) == refs and every.stderr == ""
    paged = json.loads(_run(config, "case", "list", "--json", "--limit", "3", "--offset", "1").stdout)
    assert [case["ref"] for case in paged] == refs[1:4]


@pytest.mark.parametrize("args", [("--limit", "0"), ("--limit", "-1"), ("--offset", "-1"),
                                  ("--status", "gesloten"), ("--since", "23/11/2026"),
                                  ("--since", "2026-11-24", "--until", "2026-11-23")])
def test_case_list_refuses_bad_options(tmp_path, args):
    """A limit below 1 (which listed everything on SQLite and failed on PostgreSQL), an
    unknown status or a day that is not YYYY-MM-DD is a usage error."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    result = _run(config, "case", "list", *args)
    assert result.exit_code == 2 and "Usage" in result.output
