"""`mailbot import`: backfill an old mailbox (issue 8)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
