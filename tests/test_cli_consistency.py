"""The staff command line says the same things the same way (audit of the staff CLI): an unknown
digest team is a usage error naming the teams there are; "not found" is one error line on stderr
for cases and replies alike; a case reference is found however staff type it; text output shows
local times with their offset (the JSON keeps UTC)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select, update

from conftest import base_config, complaint
from mailbot.cli import cli
from mailbot.cli_args import normal_ref, unknown_team
from mailbot.db import Case, Outbox
from mailbot.pipeline import process_files
from test_digest_seed import seed

T0 = datetime(2026, 11, 23, 10, tzinfo=timezone.utc)  # 11:00 in Brussels
T0_LOCAL = "2026-11-23 11:00 +01:00"
DIGEST_TEAMS = {"wonen": ["wonen@vlaamseombudsdienst.be"], "onderwijs": ["onderwijs@vlaamseombudsdienst.be"]}


def _runner(config: Path):
    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj={}, catch_exceptions=False)
    return run


def _write(tmp_path: Path, **config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(**config)))
    return path


@pytest.fixture
def one_case(make_app, sqlite_url):
    """An app (SMTP refused: the acknowledgment waits) with one case opened at T0."""
    app = make_app(db_url=sqlite_url)
    app.intake.clock = app.intake.matching.clock = lambda: T0
    process_files(app.intake, [complaint()])
    return app


@pytest.fixture
def run(one_case, sqlite_url, tmp_path):
    return _runner(_write(tmp_path, db_url=sqlite_url))


def _ref(app) -> str:
    with app.sessions() as session:
        return session.execute(select(Case.ref)).scalar_one()


# -- 1. an unknown digest team -----------------------------------------------------------------

def test_unknown_team_names_the_teams_there_are():
    """A team is one of digest.teams or of the rules; anything else is refused with the list. Pure."""
    assert unknown_team("wonen", ["wonen", "onthaal"]) is None
    assert unknown_team("nope", ["wonen", "onthaal", "wonen"]) == (
        "'nope' is no team of digest.teams or of the rules; known teams: onthaal, wonen")
    assert unknown_team("nope", []).endswith("known teams: none")


def test_every_digest_action_refuses_an_unknown_team_as_a_usage_error(make_app, sqlite_url, smtp_sink, tmp_path):
    """`--print`, `--html` and `--send` with `--team nope` exit 2 naming the known teams (of
    digest.teams and of the rules), print no digest, write no file and send nothing; a team of
    the rules prints its digest; one that is not in digest.teams cannot be sent (no recipients)."""
    app = make_app(db_url=sqlite_url)
    with app.sessions.begin() as session:
        seed(session)
    run = _runner(_write(tmp_path, db_url=sqlite_url, smtp={"port": smtp_sink.port},
                         digest={"recipients": ["onthaal@vlaamseombudsdienst.be"], "teams": DIGEST_TEAMS}))
    html = tmp_path / "digest.html"
    for action in (["--print"], ["--html", str(html)], ["--send"]):
        result = run("digest", "--date", "2026-11-23", "--team", "nope", *action)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert "Invalid value for '--team': 'nope' is no team of digest.teams or of the rules" in result.stderr
        assert "onderwijs" in result.stderr and "wonen" in result.stderr  # digest.teams
        assert "onthaal" in result.stderr and "werk-welzijn" in result.stderr  # rules/investigators.yaml
    assert not html.exists() and smtp_sink.parsed() == []

    printed = run("digest", "--date", "2026-11-23", "--team", "onthaal", "--print")
    assert printed.exit_code == 0 and printed.stdout
    unsent = run("digest", "--date", "2026-11-23", "--team", "onthaal", "--send")
    assert unsent.exit_code == 1
    assert "team 'onthaal' has no digest recipients: add it to digest.teams" in unsent.stderr
    assert smtp_sink.parsed() == []


# -- 2. "not found", one style -----------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("case", "show", "VO-2026-999999"), ("case", "show", "VO-2026-999999", "--json"),
    ("case", "close", "VO-2026-999999"), ("case", "reopen", "VO-2026-999999", "--json"),
    ("privacy", "erase", "--case", "VO-2026-999999"),
    ("privacy", "erase", "--case", "VO-2026-999999", "--dry-run")])
def test_a_case_not_found_is_one_error_line_and_exit_1(run, command):
    """Every command taking a case reference says `Error: no case REF` on stderr, nothing on
    stdout (also with --json), and exits 1."""
    result = run(*command)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "Error: no case VO-2026-999999\n")


@pytest.mark.parametrize("action", ["release", "retry", "cancel"])
def test_a_reply_not_found_is_said_as_a_case_not_found(run, action):
    """`outbox release/retry/cancel` of an unknown id: `Error: no reply ID` on stderr, exit 1."""
    result = run("outbox", action, "999999")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "Error: no reply 999999\n")


def test_a_refused_reply_is_an_error_line_naming_it(one_case, run):
    """A reply the action does not apply to (still pending) is refused the same way, by its id."""
    with one_case.sessions() as session:
        pending = session.execute(select(Outbox.id)).scalar_one()
    result = run("outbox", "cancel", str(pending))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"Error: reply {pending}: the reply is pending; cancel applies to failed or held "
                             "replies only\n")


# -- 3. case references as staff type them -----------------------------------------------------

def test_normal_ref_pads_and_completes_what_staff_type():
    """Case, spaces, dashes, missing zeros and a missing prefix do not matter; other text is kept. Pure."""
    for typed in ("VO-2026-000011", " vo-2026-000011 ", "VO-2026-11", "VO 2026 000011", "vo 2026 11",
                  "VO2026-11", "2026-11", "VO – 2026 – 11", "VO-2026-0000011"):
        assert normal_ref(typed, "VO") == "VO-2026-000011", typed
    assert normal_ref("2026 11", "KL") == "KL-2026-000011"
    assert normal_ref("OLD-2025-7", "VO") == "OLD-2025-000007"  # a case from before the prefix changed
    assert normal_ref(" nope ", "VO") == "NOPE"
    assert normal_ref("VO-2026", "VO") == "VO-2026"


def test_every_ref_argument_finds_the_case_however_it_is_typed(one_case, run):
    """`case show`, `case close`/`reopen` and `privacy erase --case` take `vo 2026 1`, `VO-2026-1`
    or `2026 1` for VO-2026-000001; a not-found message names the padded form."""
    ref = _ref(one_case)
    assert ref == "VO-2026-000001"
    for typed in ("VO-2026-1", "vo 2026 000001", " 2026 1 "):
        shown = run("case", "show", typed)
        assert shown.exit_code == 0 and shown.stdout.startswith(ref), (typed, shown.output)
    closed = run("case", "close", "vo-2026-1")
    assert closed.exit_code == 0 and closed.stdout.startswith(f"{ref} closed")
    reopened = run("case", "reopen", "VO 2026 1")
    assert reopened.exit_code == 0 and reopened.stdout == f"{ref} reopened\n"
    erased = run("privacy", "erase", "--case", "vo 2026 1", "--dry-run")
    assert erased.exit_code == 0 and ref in erased.stdout
    assert run("case", "show", "VO-2026-42").stderr == "Error: no case VO-2026-000042\n"


# -- 4. local times in text output -------------------------------------------------------------

def test_already_closed_says_since_when_in_local_time(one_case, run):
    """Closing a closed case again names the moment it was closed as `case show` does."""
    ref = _ref(one_case)
    run("case", "close", ref)
    with one_case.sessions.begin() as session:
        session.execute(update(Case).values(closed_at=T0))
    again = run("case", "close", ref)
    assert again.stdout == f"{ref} was already closed (since {T0_LOCAL}); nothing changed\n"


def test_outbox_list_and_status_show_the_next_try_in_local_time(one_case, run):
    """The waiting acknowledgment's next try is local with its offset in `outbox list` and
    `status`; their --json keeps UTC."""
    one_case.send_outbox()  # SMTP refused: the reply waits
    with one_case.sessions.begin() as session:
        session.execute(update(Outbox).values(next_attempt_at=T0, created_at=T0))
    listed = run("outbox", "list", "--status", "pending")
    assert f"next try {T0_LOCAL})" in listed.stdout and "+00:00" not in listed.stdout
    assert run("outbox", "list", "--status", "pending", "--json").stdout.count("2026-11-23T10:00:00+00:00") == 2
    status = run("status").stdout
    assert f"the oldest waiting since {T0_LOCAL}, its next try at {T0_LOCAL}" in status
    assert "+00:00" not in status
