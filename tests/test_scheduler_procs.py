"""Helpers for the `mailbot run` subprocess tests: config file, start, wait, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from conftest import base_config
from mailbot.db_engine import make_engine
from mailbot.migrate import upgrade

FAST = {"poll_interval_seconds": 1, "outbox_interval_seconds": 1, "lease_seconds": 3}


def write_config(tmp_path: Path, name: str = "config.yaml", **overrides) -> Path:
    overrides["schedule"] = {**FAST, **overrides.get("schedule", {})}
    config = base_config(**overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    engine = make_engine(config["database"]["url"])
    upgrade(engine)
    engine.dispose()
    return path


class RunProcess:
    """`python -m mailbot.cli --config C run` with its log in a file; `command` replaces
    `python -m mailbot.cli` (a launcher that patches the robot first), `env` adds variables."""

    def __init__(self, config: Path, log: Path, *, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = command or [sys.executable, "-m", "mailbot.cli"]
        self.proc = subprocess.Popen([*command, "--config", str(config), "run"],
                                     stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def processed_lines(self) -> list[str]:
        return [line for line in self.text().splitlines() if " uid=" in line and "disposition=" in line]

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.wait(10)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def run_until(config: Path, log: Path, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Start `mailbot run`, wait until `done()`, and stop it with SIGTERM: it exits 0."""
    run = RunProcess(config, log)
    try:
        wait_until(done, timeout, what)
        assert run.terminate() == 0
    finally:
        run.stop_quietly()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
