"""`mailbot import`: backfill an old mailbox (issue 8), with a progress bar on stderr."""

from __future__ import annotations

import logging
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import click

from .cli_args import Day
from .imported_cases import OPEN_DAYS, default_cutoff


class ProgressBar:
    """`[#####.....]  42%  4,210 msgs  812 msg/s  ETA 0:07` on stderr.

    `total` is in the unit of `position` (bytes of an mbox, messages otherwise). On a terminal
    the line is redrawn at most five times a second; otherwise a line is printed every 10 %.
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1
        self.count = 0
        self.position = 0

    def update(self, count: int, position: int) -> None:
        self.count, self.position = count, position
        now = time.monotonic()
        fraction = min(position / self.total, 1.0)
        if self.tty:
            if now - self.last_draw >= 0.2:
                self.last_draw = now
                self.stream.write("\r" + self.line(fraction, now))
                self.stream.flush()
        elif int(fraction * 10) > self.last_decile:
            self.last_decile = int(fraction * 10)
            self.stream.write(self.line(fraction, now) + "\n")
            self.stream.flush()

    def line(self, fraction: float, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.count / elapsed
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return (f"[{bar}] {fraction:4.0%}  {self.count:,} msgs  {rate:,.0f} msg/s  "
                f"ETA {int(eta // 60)}:{int(eta % 60):02d} ")

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(min(self.position / self.total, 1.0), time.monotonic()) + "\n")
            self.stream.flush()


@click.command("import")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--imap-folder", help="import this folder of the configured IMAP server instead (read-only)")
@click.option("--batch-size", default=200, show_default=True, help="messages per database commit")
@click.option("--open-after", type=Day(), metavar="DATE",
              help=f"imported cases with a message on or after DATE stay open, older ones are closed "
                   f"[default: {OPEN_DAYS} days before today]")
@click.pass_context
def import_command(ctx: click.Context, path: Path | None, imap_folder: str | None, batch_size: int,
                   open_after: date | None) -> None:
    """Backfill cases from an mbox file (or a file of one message), a Maildir or an IMAP folder.
    Sends no reply; resumable."""
    from .app import create_app
    from .config import default_config_path, load_settings
    from .db_engine import make_engine
    from .import_sources import SourceError, imap_items, maildir_items, mbox_items
    from .importer import ImportClock, Importer, report_lines
    from .migrate import upgrade
    from .prepare import longest_wait

    if (path is None) == (imap_folder is None):
        raise click.UsageError("give a PATH (mbox file or Maildir) or --imap-folder NAME, not both")
    if logging.getLogger().level > logging.DEBUG:  # `mailbot -v import` keeps the migration log
        logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings(default_config_path((ctx.find_root().obj or {}).get("config_path")))
    max_bytes = settings.limits.max_message_bytes
    # Cases whose last message is older were dealt with before mailbot (`imported_cases`).
    cutoff = (datetime.combine(open_after, datetime.min.time(), ZoneInfo(settings.schedule.timezone))
              if open_after else default_cutoff(datetime.now(timezone.utc)))
    close = None
    if imap_folder is None and path is not None and not path.is_dir():
        handle = path.open("rb")
        close = handle.close
        try:  # refused before anything is written: not an mbox, nor one message
            items = mbox_items(handle, max_bytes=max_bytes)
        except SourceError as err:
            handle.close()
            raise click.ClickException(f"{path}: {err}") from err
    engine = make_engine(settings.database.url,
                         longest_wait_seconds=longest_wait(settings.limits.parse_timeout_seconds))
    upgrade(engine)
    clock = ImportClock()
    app = create_app(settings, engine=engine, clock=clock)
    try:
        if imap_folder is not None:
            name, uidvalidity, total, items, close = imap_items(settings.imap, imap_folder, max_bytes=max_bytes)
            where = f"IMAP folder {imap_folder!r}"
        elif path is not None and path.is_dir():
            name, uidvalidity, where = f"import:{path.resolve()}", 0, f"Maildir {path}"
            total, items = maildir_items(path, max_bytes=max_bytes)
        else:
            assert path is not None
            name, uidvalidity, where = f"import:{path.resolve()}", 0, f"mbox {path}"
            total = path.stat().st_size
        importer = Importer(app, clock, batch_size=batch_size, progress=ProgressBar(total))
        try:
            report = importer.run(name, uidvalidity, items)
        except SourceError as err:
            raise click.ClickException(f"{path}: {err}") from err
        if not report.interrupted:
            report.closing, report.closed_before = importer.close_old_cases(cutoff), cutoff
    finally:
        if close is not None:
            close()
        app.close()
    for line in report_lines(report, where):
        click.echo(line)
    if report.interrupted:
        ctx.exit(130)


COMMANDS: list[click.Command] = [import_command]
