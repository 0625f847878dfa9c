"""Starting a background daemon (`markfs mount` without --foreground) and knowing it
answers: the process side of mounting, shared by the CLI and the mount helper."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from markfs import runtime
from markfs.config import DataDir, OwnerOverride
from markfs.errors import UserError

MOUNT_WAIT_S = 30.0
DETACHED_ENV = "MARKFS_DETACHED"  # set for the daemon of a background mount: log to file only


def start_background(data_dir: DataDir, mountpoint: Path, root: str, allow_other: bool,
                     read_only: bool, owner: OwnerOverride | None = None) -> None:
    """Start a detached `mount --foreground` and wait until the mount is there."""
    data_dir.logs.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.logs / "mount.log"
    # From "/" and with -P (3.11+): nothing in the caller's directory can shadow the package.
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    args = [sys.executable, *safe_path, "-m", "markfs", "--data-dir", str(data_dir.root),
            "mount", str(mountpoint), "--foreground", "--nonempty"]  # (checked by the caller)
    if root:
        args += ["--root", root]
    if allow_other:
        args.append("--allow-other")
    if read_only:
        args.append("--read-only")
    if owner is not None:
        args += owner.arguments()
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=log_file, start_new_session=True, cwd="/",
                                env={**os.environ, DETACHED_ENV: "1"})
    deadline = time.monotonic() + MOUNT_WAIT_S
    while time.monotonic() < deadline:
        if runtime.is_mountpoint(mountpoint) and answers(mountpoint, deadline):
            return
        if proc.poll() is not None:
            raise UserError(last_error(log_path, start) or f"mount failed (see {log_path})")
        time.sleep(0.05)
    proc.terminate()
    raise UserError(f"mount did not appear within {MOUNT_WAIT_S:.0f}s (see {log_path})")


def answers(mountpoint: Path, deadline: float) -> bool:
    """Does the new mount answer a request? (In a thread: a daemon that hangs must not
    hang this command; one that died answers ENOTCONN.)"""
    import threading

    answer: list[bool] = []

    def ask() -> None:
        try:
            os.stat(mountpoint)
            answer.append(True)
        except OSError:
            answer.append(False)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(max(deadline - time.monotonic(), 0.1))
    return bool(answer and answer[0])


def last_error(log_path: Path, start: int) -> str | None:
    """The daemon's own one-line error, else the last line it logged (a traceback's end)."""
    with open(log_path, "rb") as f:
        f.seek(start)
        lines = [ln.decode(errors="replace").strip() for ln in f]
    lines = [ln for ln in lines if ln]
    for line in reversed(lines):
        if line.startswith("markfs: "):
            return line[len("markfs: "):]
    return f"mount failed: {lines[-1]} (see {log_path})" if lines else None
