"""A storage held in this process's memory, with faults a test injects (as
mountpoint-s3's mock client): the namespace's remote path — the chunk reader, staging,
the uploader, pieces, renames journaled as copy-then-delete — tested without a server.

It answers as a remote store does where the namespace asks: no atomic rename and no
modes kept (S3's answers), files in pieces above `piece_size`, an ETag per version of
a file (a read at an older one is ESTALE). Every call is counted by operation
(`calls`), so a test can say how many requests an operation costs.

Faults (`faults`): an operation fails with an errno for the next N calls or until
cleared, or is held (a server that does not answer) until released. Thread-safe: the
namespace calls it from worker threads.
"""

from __future__ import annotations

import errno
import itertools
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from markfs.backends.base import Entry, FileAttrs, UploadControl
from markfs.errors import SourceRefused
from markfs.schemes import SCHEMES

PIECE_SIZE = 256 * 1024  # small, so a test's large file is a few hundred KiB
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755


@dataclass
class Fault:
    """One injected failure: `code` for `times` more calls (None: until cleared), of
    paths starting with `path` (None: all); or, `held`, calls wait until it is set."""

    code: int = errno.EIO
    times: int | None = None
    path: bytes | None = None
    held: threading.Event | None = None
    refused: bool = False  # for good (`SourceRefused`: access denied, no such bucket)

    def applies_to(self, path: bytes) -> bool:
        return self.path is None or path.startswith(self.path)


