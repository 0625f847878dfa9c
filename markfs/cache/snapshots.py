"""Rendered table snapshots: whole immutable files in the content cache, named by content.

A snapshot file (a managed table's `data.parquet`, `schema.json`, ...) is
rendered to a temporary file next to the store, hashed with xxh3-128 while it
is read once, and renamed to `DATA_DIR/cache/snapshots/<hh>/<hash>`. Identical
renders are stored once. Unlike cached chunks these are never evicted by the
LRU: they are the only copy of what the mount shows, so a blob lives exactly
as long as some `table_files` row names it (`remove_unreferenced`). A reader
holds an open descriptor, so a blob removed while open stays readable until
closed. Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import xxhash

_HASH_BLOCK = 4 * 1024 * 1024
_ABANDONED_AFTER_S = 600.0


class SnapshotStore:
    def __init__(self, cache_root: Path) -> None:
        self.root = cache_root / "snapshots"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def temp_file(self, suffix: str) -> Path:
        """A new empty file on the store's filesystem, for a render to write into."""
        fd, name = tempfile.mkstemp(prefix=".render-", suffix=suffix, dir=self.root)
        os.close(fd)
        return Path(name)

    def add(self, rendered: Path) -> tuple[str, int]:
        """Move a finished render into the store; returns (digest, size)."""
        hasher = xxhash.xxh3_128()
        size = 0
        with open(rendered, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                hasher.update(block)
                size += len(block)
        digest = hasher.hexdigest()
        target = self.path(digest)
        target.parent.mkdir(exist_ok=True)
        os.chmod(rendered, 0o444)
        os.replace(rendered, target)  # same bytes if it existed: replacing is harmless
        return digest, size

    def open(self, digest: str) -> SnapshotFile:
        """An open blob (raises FileNotFoundError if it is gone)."""
        return SnapshotFile(os.open(self.path(digest), os.O_RDONLY | os.O_CLOEXEC))

    def contains(self, digest: str) -> bool:
        return self.path(digest).exists()

    def digests(self) -> set[str]:
        return {p.name for p in self.root.glob("??/*") if not p.name.startswith(".")}

    def remove_unreferenced(self, referenced: Iterable[str]) -> int:
        """Delete blobs no snapshot names any more, and leftover temporary renders."""
        keep = set(referenced)
        removed = 0
        for digest in self.digests() - keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(digest))
                removed += 1
        for temp in self.root.glob(".render-*"):
            # a render in progress writes all the time; one idle this long was abandoned
            with contextlib.suppress(FileNotFoundError):
                if time.time() - temp.stat().st_mtime > _ABANDONED_AFTER_S:
                    temp.unlink()
        return removed

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("??/*"))


class SnapshotFile:
    """An open snapshot blob: an `OpenFile` that only reads (snapshots never change)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def write(self, offset: int, data: bytes) -> int:
        raise OSError(errno.EROFS, "table snapshots are read-only")

    def truncate(self, size: int) -> None:
        raise OSError(errno.EROFS, "table snapshots are read-only")

    def fsync(self, datasync: bool) -> None:
        pass  # nothing was written

    def close(self) -> None:
        os.close(self.fd)
