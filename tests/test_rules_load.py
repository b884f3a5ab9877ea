"""Loading rules from a directory, the change fingerprint, the shipped rules and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mailbot.cli_rules import json_schemas, rules_group
from mailbot.errors import RulesError
from mailbot.model import Address, Classification, Facts, Kind, Mail
from mailbot.route import route
from mailbot.rules import load_rules, rules_fingerprint

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "rules"
TEMPLATES = frozenset({"ack_investigation", "referred_ombudsman", "referred_agency", "direct_answer", "ask_info",
                       "multi_addressed", "agency_in_cc", "forward_added", "status", "undeliverable"})


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(SHIPPED, target)
    return target


def test_shipped_rules_load_and_reference_known_templates() -> None:
    """The shipped rules load cleanly, using only the agreed template names."""
    ruleset = load_rules(SHIPPED, template_names=TEMPLATES)
    assert len(ruleset.routing) > 10 and ruleset.teams and ruleset.investigators


def test_shipped_services_include_the_required_domains() -> None:
    """The required real public domains are in the shipped services, every entry marked as example."""
    ruleset = load_rules(SHIPPED)
    domains = {d: s for s in ruleset.services for d in s.domains}
    for domain in ("federaalombudsman.be", "stad.gent", "antwerpen.be", "kinderrechten.be", "delijn.be",
                   "vdab.be", "opgroeien.be"):
        assert domain in domains, domain
    assert all(s.example for s in ruleset.services)
    assert all(i.example for i in ruleset.investigators)


def test_shipped_yaml_files_point_editors_at_the_schema() -> None:
    """Each shipped file starts with the yaml-language-server schema comment, and the schema is current."""
    for name in ("services", "routing", "investigators"):
        first = (SHIPPED / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# yaml-language-server: $schema=schema/{name}.schema.json"
        written = json.loads((SHIPPED / "schema" / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert written == json_schemas()[f"{name}.schema.json"]


def _complaint(text: str, *, cc: tuple[str, ...] = (), first_line: bool = False, sender: str = "burger@example.org",
               to: tuple[str, ...] = ("klachten@vlaamseombudsdienst.be",)) -> tuple[Mail, Classification]:
    mail = Mail(message_id="m", subject="Klacht", from_=Address("Burger", sender),
                to=tuple(Address("", a) for a in to), cc=tuple(Address("", a) for a in cc), text=text)
    return mail, Classification(Kind.NEW_COMPLAINT, "nl", facts=Facts(first_line_contact=first_line))


@pytest.mark.parametrize(("text", "kwargs", "outcome", "refer_to", "template"), [
    ("De FOD Financiën antwoordt niet.", {}, "refer_ombudsman", "federale-ombudsman", "referred_ombudsman"),
    ("Mijn aanslagbiljet personenbelasting is fout.", {}, "refer_ombudsman", "federale-ombudsman", None),
    ("Klacht over de dienstverlening van Stad Gent.", {}, "refer_ombudsman", "ombudsdienst-gent", None),
    ("Mijn zoon werd uitgesloten van school.", {}, "refer_ombudsman", "kinderrechtencommissariaat", None),
    ("De bus van De Lijn stopte niet.", {}, "refer_agency", "de-lijn", "referred_agency"),
    ("Ruzie met de buren over de haag.", {}, "answer", None, "direct_answer"),
    ("", {}, "ask_info", None, "ask_info"),
    ("De bus van De Lijn stopte niet, ik klaagde al.", {"first_line": True}, "investigation", None,
     "ack_investigation"),
    ("Zie mijn klacht.", {"cc": ("info@federaalombudsman.be",)}, "investigation", None, "multi_addressed"),
])
def test_shipped_rules_implement_the_quick_service_cases(text: str, kwargs: dict, outcome: str,
                                                         refer_to: str | None, template: str | None) -> None:
    """The seed's quick-service cases come out of the shipped rules as the matching outcome."""
    mail, classification = _complaint(text, **kwargs)
    result = route(mail, classification, load_rules(SHIPPED))
    assert result.outcome == outcome
    assert result.refer_to == refer_to
    if template:
        assert result.template == template


def test_shipped_rules_assign_teams_and_flag_agency_in_cc() -> None:
    """An investigation about De Lijn with the agency in Cc goes to the mobility team, flagged."""
    mail, classification = _complaint("De Lijn reageert niet op mijn klacht.", cc=("klantendienst@delijn.be",),
                                      first_line=True)
    result = route(mail, classification, load_rules(SHIPPED))
    assert (result.outcome, result.team) == ("investigation", "mobiliteit-omgeving")
    assert "agency_in_cc" in result.flags


