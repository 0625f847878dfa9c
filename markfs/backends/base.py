"""The one small interface every storage backend implements.

Paths are `bytes`, relative to the source root, '/'-separated, `b""` for the
root itself; the namespace guarantees every component is a valid name. All
methods block: callers run them in worker threads, never on the trio loop.
Failures are raised as `OSError` with the errno the mount should report.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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
    etag: bytes | None = None  # content identity: S3 ETag, or size+mtime where none exists


@dataclass(frozen=True)
class S3Location:
    """Where an s3:// source lives (credentials come from boto3's usual chain)."""

    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str | None
    region: str | None


@dataclass(frozen=True)
class SftpLocation:
    """Where an sftp:// source lives (the key from key_file or ssh-agent)."""

    user: str
    host: str
    port: int
    root: str  # absolute path on the server
    key_file: str | None
    known_hosts: str | None
    accept_unknown_host: bool


def _ignore_multipart(upload_id: str | None) -> None:
    """No journal to tell (uploads made outside the uploader)."""


@dataclass
class UploadControl:
    """Between the uploader and one upload running in a worker thread.

    `cancel` is set when the upload is no longer wanted (the file changed again, or is
    being renamed): the backend stops at its next piece with ECANCELED.
    `record_multipart` is told the id of an S3 multipart upload before its first part
    is sent, and None once it is completed or aborted, so a crash in between leaves
    the id in the journal for the next start to abort.
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    record_multipart: Callable[[str | None], None] = _ignore_multipart

    def check(self) -> None:
        if self.cancel.is_set():
            raise OSError(errno.ECANCELED, "upload cancelled: the file changed or moved")


class OpenFile(Protocol):
    """An open file of a backend, positioned by explicit offsets."""

    def read(self, offset: int, size: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> int: ...

    def truncate(self, size: int) -> None: ...

    def fsync(self, datasync: bool) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """A storage that markfs shows as a tree.

    Storages without some notion (symlinks on S3, say) raise OSError with
    EPERM or ENOTSUP from those methods; chmod/chown/utime may be accepted and
    ignored where the storage keeps no such attribute.
    """

    # False where a rename is a copy then a delete (S3): the namespace journals those.
    atomic_rename: bool

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        """The entries of a directory, a page at a time."""
        ...

    def stat(self, path: bytes) -> Entry: ...

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        """Bytes of a file; ESTALE if its content no longer matches `etag`."""
        ...

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        """The same bytes as one request, in pieces as they arrive (sequential reads)."""
        ...

    def upload(self, path: bytes, local_file: str,
               control: UploadControl | None = None) -> Entry:
        """Replace the file at `path` with the content of a local file, whole; stops with
        ECANCELED once `control.cancel` is set."""
        ...

    def mkdir(self, path: bytes, mode: int) -> None: ...

    def rmdir(self, path: bytes) -> None: ...

    def unlink(self, path: bytes) -> None: ...

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        """Rename; `flags` takes RENAME_NOREPLACE and RENAME_EXCHANGE (Linux values)."""
        ...

    def symlink(self, target: bytes, path: bytes) -> None: ...

    def link(self, existing: bytes, new: bytes) -> None: ...

    def chmod(self, path: bytes, mode: int) -> None: ...

    def chown(self, path: bytes, uid: int, gid: int) -> None: ...

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None: ...

    def truncate(self, path: bytes, size: int) -> None: ...

    def check(self) -> str:
        """Verify the backend is reachable and usable; returns a one-line summary."""
        ...


@runtime_checkable
class MultipartStore(Protocol):
    """A storage whose large uploads are multipart uploads left behind by a crash (S3)."""

    def abort_multipart(self, path: bytes, upload_id: str) -> None:
        """Abort one (already completed or aborted: nothing to do)."""
        ...


@runtime_checkable
class DirectFiles(Protocol):
    """A storage whose files the mount reads and writes in place (local folders).

    Other storages are read through the content cache and written back from a
    staged copy after close.
    """

    def open(self, path: bytes, flags: int) -> OpenFile: ...

    def create(self, path: bytes, mode: int, flags: int, exclusive: bool) -> OpenFile: ...


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
