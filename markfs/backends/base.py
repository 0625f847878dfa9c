"""The one small interface every storage backend implements.

Paths are `bytes`, relative to the source root, '/'-separated, `b""` for the
root itself; the namespace guarantees every component is a valid name. All
methods block: callers run them in worker threads, never on the trio loop.
Failures are raised as `OSError` with the errno the mount should report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    """One directory entry with the attributes its listing gave."""

    name: bytes
    mode: int  # st_mode, with file type bits
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    target: bytes | None = None  # symlink target


class OpenFile(Protocol):
    """An open file of a backend, positioned by explicit offsets."""

    def read(self, offset: int, size: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> int: ...

    def truncate(self, size: int) -> None: ...

    def fsync(self, datasync: bool) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """A storage that markfs shows as a tree."""

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        """The entries of a directory, a page at a time."""
        ...

    def stat(self, path: bytes) -> Entry: ...

    def open(self, path: bytes, flags: int) -> OpenFile: ...

    def create(self, path: bytes, mode: int, flags: int, exclusive: bool) -> OpenFile: ...

    def mkdir(self, path: bytes, mode: int) -> None: ...

    def rmdir(self, path: bytes) -> None: ...

    def unlink(self, path: bytes) -> None: ...

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        """Rename; `flags` takes RENAME_NOREPLACE and RENAME_EXCHANGE (Linux values)."""
        ...

    def symlink(self, target: bytes, path: bytes) -> None: ...

    def readlink(self, path: bytes) -> bytes: ...

    def link(self, existing: bytes, new: bytes) -> None: ...

    def chmod(self, path: bytes, mode: int) -> None: ...

    def chown(self, path: bytes, uid: int, gid: int) -> None: ...

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None: ...

    def truncate(self, path: bytes, size: int) -> None: ...

    def check(self) -> str:
        """Verify the backend is reachable and usable; returns a one-line summary."""
        ...


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