def test_load_raises_with_every_problem(rules_dir: Path) -> None:
    """An invalid directory raises RulesError listing each problem with file and line."""
    (rules_dir / "routing.yaml").write_text("rules:\n  - name: a\n    then: {asign: {}}\n  - name: b\n")
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir)
    assert info.value.problems == [
        f"{rules_dir}/routing.yaml:3: rule 'a': unknown action 'asign' (did you mean 'assign'?)",
        f"{rules_dir}/routing.yaml:4: rule 'b': missing 'then'",
    ]
    assert str(info.value) == "\n".join(info.value.problems)


def test_fingerprint_follows_content(rules_dir: Path) -> None:
    """The fingerprint equals the loaded set's until a file's content changes, and ignores touches."""
    ruleset = load_rules(rules_dir)
    assert rules_fingerprint(rules_dir) == ruleset.fingerprint
    path = rules_dir / "routing.yaml"
    path.touch()
    assert rules_fingerprint(rules_dir) == ruleset.fingerprint
    path.write_text(path.read_text() + "\n# edited\n")
    assert rules_fingerprint(rules_dir) != ruleset.fingerprint
    assert load_rules(rules_dir).fingerprint == rules_fingerprint(rules_dir)
    path.unlink()
    assert rules_fingerprint(rules_dir) != ruleset.fingerprint


def test_a_bad_edit_leaves_a_loaded_rule_set_untouched(rules_dir: Path) -> None:
    """Loading never mutates: after a failed reload the earlier rule set is complete and usable."""
    good = load_rules(rules_dir)
    (rules_dir / "investigators.yaml").write_text("teams: [\n")
    with pytest.raises(RulesError):
        load_rules(rules_dir)
    assert good.investigator("an.peeters@vlaamseombudsdienst.example").name == "An Peeters"
    assert good.investigator("nobody@example.org") is None


def test_cli_check_ok_and_summary(rules_dir: Path, tmp_path: Path) -> None:
    """`rules check --rules-dir` without a config exits 0 with a one-line summary."""
    result = CliRunner().invoke(rules_group, ["check", "--rules-dir", str(rules_dir)], obj={"config_path": None})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rules OK: ")


def test_cli_check_reports_and_exits_1(rules_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a bad edit `rules check` prints `file:line: rule: message` and exits 1."""
    path = rules_dir / "routing.yaml"
    data = path.read_text(encoding="utf-8").replace("assign: {team: onthaal, strategy: round_robin}",
                                                    "asign: {team: onthaal}")
    path.write_text(data, encoding="utf-8")
    line = next(n for n, text in enumerate(data.splitlines(), 1) if "asign" in text)
    monkeypatch.chdir(rules_dir.parent)
    result = CliRunner().invoke(rules_group, ["check", "--rules-dir", "rules"], obj={"config_path": None})
    assert result.exit_code == 1
    assert f"rules/routing.yaml:{line}: rule 'intake-desk': unknown action 'asign' (did you mean 'assign'?)" \
        in result.output


def test_cli_check_uses_the_config(rules_dir: Path, tmp_path: Path) -> None:
    """Without --rules-dir the config's rules_dir (relative to the config file) is checked."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "imap": {"host": "localhost", "username": "u", "password": "p"},
        "smtp": {"host": "localhost", "from_address": "klachten@office.example"},
        "office": {"name": "Office"}, "rules_dir": "rules", "templates_dir": "no-templates"}))
    (rules_dir / "services.yaml").write_text("services: [\n")
    result = CliRunner().invoke(rules_group, ["check"], obj={"config_path": str(config)})
    assert result.exit_code == 1
    assert "services.yaml:2: YAML syntax error" in result.output


def test_cli_schema_writes_and_checks(tmp_path: Path) -> None:
    """`rules schema` writes the three JSON Schemas; `--check` exits 1 only when they are stale."""
    runner = CliRunner()
    target = tmp_path / "rules"
    assert runner.invoke(rules_group, ["schema", "--rules-dir", str(target), "--check"],
                         obj={"config_path": None}).exit_code == 1
    assert runner.invoke(rules_group, ["schema", "--rules-dir", str(target)], obj={"config_path": None}).exit_code == 0
    assert sorted(p.name for p in (target / "schema").iterdir()) == [
        "investigators.schema.json", "routing.schema.json", "services.schema.json"]
    assert runner.invoke(rules_group, ["schema", "--rules-dir", str(target), "--check"],
                         obj={"config_path": None}).exit_code == 0
    schema = json.loads((target / "schema" / "routing.schema.json").read_text())
    assert "asign" not in json.dumps(schema) and "continue" in json.dumps(schema)
