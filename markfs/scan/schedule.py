"""The schedules of a running mount: commands run on a cron expression — level-1 scans
and refreshes (`[scan]`), catalog backups (`[backup]`).

At each time the expression names, the daemon runs the commands (`markfs scan`,
then `markfs refresh`; or `markfs backup`) as child processes on its own data
directory. Running the CLI rather than calling in-process keeps the daemon's trio
loop and its catalog connection free (scans and backups are long and blocking),
gives every job the same progress rows in the scan-job log as a manual run, and
means a crashing job cannot take the mount down. A run still going when the next
is due is not doubled: the next one waits for it.
"""

from __future__ import annotations

import datetime
import logging
import subprocess
import sys
from pathlib import Path

import trio
from croniter import croniter

from markfs.errors import UserError

log = logging.getLogger(__name__)


def check_schedule(expression: str, setting: str = "scan.schedule") -> None:
    """A user error unless `expression` is empty (no schedule) or a cron expression
    (five fields, or six with seconds last)."""
    if expression and not croniter.is_valid(expression):
        raise UserError(f"{setting} is not a cron expression: {expression!r}")


def next_run(expression: str, after: datetime.datetime) -> datetime.datetime:
    return croniter(expression, after).get_next(datetime.datetime)  # type: ignore[no-any-return]


async def run_schedule(data_dir: Path, expression: str, commands: list[list[str]]) -> None:
    """Forever: sleep until the next due time, then run the commands one after another."""
    if not expression:
        return
    log.info("%s schedule: %s", commands[0][0], expression)
    while True:
        now = datetime.datetime.now()
        due = next_run(expression, now)
        await trio.sleep((due - now).total_seconds())
        for args in commands:
            await _run_cli(data_dir, args)


async def _run_cli(data_dir: Path, args: list[str]) -> None:
    command = [sys.executable, "-m", "markfs", "--data-dir", str(data_dir), *args]
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True,
                                  check=False, stdin=subprocess.DEVNULL)
    err = done.stderr.decode(errors="replace").strip().splitlines()
    # the CLI's progress bars also write to stderr: only its last line can be an error
    if done.returncode == 0:
        log.info("scheduled %s: %s", args[0], done.stdout.decode(errors="replace").strip())
    else:
        log.warning("scheduled %s failed: %s", args[0], err[-1] if err else done.returncode)
