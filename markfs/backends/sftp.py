"""The `sftp://` backend: a directory on an SSH server, through the OpenSSH client.

Each session is an `ssh` process speaking SFTP (`sftp_wire`); a small pool of them
serves the worker threads, so transfers run in parallel. ssh checks the server's host
key against known_hosts (the source's file, else the user's), unless the user opted in
to trusting a new host on first use; it authenticates with the source's key file, else
ssh-agent and the user's usual keys. A session that broke is replaced on next use;
every answer is awaited at most `timeout` seconds. Reads and writes are pipelined;
uploads (whole, or in pieces while the file is still being written) go to a hidden
temporary name and are renamed into place, so a reader never sees half a file;
listings leave those names out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from typing import TypeVar

from markfs.backends.base import (
    Entry,
    FileAttrs,
    ServerCopies,
    SftpLocation,
    UploadControl,
    hidden_twin,
)
from markfs.backends.sftp_packets import (
    O_CREAT,
    O_READ,
    O_TRUNC,
    O_WRITE,
    Attrs,
    SessionBroken,
)
from markfs.backends.sftp_sessions import SessionPool
from markfs.backends.sftp_wire import SftpSession
from markfs.errors import SourceRefused
from markfs.identity import observed_version, size_and_mtime
from markfs.schemes import SCHEMES

PAGE_SIZE = 1000
SETTLE_NS = 2_000_000_000  # mtimes are whole seconds; 1 s more for clock skew
READ_WINDOW = 128  # read requests in flight per stream (4-8 MiB)
WRITE_WINDOW = 64  # write requests in flight per upload
PIECE_SIZE = 8 * 1024 * 1024  # pieces of an upload written while the file is written
TEMP_MARK = b".markfs-upload-"  # in the hidden names of uploads in progress (not listed)
T = TypeVar("T")


def identity(size: int, mtime_ns: int, now_ns: int) -> bytes:
    """The content identity SFTP allows: size and whole-second mtime. A file changed
    within the last SETTLE_NS may change again within the same second without either
    moving, so while it is that young the time of this observation is part of its
    identity: each new listing of it is a new version to the content cache."""
    return observed_version(size, mtime_ns, now_ns, SETTLE_NS)


def same_version(etag: bytes, attrs: Attrs) -> bool:
    """Does the open file still have the size and mtime its identity was made of? (A
    read of a file changed since it was listed must not mix the new bytes with the old
    size: the reader looks again, as S3's If-Match makes it.)"""
    current = f"{attrs.size or 0}".encode(), f"{(attrs.mtime or 0) * 10**9}".encode()
    return size_and_mtime(etag) == current


def _entry(name: bytes, attrs: Attrs, target: bytes | None = None) -> Entry:
    mtime_ns = (attrs.mtime or 0) * 1_000_000_000
    size = attrs.size or 0
    return Entry(name=name, mode=attrs.mode or 0, uid=attrs.uid or 0, gid=attrs.gid or 0,
                 size=size, mtime_ns=mtime_ns, ctime_ns=mtime_ns, nlink=1, target=target,
                 etag=identity(size, mtime_ns, time.time_ns()),
                 atime_ns=None if attrs.atime is None else attrs.atime * 1_000_000_000)


def private_until(mode: int | None) -> Attrs:
    """A new upload's temporary file is made with its file's permission bits, or 0600
    when they are not known yet (others must not read it before they are set)."""
    return Attrs(mode=0o600 if mode is None else stat.S_IMODE(mode))


def _exists(session: SftpSession, path: bytes) -> bool:
    try:
        session.stat(path, follow=False)
    except FileNotFoundError:
        return False
    return True


def _pieces(data: memoryview, size: int) -> Iterator[memoryview]:
    return (data[start : start + size] for start in range(0, len(data), size))


def _file_pieces(path: str, size: int) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while piece := src.read(size):
            yield piece


class SftpBackend:
    """A directory on an SSH server, reached through a pool of `ssh` processes."""

    scheme = SCHEMES["sftp"]

    def check_path(self, path: bytes) -> None:
        """(The server's limits are its own: an upload meets them, and is parked.)"""

    def __init__(self, location: SftpLocation, *, pool_size: int = 4,
                 timeout: float = 30.0) -> None:
        self.loc = location
        self.timeout = timeout
        self.piece_size, self.pieces_in_flight = PIECE_SIZE, pool_size
        self.sessions = SessionPool(location, pool_size, timeout)

    def _abs(self, path: bytes) -> bytes:
        root = os.fsencode(self.loc.root).rstrip(b"/")
        return root + b"/" + path if path else (root or b"/")

    # -- reading -------------------------------------------------------------------

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        full = self._abs(path)

        def listing(session: SftpSession) -> list[Entry]:
            found = [(name, attrs) for name, attrs in session.listdir(full)
                     if not (name.startswith(b".") and TEMP_MARK in name)]  # uploads
            links = [name for name, attrs in found if stat.S_ISLNK(attrs.mode or 0)]
            targets = dict(zip(links, session.readlinks([full + b"/" + n for n in links]),
                               strict=True))
            return [_entry(name, attrs, targets.get(name)) for name, attrs in found]

        try:
            entries = self.sessions.run(f"list {os.fsdecode(full)}", listing)
        except FileNotFoundError:
            raise self._refused_if_root_gone() from None
        for start in range(0, max(len(entries), 1), PAGE_SIZE):
            yield entries[start : start + PAGE_SIZE]

    def stat(self, path: bytes) -> Entry:
        full = self._abs(path)

        def do(session: SftpSession) -> Entry:
            attrs = session.stat(full, follow=False)
            target = session.readlinks([full])[0] if stat.S_ISLNK(attrs.mode or 0) else None
            return _entry(path.rsplit(b"/", 1)[-1], attrs, target)

        return self.sessions.run(f"stat {os.fsdecode(full)}", do)

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        return b"".join(self.read_stream(path, offset, size, etag))

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        """Pipelined reads on one pooled session, yielded in order."""
        full = self._abs(path)
        what = f"read {os.fsdecode(full)}"
        try:
            with self.sessions.session() as session:
                handle = session.open(full, O_READ)
                try:
                    attrs = session.fstat(handle)
                    if etag is not None and not same_version(etag, attrs):
                        raise OSError(errno.ESTALE, "changed on the server")
                    yield from session.read_stream(handle, offset,
                                                   min(offset + size, attrs.size or 0),
                                                   READ_WINDOW)
                finally:
                    session.close_handle(handle)
        except OSError as exc:
            raise OSError(exc.errno or errno.EIO, f"{what}: {exc.strerror}") from None
        except SessionBroken as exc:
            raise OSError(errno.EIO, f"{what}: {exc}") from None

    # -- writing -------------------------------------------------------------------

    def _temp_name(self, path: bytes) -> bytes:
        """A fresh hidden name next to the file (unique: a stream aborted in the
        background must not remove the temporary file of the upload that follows it)."""
        return hidden_twin(self._abs(path), TEMP_MARK)

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               attrs: FileAttrs | None = None) -> Entry:
        mode = None if attrs is None else attrs.mode
        full, temp = self._abs(path), self._temp_name(path)
        check = (control or UploadControl()).check
        size = os.stat(local_file).st_size

        def do(session: SftpSession) -> None:
            try:
                handle = session.open(temp, O_WRITE | O_CREAT | O_TRUNC, private_until(mode))
                try:
                    sent = session.write_stream(
                        handle, 0, _file_pieces(local_file, session.write_size),
                        WRITE_WINDOW, check)
                finally:
                    session.close_handle(handle)
                if sent != size:  # (a writer emptied the staged copy: its new content
                    # is journaled anew; not the server's failure, so not EIO)
                    raise OSError(errno.ECANCELED, f"the file changed while it was sent "
                                  f"({sent} of {size} bytes)")
                if attrs is not None and attrs.atime_ns is not None and (
                        attrs.mtime_ns is not None):  # (tar's and rsync's times: no utime
                    # and stat after the upload; a rename keeps them)
                    session.lsetstat(temp, Attrs(atime=attrs.atime_ns // 10**9,
                                                 mtime=attrs.mtime_ns // 10**9))
                session.rename(temp, full)
            except BaseException:
                with contextlib.suppress(Exception):  # (the session may be gone)
                    session.remove(temp)
                raise

        try:
            self.sessions.run(f"upload {os.fsdecode(full)}", do)
        except FileNotFoundError:
            raise self._refused_if_root_gone() from None
        return self.stat(path)

    def _refused_if_root_gone(self) -> OSError:
        """A missing folder: the source refuses us for good if it is the source's own
        root (moved or deleted on the server), else just that folder (ENOENT)."""
        root = self._abs(b"")
        try:
            self.sessions.run(f"stat {os.fsdecode(root)}", lambda s: s.stat(root))
        except FileNotFoundError:
            return SourceRefused(errno.EIO, f"the source's folder {os.fsdecode(root)} does "
                                            "not exist on the server")
        return OSError(errno.ENOENT, "no such file or folder")

    # -- uploads in pieces: writes into a temporary file, renamed into place ------

    def begin_pieces(self, path: bytes) -> str:
        temp = self._temp_name(path)
        self.sessions.run(f"upload {os.fsdecode(temp)}", lambda s: s.close_handle(
            s.open(temp, O_WRITE | O_CREAT | O_TRUNC, private_until(None))))
        return os.fsdecode(temp)

    def send_piece(self, path: bytes, token: str, number: int, data: bytes,
                   control: UploadControl) -> str:
        def do(session: SftpSession) -> None:
            handle = session.open(os.fsencode(token), O_WRITE)
            try:
                session.write_stream(handle, (number - 1) * self.piece_size,
                                     _pieces(memoryview(data), session.write_size),
                                     WRITE_WINDOW, control.check)
            finally:
                session.close_handle(handle)

        self.sessions.run(f"upload {token} piece {number}", do)
        return ""

    def finish_pieces(self, path: bytes, token: str, receipts: list[str]) -> Entry:
        full = self._abs(path)
        self.sessions.run(f"upload {os.fsdecode(full)}",
                          lambda s: s.rename(os.fsencode(token), full))
        return self.stat(path)

    def abort_pieces(self, path: bytes, token: str) -> None:
        def do(session: SftpSession) -> None:
            with contextlib.suppress(FileNotFoundError):  # finished or aborted already
                session.remove(os.fsencode(token))

        self.sessions.run(f"remove {token}", do)

    def mkdir(self, path: bytes, mode: int) -> None:
        full = self._abs(path)

        def do(session: SftpSession) -> None:
            try:
                session.mkdir(full, Attrs(mode=stat.S_IMODE(mode)))
            except OSError as exc:  # SFTP v3 says only "failure": find the errno
                if exc.errno == errno.EIO and _exists(session, full):
                    raise OSError(errno.EEXIST, "File exists") from None
                raise

        self.sessions.run(f"mkdir {os.fsdecode(full)}", do)

    def rmdir(self, path: bytes) -> None:
        full = self._abs(path)

        def do(session: SftpSession) -> None:
            try:
                session.rmdir(full)
            except OSError as exc:  # SFTP v3 says only "failure": find the errno
                if exc.errno == errno.EIO and session.listdir(full):
                    raise OSError(errno.ENOTEMPTY, "Directory not empty") from None
                raise

        self.sessions.run(f"rmdir {os.fsdecode(full)}", do)

    def unlink(self, path: bytes) -> None:
        full = self._abs(path)
        self.sessions.run(f"unlink {os.fsdecode(full)}", lambda s: s.remove(full))

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        src, dst = self._abs(old), self._abs(new)
        if flags:
            raise OSError(errno.EINVAL, "SFTP cannot rename atomically with flags")
        self.sessions.run(f"rename {os.fsdecode(src)}", lambda s: s.rename(src, dst))

    def symlink(self, target: bytes, path: bytes) -> None:
        full = self._abs(path)
        self.sessions.run(f"symlink {os.fsdecode(full)}", lambda s: s.symlink(target, full))

    def link(self, existing: bytes, new: bytes) -> None:
        raise OSError(errno.EPERM, "hard links over SFTP are not supported")

    def chmod(self, path: bytes, mode: int) -> None:
        full = self._abs(path)
        self.sessions.run(f"chmod {os.fsdecode(full)}",
                  lambda s: s.lsetstat(full, Attrs(mode=stat.S_IMODE(mode))))

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        full = self._abs(path)

        def do(session: SftpSession) -> None:
            current = session.stat(full, follow=False)
            session.lsetstat(full, Attrs(uid=current.uid if uid < 0 else uid,
                                         gid=current.gid if gid < 0 else gid))

        self.sessions.run(f"chown {os.fsdecode(full)}", do)

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        full = self._abs(path)

        def do(session: SftpSession) -> None:
            current = session.stat(full, follow=False)
            atime = current.atime if atime_ns is None else atime_ns // 10**9
            mtime = current.mtime if mtime_ns is None else mtime_ns // 10**9
            session.lsetstat(full, Attrs(atime=atime, mtime=mtime))

        self.sessions.run(f"utime {os.fsdecode(full)}", do)

    def truncate(self, path: bytes, size: int) -> None:
        full = self._abs(path)
        self.sessions.run(f"truncate {os.fsdecode(full)}",
                          lambda s: s.setstat(full, Attrs(size=size)))

    def check(self) -> str:
        full = self._abs(b"")
        attrs = self.sessions.run(f"stat {os.fsdecode(full)}", lambda s: s.stat(full))
        if not stat.S_ISDIR(attrs.mode or 0):
            raise OSError(errno.ENOTDIR, f"{os.fsdecode(full)} is not a directory")
        count = sum(len(page) for page in self.list_pages(b""))
        return (f"sftp://{self.loc.user}@{self.loc.host}:{self.loc.port}{os.fsdecode(full)}: "
                f"directory, {count} entries at the top level")

    def copy_file(self, source: ServerCopies, old: bytes, new: bytes) -> Entry:
        """OpenSSH's copy-data into a hidden name, then a plain SFTP rename (which never
        replaces a file)."""
        if not isinstance(source, SftpBackend) or (source.loc.host, source.loc.port) != (
                self.loc.host, self.loc.port):
            raise OSError(errno.EXDEV, "not on this SFTP server")
        src, dst, temp = source._abs(old), self._abs(new), self._temp_name(new)

        def do(session: SftpSession) -> None:
            if b"copy-data" not in session.extensions:
                raise OSError(errno.EOPNOTSUPP, "the server cannot copy on its side "
                              "(no copy-data extension)")
            try:
                session.copy_data(src, temp)
                session.rename(temp, dst, replace=False)
            except BaseException:
                with contextlib.suppress(Exception):
                    session.remove(temp)
                raise

        self.sessions.run(f"copy to {os.fsdecode(dst)}", do)
        return self.stat(new)

    def connect_ahead(self) -> None:
        """One session started now: starting ssh and its key exchange take ~0.2 s that
        the first `ls` would otherwise wait for."""
        with contextlib.suppress(OSError, SessionBroken), self.sessions.session():
            pass

    def close(self) -> None:
        self.sessions.close()
