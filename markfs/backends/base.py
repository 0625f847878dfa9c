"""The one small interface every storage backend implements.

Paths are `bytes`, relative to the source root, '/'-separated, `b""` for the
root itself; the namespace guarantees every component is a valid name. All
methods block: callers run them in worker threads, never on the trio loop.
Failures are raised as `OSError` with the errno the mount should report.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from markfs.identity import ContentIdentity
from markfs.schemes import Scheme

if TYPE_CHECKING:  # (annotations only: TypeIs narrows as isinstance does)
    from typing_extensions import TypeIs


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
    atime_ns: int | None = None  # last access, where the storage keeps it
    rdev: int = 0  # device number of a device node
    # which of mode/uid/gid came from the storage's own metadata (KEPT_* bits; S3), None
    # where the storage has no such metadata
    meta_kept: int | None = None
    # True: a listing's entry lacking what only a look at the entry itself gives (S3 object
    # metadata: mode, owner, mtime); `MetadataStore.complete` gives the rest
    partial: bool = False

    @property
    def is_dir_entry(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def identity(self) -> bytes:
        """What a whole-file digest of this entry is recorded under (as `Node.identity`)."""
        return ContentIdentity(self.etag, self.size, self.mtime_ns).digest_key


def hidden_twin(full_path: bytes, mark: bytes) -> bytes:
    """A fresh hidden name beside `full_path` for bytes on their way there (see
    `hidden_name`)."""
    parent, _, name = full_path.rpartition(b"/")
    return parent + b"/" + hidden_name(name, mark)


def hidden_name(name: bytes, mark: bytes) -> bytes:
    """A fresh hidden name in the folder of `name`: "." + the name + `mark` + random
    hex, the name cut so the whole fits in 255 bytes (a file with the longest name
    must still be uploadable)."""
    suffix = mark + os.urandom(4).hex().encode()
    return b"." + name[: 255 - 1 - len(suffix)] + suffix


KEPT_MODE, KEPT_UID, KEPT_GID = 1, 2, 4  # Entry.meta_kept / Node.meta_kept bits
KEPT_ALL = KEPT_MODE | KEPT_UID | KEPT_GID


@dataclass(frozen=True)
class FileAttrs:
    """Attributes a storage is to keep for a file or folder; None: not to be kept (the
    storage's default)."""

    mode: int | None = None  # st_mode, type bits included
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None
    atime_ns: int | None = None  # (SFTP: with mtime_ns, set on an upload before its rename)


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


@dataclass
class UploadControl:
    """Between the uploader and one upload running in a worker thread: `cancel` is set
    when the upload is no longer wanted (the file changed again, or is being renamed),
    and the backend stops at its next piece of I/O with ECANCELED."""

    cancel: threading.Event = field(default_factory=threading.Event)

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

    # what the storage can do, said once per URL scheme (atomic rename, modes kept, ...)
    scheme: Scheme

    def check_path(self, path: bytes) -> None:
        """OSError (ENAMETOOLONG, EINVAL) if the storage could never hold a file at
        `path`: asked before a file is accepted that is stored only later."""
        ...

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

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               attrs: FileAttrs | None = None) -> Entry:
        """Replace the file at `path` with the content of a local file in one transfer,
        with `attrs` where the storage keeps them in the same transfer (SFTP: the mode,
        None: 0600; S3: all of them, as object metadata); stops with ECANCELED once
        `control.cancel` is set. (A `PieceStore`'s large files go in pieces instead,
        journaled by the caller.)"""
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

    def connect_ahead(self) -> None:
        """Open a connection before the first request needs one (a mount starting), where
        connecting is slow; failures are left for the first request to report."""
        ...


