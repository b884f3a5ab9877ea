"""README.md: every `mailbot …` command it shows exists, with the options it uses, and every config key is explained."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO
from mailbot.cli import cli

README = (REPO / "README.md").read_text(encoding="utf-8")
GLOBAL_OPTIONS_WITH_VALUE = {"--config"}
GLOBAL_FLAGS = {"-v", "--verbose"}


def _code_lines() -> list[str]:
    """Lines of fenced code blocks, plus inline code spans that start with `mailbot `."""
    lines: list[str] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", README, re.S | re.M):
        lines += block.splitlines()
    lines += [span for span in re.findall(r"`([^`\n]+)`", README) if span.startswith("mailbot ")]
    return lines


def readme_commands() -> list[tuple[str, ...]]:
    """Each `mailbot` invocation in the README as its argument tokens (after `mailbot`)."""
    found: list[tuple[str, ...]] = []
    for line in _code_lines():
        line = re.sub(r"(^|\s)#.*$", "", line).replace("…", "").strip()
        line = line.split("=", 1)[1] if line.startswith(("ExecStart", "ExecStartPre")) else line
        try:
            tokens = shlex.split(line.replace("[", " ").replace("]", " ").replace(",", " "))
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            if token == "mailbot" or token.endswith("/mailbot"):
                rest = tuple(tokens[i + 1:])
                j = 0
                while j < len(rest) and rest[j] in GLOBAL_FLAGS | GLOBAL_OPTIONS_WITH_VALUE:
                    j += 2 if rest[j] in GLOBAL_OPTIONS_WITH_VALUE else 1
                # a command is a lower-case word; `mailbot COMMAND --help` is a placeholder
                if j < len(rest) and rest[j] != "mailbot" and rest[j][:1].islower():
                    found.append(rest)
    return found


def _resolve(args: tuple[str, ...]) -> tuple[list[str], click.Command, list[str]]:
    """(command path, command, remaining args) after the global options."""
    args_list = list(args)
    while args_list and (args_list[0] in GLOBAL_FLAGS or args_list[0] in GLOBAL_OPTIONS_WITH_VALUE):
        args_list = args_list[2:] if args_list[0] in GLOBAL_OPTIONS_WITH_VALUE else args_list[1:]
    path: list[str] = []
    command: click.Command = cli
    while isinstance(command, click.Group) and args_list and not args_list[0].startswith("-"):
        name = args_list.pop(0)
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"README shows `mailbot {' '.join(path + [name])}`: no such command"
        path.append(name)
        command = sub
    return path, command, args_list


COMMANDS = readme_commands()


def test_readme_shows_the_two_first_commands_and_the_operations():
    """The README shows demo, the test command and the operations commands staff and admins need."""
    shown = {" ".join(_resolve(c)[0]) for c in COMMANDS}
    for expected in ("demo", "run", "poll", "digest", "status", "report", "privacy erase", "retention",
                     "rules check", "rules explain", "import", "db upgrade", "case list"):
        assert expected in shown
    assert "bash scripts/test.sh" in README


def test_try_it_installs_into_a_virtual_environment():
    """The first command works on Debian 12, whose system Python refuses `pip install` outside
    a virtual environment (PEP 668, externally-managed-environment): it makes one, and says
    which Debian package provides it."""
    block = README.split("**Try it**", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert block == "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && mailbot demo"
    assert "apt-get install python3-venv" in README.split("**Test it**", 1)[0]
    assert not [line for line in _code_lines() if "python3 -m pip install" in line]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_exists_with_its_options(args):
    """`mailbot <command> --help` exits 0 and every option the README passes is an option of that command."""
    path, command, rest = _resolve(args)
    assert path, f"README shows `mailbot {' '.join(args)}` without a command"
    result = CliRunner().invoke(cli, [*path, "--help"], obj={})
    assert result.exit_code == 0, result.output
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for token in rest:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in known, f"`mailbot {' '.join(path)}` has no option {token}"


def _keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys.add(path)
        keys |= _keys(value, f"{path}.") if key not in ("mailboxes",) else set()
    return keys


def test_readme_explains_every_key_of_the_shipped_config():
    """Every key of config.yaml (and of the settings model) appears in the README's configuration table."""
    from pydantic import BaseModel

    from mailbot.config import Settings

    def model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
        keys = set()
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys |= model_keys(annotation, f"{prefix}{name}.")
            else:
                keys.add(f"{prefix}{name}")
        return keys

    shipped = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    leaves = {k for k in _keys(shipped) if not isinstance(_get(shipped, k), dict)}
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)`", table))
    missing = sorted((leaves | model_keys(Settings)) - documented)
    assert not missing, f"config keys not explained in README.md: {missing}"


def _get(tree: dict, dotted: str) -> object:
    value: object = tree
    for part in dotted.split("."):
        value = value[part]  # type: ignore[index]
    return value


def test_readme_code_paths_exist():
    """Files the README tells people to run or edit are in the repository."""
    for path in ("scripts/test.sh", "scripts/lint-dockerfile.sh", "compose.yaml", "Dockerfile",
                 "docker/mailbot/config.yaml", "config.yaml", "rules", "templates"):
        assert path in README and Path(REPO / path).exists(), path
