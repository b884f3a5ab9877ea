"""The container image and the compose trial: checked without a container engine."""

from __future__ import annotations

import os
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
    assert re.search(r'^COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/mailbot-entrypoint$', text, re.M)
    assert re.search(r'^ENTRYPOINT \["mailbot-entrypoint"\]\nCMD \["run"\]$', text, re.M)
    assert "gcc" not in text and "build-essential" not in text


def test_image_keeps_its_data_in_the_volume():
    """/data is a volume owned by the robot, and the default SQLite path next to
    /app/config.yaml is a link into it: a new container (an upgrade) finds every case."""
    text = _dockerfile()
    assert re.search(r'^VOLUME \["/data"\]$', text, re.M)
    assert "install -d -o 10001 -g 10001 /app /data" in text
    assert "ln -s /data/mailbot.sqlite3 /app/mailbot.sqlite3" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)


def test_the_default_database_path_follows_the_link_into_the_volume(tmp_path):
    """The image's layout in a temporary folder: `mailbot db upgrade` with the shipped
    config.yaml (database `sqlite:///mailbot.sqlite3`, relative to the config's folder)
    writes the database through the link into the data folder, not beside the config."""
    app_dir, data_dir = tmp_path / "app", tmp_path / "data"
    app_dir.mkdir()
    data_dir.mkdir()
    shutil.copy2(REPO / "config.yaml", app_dir / "config.yaml")
    (app_dir / "mailbot.sqlite3").symlink_to(data_dir / "mailbot.sqlite3")
    env = {**os.environ, "MAILBOT_IMAP_HOST": "imap.example.org", "MAILBOT_IMAP_PASSWORD": "x",
           "MAILBOT_SMTP_HOST": "smtp.example.org", "MAILBOT_SMTP_PASSWORD": "y"}
    result = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(app_dir / "config.yaml"),
                             "db", "upgrade"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert (data_dir / "mailbot.sqlite3").is_file() and (app_dir / "mailbot.sqlite3").is_symlink()
    assert sorted(p.name for p in app_dir.iterdir()) == ["config.yaml", "mailbot.sqlite3"]


def _entrypoint(tmp_path, *args: str, upgrade_fails: bool = False, **env: str) -> list[str]:
    """Run docker/entrypoint.sh with a stand-in `mailbot` that logs its arguments; the calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    fake = bin_dir / "mailbot"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                    + ('case "$*" in *"db upgrade"*) exit 2;; esac\n' if upgrade_fails else ""))
    fake.chmod(0o755)
    result = subprocess.run(["bash", str(REPO / "docker" / "entrypoint.sh"), *args], capture_output=True,
                            text=True, timeout=30,
                            env={**os.environ, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return log.read_text().splitlines() + ([f"exit {result.returncode}"] if result.returncode else [])


def test_entrypoint_upgrades_the_schema_before_run_only(tmp_path):
    """`run` (the image's command) is preceded by `db upgrade` with the same global options;
    other commands run alone; MAILBOT_DB_UPGRADE=no leaves the upgrade to a migrator; a
    failing upgrade stops the container before the robot starts."""
    assert _entrypoint(tmp_path, "run") == ["db upgrade", "run"]
    assert _entrypoint(tmp_path, "-v", "--config", "/etc/mb.yaml", "run") == [
        "-v --config /etc/mb.yaml db upgrade", "-v --config /etc/mb.yaml run"]
    assert _entrypoint(tmp_path, "case", "list") == ["case list"]
    assert _entrypoint(tmp_path, "demo") == ["demo"]
    assert _entrypoint(tmp_path, "run", MAILBOT_DB_UPGRADE="no") == ["run"]
    assert _entrypoint(tmp_path, "run", upgrade_fails=True) == ["db upgrade", "exit 2"]


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
    assert mailbot["stop_grace_period"] == "2m"  # a stop waits for the SMTP transactions in flight
    assert "mailbot-data:/data" in mailbot["volumes"] and "mailbot-data" in compose["volumes"]
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
