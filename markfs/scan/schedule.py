"""The scan schedule of a running mount: level-1 scans and refreshes on a cron expression.

At each time the expression names, the daemon runs `markfs scan` and then
`markfs refresh` as child processes on its own data directory. Running the
CLI rather than calling the scan in-process keeps the daemon's trio loop and
its catalog connection free (scans are long and blocking), gives every job
the same progress rows in the scan-job log as a manual run, and means a
crashing scan cannot take the mount down. A run still going when the next
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


def check_schedule(expression: str) -> None:
    """A user error unless `expression` is empty (no schedule) or a cron expression
    (five fields, or six with seconds last)."""
    if expression and not croniter.is_valid(expression):
        raise UserError(f"scan.schedule is not a cron expression: {expression!r}")


def next_run(expression: str, after: datetime.datetime) -> datetime.datetime:
    return croniter(expression, after).get_next(datetime.datetime)  # type: ignore[no-any-return]


async def run_schedule(data_dir: Path, expression: str, refresh: bool) -> None:
    """Forever: sleep until the next due time, then scan (and refresh stale tables)."""
    if not expression:
        return
    log.info("scan schedule: %s", expression)
    while True:
        now = datetime.datetime.now()
        due = next_run(expression, now)
        await trio.sleep((due - now).total_seconds())
        commands = [["scan"], ["refresh"]] if refresh else [["scan"]]
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