class Faults:
    """The failures injected into one backend, by operation name (`stat`, `upload`,
    `send_piece`, `read_range`, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_op: dict[str, Fault] = {}

    def fail(self, op: str, code: int = errno.EIO, times: int | None = None,
             path: bytes | None = None, refused: bool = False) -> None:
        """`op` fails with `code`: the next `times` calls (None: until `clear`);
        `refused`: as a source refuses for good."""
        with self._lock:
            self._by_op[op] = Fault(code, times, path, refused=refused)

    def hold(self, op: str) -> threading.Event:
        """Calls of `op` wait (a server that does not answer) until the event is set."""
        released = threading.Event()
        with self._lock:
            self._by_op[op] = Fault(held=released)
        return released

    def clear(self, op: str | None = None) -> None:
        """No more failures of `op` (None: of any); held calls go on."""
        with self._lock:
            for name in [op] if op else list(self._by_op):
                fault = self._by_op.pop(name, None)
                if fault is not None and fault.held is not None:
                    fault.held.set()

    def meet(self, op: str, path: bytes) -> None:
        """Called at the start of each operation: raises or waits as injected."""
        with self._lock:
            fault = self._by_op.get(op)
            if fault is None or not fault.applies_to(path):
                return
            if fault.held is None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._by_op[op]
        if fault.held is not None:
            fault.held.wait()
            return
        failure = SourceRefused if fault.refused else OSError
        raise failure(fault.code, f"{op} {path!r}: injected failure")


@dataclass
class MemoryFile:
    data: bytes
    mtime_ns: int
    version: int


@dataclass
class _Pieces:
    path: bytes
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryBackend:
    """Files and folders in dicts, behind one lock; paths as the namespace gives them."""

    scheme = SCHEMES["s3"]  # it stands in for S3: renames journaled, modes not kept

    def __init__(self, piece_size: int = PIECE_SIZE, created_ns: int = 0) -> None:
        self.piece_size, self.pieces_in_flight = piece_size, 4
        self.files: dict[bytes, MemoryFile] = {}
        self.folders: set[bytes] = {b""}
        self.unfinished: dict[str, _Pieces] = {}  # token -> pieces sent so far
        self.calls: Counter[str] = Counter()
        self.faults = Faults()
        self._lock = threading.RLock()
        self._versions = itertools.count(1)
        self._uploads = itertools.count(1)
        self._created_ns = created_ns

    # -- what a test does on the "server" -------------------------------------

    def put(self, path: bytes, data: bytes) -> None:
        """A file written beside markfs (its folders made as needed)."""
        with self._lock:
            parts = path.split(b"/")
            for depth in range(1, len(parts)):
                self.folders.add(b"/".join(parts[:depth]))
            self.files[path] = MemoryFile(data, time.time_ns(), next(self._versions))

    def get(self, path: bytes) -> bytes | None:
        with self._lock:
            found = self.files.get(path)
            return None if found is None else found.data

    # -- the Backend interface ----------------------------------------------

    def _enter(self, op: str, path: bytes) -> None:
        with self._lock:
            self.calls[op] += 1
        self.faults.meet(op, path)

    def check_path(self, path: bytes) -> None:
        if len(path) > 1024:
            raise OSError(errno.ENAMETOOLONG, "paths are at most 1024 bytes here")

    def _entry(self, path: bytes) -> Entry:
        name = path.rsplit(b"/", 1)[-1]
        found = self.files.get(path)
        if found is not None:
            return Entry(name=name, mode=FILE_MODE, uid=0, gid=0, size=len(found.data),
                         mtime_ns=found.mtime_ns, ctime_ns=found.mtime_ns,
                         etag=b"v%d" % found.version)
        if path in self.folders:
            return Entry(name=name, mode=DIR_MODE, uid=0, gid=0, size=0,
                         mtime_ns=self._created_ns, ctime_ns=self._created_ns, nlink=2)
        raise OSError(errno.ENOENT, f"no such file: {path!r}")

    def _below(self, path: bytes) -> list[bytes]:
        """Every path directly below folder `path`."""
        prefix = path + b"/" if path else b""
        return sorted(p for p in (*self.files, *self.folders)
                      if p and p.startswith(prefix) and b"/" not in p[len(prefix):])

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        self._enter("list", path)
        with self._lock:
            if path not in self.folders:
                raise OSError(errno.ENOENT, f"no such folder: {path!r}")
            entries = [self._entry(p) for p in self._below(path)]
        for start in range(0, len(entries), 1000):
            yield entries[start:start + 1000]
        if not entries:
            yield []

    def stat(self, path: bytes) -> Entry:
        self._enter("stat", path)
        with self._lock:
            return self._entry(path)

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        self._enter("read_range", path)
        with self._lock:
            found = self.files.get(path)
            if found is None:
                raise OSError(errno.ENOENT, f"no such file: {path!r}")
            if etag is not None and etag != b"v%d" % found.version:
                raise OSError(errno.ESTALE, f"{path!r} changed since it was listed")
            return found.data[offset:offset + size]

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        data = self.read_range(path, offset, size, etag)
        for start in range(0, len(data), 64 * 1024):
            yield data[start:start + 64 * 1024]

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               attrs: FileAttrs | None = None) -> Entry:
        self._enter("upload", path)
        with open(local_file, "rb") as f:
            data = f.read()
        if control is not None:
            control.check()
        return self._store(path, data)

    def _store(self, path: bytes, data: bytes) -> Entry:
        with self._lock:
            parent = path.rpartition(b"/")[0]
            if parent not in self.folders:
                raise OSError(errno.ENOENT, f"no folder {parent!r}")
            self.files[path] = MemoryFile(data, time.time_ns(), next(self._versions))
            return self._entry(path)

    def mkdir(self, path: bytes, mode: int) -> None:
        self._enter("mkdir", path)
        with self._lock:
            if path in self.folders or path in self.files:
                raise OSError(errno.EEXIST, f"{path!r} exists")
            if path.rpartition(b"/")[0] not in self.folders:
                raise OSError(errno.ENOENT, f"no parent folder for {path!r}")
            self.folders.add(path)

    def rmdir(self, path: bytes) -> None:
        self._enter("rmdir", path)
        with self._lock:
            if path not in self.folders:
                raise OSError(errno.ENOENT, f"no such folder: {path!r}")
            if self._below(path):
                raise OSError(errno.ENOTEMPTY, f"{path!r} is not empty")
            self.folders.discard(path)

    def unlink(self, path: bytes) -> None:
        self._enter("unlink", path)
        with self._lock:
            if self.files.pop(path, None) is None:
                raise OSError(errno.ENOENT, f"no such file: {path!r}")

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        """Every file below `old` (or the file) moved, then the folders: as S3's copy
        then delete, though without a moment when both are there."""
        self._enter("rename", old)
        if flags:
            raise OSError(errno.EINVAL, "no atomic rename with flags here")
        with self._lock:
            if old not in self.files and old not in self.folders:
                raise OSError(errno.ENOENT, f"no such file: {old!r}")
            for path in [p for p in self.files if p == old or p.startswith(old + b"/")]:
                self.files[new + path[len(old):]] = self.files.pop(path)
            moved = {p for p in self.folders if p == old or p.startswith(old + b"/")}
            self.folders -= moved
            self.folders |= {new + p[len(old):] for p in moved}

    def symlink(self, target: bytes, path: bytes) -> None:
        raise OSError(errno.EPERM, "no symbolic links here")

    def link(self, existing: bytes, new: bytes) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    def chmod(self, path: bytes, mode: int) -> None:
        """Accepted and not kept (as S3 without metadata)."""

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        """Accepted and not kept."""

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        """Accepted and not kept."""

    def truncate(self, path: bytes, size: int) -> None:
        raise OSError(errno.ENOTSUP, "files are truncated through an open file")

    def check(self) -> str:
        self._enter("check", b"")
        return f"memory: {len(self.files)} files"

    def connect_ahead(self) -> None:
        """Nothing to connect."""

    # -- PieceStore ------------------------------------------------------------

    def begin_pieces(self, path: bytes) -> str:
        self._enter("begin_pieces", path)
        token = f"pieces-{next(self._uploads)}"
        with self._lock:
            self.unfinished[token] = _Pieces(path)
        return token

    def send_piece(self, path: bytes, token: str, number: int, data: bytes,
                   control: UploadControl) -> str:
        self._enter("send_piece", path)
        control.check()
        with self._lock:
            pieces = self.unfinished.get(token)
            if pieces is None:
                raise OSError(errno.ENOENT, f"no upload {token}")
            pieces.parts[number] = bytes(data)
        return f"{token}/{number}"

    def finish_pieces(self, path: bytes, token: str, receipts: list[str]) -> Entry:
        self._enter("finish_pieces", path)
        with self._lock:
            pieces = self.unfinished.pop(token, None)
            if pieces is None:
                raise OSError(errno.ENOENT, f"no upload {token}")
            numbers = [int(r.rsplit("/", 1)[1]) for r in receipts]
            if numbers != list(range(1, len(numbers) + 1)) or set(numbers) != set(pieces.parts):
                raise OSError(errno.EINVAL, f"pieces {numbers} do not make the file")
            return self._store(path, b"".join(pieces.parts[n] for n in numbers))

    def abort_pieces(self, path: bytes, token: str) -> None:
        self._enter("abort_pieces", path)
        with self._lock:
            self.unfinished.pop(token, None)
