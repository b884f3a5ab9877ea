"""The container image and the compose trial: checked without a container engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile


from servers import unavailable
import yaml

from conftest import REPO
from mailbot.config import settings_from_mapping


def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    """The image is built in two stages, runs as a numeric non-root user and has a healthcheck."""
    text = _dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^HEALTHCHECK .*"mailbot", "status", "--check"', text, re.M)
    assert re.search(r'^ENTRYPOINT \["mailbot"\]', text, re.M)
    assert "gcc" not in text and "build-essential" not in text


def test_dockerfile_copies_only_what_exists_and_is_not_ignored():
    """Every COPY source exists in the repository and is not excluded by .dockerignore."""
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for sources in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", _dockerfile(), re.M):
        for source in sources.split():
            assert (REPO / source).exists(), source
            assert source not in ignored, source


def test_hadolint_finds_no_problem():
    """hadolint (the linter CI installs from PyPI) accepts the Dockerfile."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        unavailable("hadolint is not installed: scripts/lint-dockerfile.sh installs it")
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_mailbot_with_postgres_and_dovecot():
    """compose.yaml parses and wires mailbot to PostgreSQL, Dovecot and an SMTP sink through env and mounts."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"mailbot", "postgres", "dovecot", "mailpit", "migrate"} <= set(services)
    mailbot = services["mailbot"]
    assert mailbot["build"] == "." and mailbot["command"] == ["run"]
    assert mailbot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"MAILBOT_IMAP_PASSWORD", "MAILBOT_DB_PASSWORD"} <= set(mailbot["environment"])
    for volume in mailbot["volumes"] + services["dovecot"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), source
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))


def test_compose_mailbot_config_is_valid():
    """The trial's mounted config.yaml validates, with its secrets taken from the environment."""
    data = yaml.safe_load((REPO / "docker" / "mailbot" / "config.yaml").read_text(encoding="utf-8"))
    settings = settings_from_mapping(data, environ={"MAILBOT_IMAP_PASSWORD": "p1", "MAILBOT_DB_PASSWORD": "p2"})
    assert settings.imap.host == "dovecot" and settings.smtp.host == "mailpit"
    assert settings.database.url == "postgresql://mailbot:p2@postgres:5432/mailbot"
    assert str(settings.rules_dir) == "/app/rules"


def test_compose_dovecot_config_parses(tmp_path):
    """The trial Dovecot configuration is accepted by doveconf."""
    doveconf = shutil.which("doveconf")
    if doveconf is None:
        unavailable("doveconf is not installed (Debian package dovecot-core)")
    users = tmp_path / "users"
    users.write_text("klachten@vlaamseombudsdienst.be:{PLAIN}x\n")
    text = (REPO / "docker" / "dovecot" / "dovecot.conf").read_text().replace("/etc/dovecot/users", str(users))
    (tmp_path / "dovecot.conf").write_text(text)
    result = subprocess.run([doveconf, "-c", str(tmp_path / "dovecot.conf"), "-n"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "passwd-file" in result.stdout and "maildir:~/Maildir" in result.stdout


def test_wheel_ships_rules_and_templates(tmp_path):
    """A built wheel carries rules/ and templates/ as package data, for `mailbot demo` outside a checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("mailbot", "rules", "templates"):
        shutil.copytree(REPO / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("mailbot-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("mailbot/_shipped/rules/routing.yaml", "mailbot/_shipped/rules/services.yaml",
                 "mailbot/_shipped/rules/investigators.yaml",
                 "mailbot/_shipped/templates/ack_investigation/nl.txt.j2"):
        assert path in names
    shipped = {n.split("mailbot/_shipped/", 1)[1] for n in names if n.startswith("mailbot/_shipped/")}
    in_repo = {str(p.relative_to(REPO)) for d in ("rules", "templates") for p in (REPO / d).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert in_repo <= shipped
