"""The staging area: local copies of remote files being written, and upload snapshots.

`DATA_DIR/staging/open-<node>-<owner>-<n>` is the copy a writer works on while a
file is open; at close it is journaled, owned by one row of the upload journal,
and deleted once that upload succeeded. `<owner>` is the daemon's owner token
(pid and start time), because several daemons may share one data directory:
a file with no journal row belongs to a writer that never closed, and is
removed only once the daemon that made it is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

from markfs.backends.local import LOCAL_DISK_TYPES, SMALL_WRITE, filesystem_types
from markfs.runtime import owner_alive, owner_token


class StagingArea:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)
        self._owner = owner_token().replace(":", "_")
        # on a local disk a small write is a copy into the page cache, done on the loop
        # (as `LocalFile.write_small`); elsewhere every write takes a worker thread
        self.small_write = (SMALL_WRITE if filesystem_types(os.fsencode(root))
                            <= LOCAL_DISK_TYPES else 0)

    def new_session(self, node_id: int) -> Path:
        """A fresh, empty file for one writer of a node."""
        path = self.root / f"open-{node_id}-{self._owner}-{next(self._numbers)}"
        # (os.open: a Python file object for an empty file cost ~40 µs of every create)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))
        return path

    def remove(self, path: str | Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def sweep(self, keep: set[str]) -> int:
        """Delete staged files no journal row names whose daemon is gone (writers a
        crash interrupted); those of running daemons are theirs."""
        removed = 0
        for path in self.root.iterdir():
            if str(path) not in keep and not owner_alive(_owner_of(path.name)):
                self.remove(path)
                removed += 1
        return removed


def _owner_of(name: str) -> str | None:
    """The owner token in a staged file's name (None for names of older versions)."""
    for part in name.split("-"):
        pid, sep, started = part.partition("_")
        start, at, host = started.partition("@")  # (a shared catalog's token names its host)
        if sep and pid.isdigit() and start.isdigit():
            return f"{pid}:{start}{at}{host}"
    return None
