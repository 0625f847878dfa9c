"""The staging area: local copies of remote files being written, and upload snapshots.

`DATA_DIR/staging/open-<node>-<n>` is the copy a writer works on while a file is
open; at close it becomes `upload-<n>`, owned by one row of the upload journal,
and is deleted once that upload succeeded. Files with no journal row after a
restart belong to writers that never closed: they are removed at start.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path


class StagingArea:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)

    def new_session(self, node_id: int) -> Path:
        """A fresh, empty file for one writer of a node."""
        path = self.root / f"open-{node_id}-{os.getpid()}-{next(self._numbers)}"
        path.write_bytes(b"")
        return path

    def snapshot(self, session: Path, still_open: bool) -> Path:
        """The file to upload: the session itself if no writer keeps it, else a copy."""
        target = self.root / f"upload-{os.getpid()}-{next(self._numbers)}"
        if still_open:
            shutil.copyfile(session, target)
        else:
            os.replace(session, target)
        return target

    def remove(self, path: str | Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def sweep(self, keep: set[str]) -> int:
        """Delete staged files no journal row names (writers a crash interrupted)."""
        removed = 0
        for path in self.root.iterdir():
            if str(path) not in keep:
                self.remove(path)
                removed += 1
        return removed