@runtime_checkable
class PieceStore(Protocol):
    """A storage that takes a large file in numbered pieces, sent in any order and several
    at once, which become the file only when finished (S3: a multipart upload; SFTP: a
    hidden temporary file renamed into place). Pieces begun and not finished are
    invisible to readers but take space on the server: whoever begins finishes or
    aborts, and journals the token in between so a crash's leftovers are aborted later.
    Every piece but the last is `piece_size` bytes; numbers start at 1.
    """

    piece_size: int
    pieces_in_flight: int  # pieces worth sending at once

    def begin_pieces(self, path: bytes) -> str:
        """Start an upload in pieces to `path`; its token (journal it before sending)."""
        ...

    def send_piece(self, path: bytes, token: str, number: int, data: bytes,
                   control: UploadControl) -> str:
        """Send one piece; a receipt that `finish_pieces` needs (S3: the part's ETag)."""
        ...

    def finish_pieces(self, path: bytes, token: str, receipts: list[str]) -> Entry:
        """The pieces (receipts in order, all of them) become the file at `path`."""
        ...

    def abort_pieces(self, path: bytes, token: str) -> None:
        """Drop what was sent (nothing to do if it is finished or aborted already)."""
        ...


@runtime_checkable
class MetadataStore(Protocol):
    """A storage that keeps mode, owner and mtime as metadata beside the content (S3:
    x-amz-meta-mode/-uid/-gid/-mtime, as s3fs and rclone write them), which its listings
    do not carry: their entries are `partial`, and `complete` reads the rest."""

    def complete(self, path: bytes, entry: Entry) -> Entry:
        """The whole entry of a partial one (one request: S3's HEAD); ENOENT if the
        file went away since it was listed."""
        ...

    def set_attrs(self, path: bytes, attrs: FileAttrs) -> Entry:
        """Keep `attrs` (all of them; None fields: not kept) for the existing file or
        folder at `path`; the entry as it is now."""
        ...

    def mkdir_with(self, path: bytes, attrs: FileAttrs) -> Entry:
        """A new folder keeping `attrs`."""
        ...


@runtime_checkable
class ServerCopies(Protocol):
    """A storage that copies a file on its own side: the bytes never leave the server."""

    def copy_file(self, source: ServerCopies, old: bytes, new: bytes) -> Entry:
        """Copy `old` of `source` (this backend, or another on the same server) to the new
        name `new` here, which appears whole or not at all and is never replaced (EEXIST);
        EXDEV where the two are not on one server."""
        ...


@runtime_checkable
class DirectFiles(Protocol):
    """A storage whose files the mount reads and writes in place (local folders).

    Other storages are read through the content cache and written back from a
    staged copy after close.
    """

    def open(self, path: bytes, flags: int) -> OpenFile: ...

    def create(self, path: bytes, mode: int, flags: int, exclusive: bool) -> OpenFile: ...

    def mknod(self, path: bytes, mode: int, rdev: int) -> None:
        """A FIFO, socket or device node (mode has its type bits; `rdev` a device's
        number), with exactly mode's permissions."""

    def getxattr(self, path: bytes, name: bytes) -> bytes: ...

    def listxattr(self, path: bytes) -> list[bytes]: ...

    def setxattr(self, path: bytes, name: bytes, value: bytes) -> None: ...

    def removexattr(self, path: bytes, name: bytes) -> None: ...


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


# (backend class, optional interface) -> whether the class has it: as many entries as
# backend classes times interfaces (a dozen)
_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def _implements(backend: object, interface: type) -> bool:
    """Whether `backend` has the optional `interface`, decided once per backend class:
    `isinstance` against a runtime-checkable protocol looks up every member each time
    (6-10 µs here, several times a request)."""
    key = (type(backend), interface)
    known = _IMPLEMENTS.get(key)
    if known is None:
        known = _IMPLEMENTS[key] = isinstance(backend, interface)
    return known


def stores_pieces(backend: object) -> TypeIs[PieceStore]:
    return _implements(backend, PieceStore)


def keeps_metadata(backend: object) -> TypeIs[MetadataStore]:
    return _implements(backend, MetadataStore)


def copies_on_server(backend: object) -> TypeIs[ServerCopies]:
    return _implements(backend, ServerCopies)


def serves_in_place(backend: object) -> TypeIs[DirectFiles]:
    return _implements(backend, DirectFiles)
