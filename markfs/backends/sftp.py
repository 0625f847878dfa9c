"""The `sftp://` backend: a directory on an SSH server (paramiko).

A small pool of SSH connections serves the worker threads, one SFTP session
each, so transfers run in parallel. The server's host key must be in the
known_hosts file unless the user opted in to accepting an unknown one. A
connection that broke is replaced on next use; calls are bounded by a timeout.
Reads are pipelined; uploads (whole, or in pieces while the file is still being
written) go to a hidden temporary name and are renamed into place, so a reader never
sees half a file; listings leave those names out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import paramiko
from paramiko.sftp import CMD_DATA, CMD_READ, int64

from markfs.backends.base import Entry, SftpLocation, UploadControl

PAGE_SIZE = 1000
SETTLE_NS = 2_000_000_000  # mtimes are whole seconds; 1 s more for clock skew
READ_PIECE = 32768  # the largest read request OpenSSH answers whole
READ_WINDOW = 128  # read requests in flight per stream (4 MiB)
WRITE_PIECE = 1 << 20  # bytes between cancel checks of a piece being written
PIECE_SIZE = 8 * 1024 * 1024  # pieces of an upload written while the file is written
TEMP_MARK = ".markfs-upload-"  # in the hidden names of uploads in progress (not listed)
T = TypeVar("T")


def identity(size: int, mtime_ns: int, now_ns: int) -> bytes:
    """The content identity SFTP allows: size and whole-second mtime. A file changed
    within the last SETTLE_NS may change again within the same second without either
    moving, so while it is that young the time of this observation is part of its
    identity: each new listing of it is a new version to the content cache."""
    if now_ns - mtime_ns < SETTLE_NS:
        return f"{size}-{mtime_ns}-seen-{now_ns}".encode()
    return f"{size}-{mtime_ns}".encode()


def same_version(etag: bytes, attrs: paramiko.SFTPAttributes) -> bool:
    """Does the open file still have the size and mtime its identity was made of? (A
    read of a file changed since it was listed must not mix the new bytes with the old
    size: the reader looks again, as S3's If-Match makes it.)"""
    size, _, rest = etag.partition(b"-")
    mtime = rest.split(b"-", 1)[0]
    current = f"{int(attrs.st_size or 0)}".encode(), f"{int(attrs.st_mtime or 0) * 10**9}".encode()
    return (size, mtime) == current


def _pipelined_reads(sftp: paramiko.SFTPClient, f: paramiko.SFTPFile, offset: int,
                     end: int) -> Iterator[bytes]:
    """Bytes [offset, end) of an open file, in order, with READ_WINDOW requests in
    flight. Our own pipeline on paramiko's request layer: its `prefetch` keeps every
    early answer in a dict it scans on each read, which made a 128 MiB stream take
    30 s instead of 1.5 at random, and its throttled variant was slower still."""
    pending: deque[tuple[int, int, int]] = deque()  # (request number, offset, size)
    ahead = offset
    while ahead < end or pending:
        while ahead < end and len(pending) < READ_WINDOW:
            size = min(READ_PIECE, end - ahead)
            pending.append((sftp._async_request(type(None), CMD_READ, f.handle, int64(ahead),
                                                size), ahead, size))
            ahead += size
        number, at, size = pending.popleft()
        try:
            kind, msg = sftp._read_response(number)
        except EOFError:
            return  # the file ends early (it shrank): what there was is all there is
        if kind != CMD_DATA:
            raise OSError(errno.EIO, f"unexpected answer {kind} to a read")
        data = msg.get_string()
        yield data
        if len(data) < size:  # a short answer: the rest before anything later
            yield from _read_rest(f, at + len(data), size - len(data))


def _read_rest(f: paramiko.SFTPFile, offset: int, size: int) -> Iterator[bytes]:
    f.seek(offset)
    while size > 0 and (data := f.read(size)):
        size -= len(data)
        yield data


def _entry(name: bytes, attrs: paramiko.SFTPAttributes, target: bytes | None = None) -> Entry:
    mtime_ns = int(attrs.st_mtime or 0) * 1_000_000_000
    size = int(attrs.st_size or 0)
    return Entry(name=name, mode=int(attrs.st_mode or 0), uid=int(attrs.st_uid or 0),
                 gid=int(attrs.st_gid or 0), size=size, mtime_ns=mtime_ns, ctime_ns=mtime_ns,
                 nlink=1, target=target, etag=identity(size, mtime_ns, time.time_ns()))


def _os_error(exc: BaseException, what: str) -> OSError:
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, f"{what}: {exc.strerror or os.strerror(exc.errno)}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return OSError(errno.EIO, f"{what}: server did not answer in time")
    return OSError(errno.EIO, f"{what}: connection failed ({type(exc).__name__})")


_BROKEN = (EOFError, paramiko.SSHException, socket.error, ConnectionError)


class SftpBackend:

    atomic_rename = True
    def __init__(self, location: SftpLocation, *, pool_size: int = 4,
                 timeout: float = 30.0) -> None:
        self.loc = location
        self.timeout = timeout
        self.piece_size, self.pieces_in_flight = PIECE_SIZE, pool_size
        self._pool: queue.LifoQueue[paramiko.SFTPClient | None] = queue.LifoQueue()
        for _ in range(pool_size):
            self._pool.put(None)  # connect lazily
        self._lock = threading.Lock()

    # -- connections -----------------------------------------------------------

    def _connect(self) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        if self.loc.known_hosts:
            client.load_host_keys(self.loc.known_hosts)
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if self.loc.accept_unknown_host else paramiko.RejectPolicy())
        try:
            client.connect(self.loc.host, port=self.loc.port, username=self.loc.user,
                           key_filename=self.loc.key_file, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout,
                           allow_agent=self.loc.key_file is None,
                           look_for_keys=self.loc.key_file is None)
        except paramiko.BadHostKeyException:
            raise OSError(errno.EACCES, f"host key of {self.loc.host} does not match "
                          "known_hosts") from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise OSError(errno.EACCES, f"unknown host key for [{self.loc.host}]:"
                              f"{self.loc.port} (add it to known_hosts)") from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise OSError(errno.EACCES, f"authentication to {self.loc.host} failed") from None
            raise _os_error(exc, f"connect to {self.loc.host}:{self.loc.port}") from None
        except (OSError, EOFError) as exc:
            raise _os_error(exc, f"connect to {self.loc.host}:{self.loc.port}") from None
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(self.timeout)
        sftp._markfs_ssh = client  # keep the SSH client alive as long as the session
        return sftp

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        sftp = self._pool.get()
        try:
            if sftp is None:
                with self._lock:  # one handshake at a time (parallel ones stall paramiko)
                    sftp = self._connect()
            yield sftp
        except _BROKEN:
            self._close(sftp)
            sftp = None  # the pool gets a fresh connection next time
            raise
        finally:
            self._pool.put(sftp)

    @staticmethod
    def _close(sftp: paramiko.SFTPClient | None) -> None:
        if sftp is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                sftp.close()
                sftp._markfs_ssh.close()

    def _run(self, what: str, fn: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run `fn` on a pooled session; a broken connection is retried once, fresh."""
        for attempt in (1, 2):
            try:
                with self._session() as sftp:
                    return fn(sftp)
            except OSError as exc:
                if exc.errno is not None or attempt == 2:
                    raise _os_error(exc, what) from None
            except _BROKEN as exc:
                if attempt == 2:
                    raise _os_error(exc, what) from None
        raise AssertionError("unreachable")

    def _abs(self, path: bytes) -> str:
        root = self.loc.root.rstrip("/") or ""
        return root + "/" + os.fsdecode(path) if path else (self.loc.root or "/")

    # -- reading -------------------------------------------------------------------

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        full = self._abs(path)

        def listing(sftp: paramiko.SFTPClient) -> list[Entry]:
            out = []
            for attrs in sftp.listdir_attr(full):
                if attrs.filename.startswith(".") and TEMP_MARK in attrs.filename:
                    continue  # an upload in progress, not a file yet
                target = None
                if stat.S_ISLNK(attrs.st_mode or 0):
                    target = os.fsencode(sftp.readlink(full + "/" + attrs.filename) or "")
                out.append(_entry(os.fsencode(attrs.filename), attrs, target))
            return out

        entries = self._run(f"list {full}", listing)
        for start in range(0, max(len(entries), 1), PAGE_SIZE):
            yield entries[start : start + PAGE_SIZE]

    def stat(self, path: bytes) -> Entry:
        full = self._abs(path)

        def do(sftp: paramiko.SFTPClient) -> Entry:
            attrs = sftp.lstat(full)
            target = None
            if stat.S_ISLNK(attrs.st_mode or 0):
                target = os.fsencode(sftp.readlink(full) or "")
            return _entry(path.rsplit(b"/", 1)[-1], attrs, target)

        return self._run(f"stat {full}", do)

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        return b"".join(self.read_stream(path, offset, size, etag))

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        """Pipelined reads on one pooled session (paramiko's prefetch), yielded in order."""
        full = self._abs(path)
        try:
            with self._session() as sftp, sftp.open(full, "rb") as f:
                attrs = f.stat()
                if etag is not None and not same_version(etag, attrs):
                    raise OSError(errno.ESTALE, f"{full} changed on the server")
                yield from _pipelined_reads(sftp, f, offset,
                                            min(offset + size, attrs.st_size or 0))
        except (OSError, *_BROKEN) as exc:
            raise _os_error(exc, f"read {full}") from None

    # -- writing -------------------------------------------------------------------

    def _temp_name(self, path: bytes) -> str:
        """A fresh hidden name next to the file (unique: a stream aborted in the
        background must not remove the temporary file of the upload that follows it)."""
        parent, _, name = self._abs(path).rpartition("/")
        return f"{parent}/.{name}{TEMP_MARK}{os.urandom(4).hex()}"

    def upload(self, path: bytes, local_file: str,
               control: UploadControl | None = None) -> Entry:
        full, temp = self._abs(path), self._temp_name(path)
        control = control or UploadControl()

        def do(sftp: paramiko.SFTPClient) -> None:
            try:
                with open(local_file, "rb") as src:
                    sftp.putfo(src, temp, confirm=True,
                               callback=lambda _done, _total: control.check())
            except BaseException:
                with contextlib.suppress(Exception):  # (the connection may be gone)
                    sftp.remove(temp)
                raise
            sftp.posix_rename(temp, full)

        self._run(f"upload {full}", do)
        return self.stat(path)

    # -- uploads in pieces: writes into a temporary file, renamed into place ------

    def begin_pieces(self, path: bytes) -> str:
        temp = self._temp_name(path)
        self._run(f"upload {temp}", lambda s: s.open(temp, "wb").close())
        return temp

    def send_piece(self, path: bytes, token: str, number: int, data: bytes,
                   control: UploadControl) -> str:
        def do(sftp: paramiko.SFTPClient) -> None:
            with sftp.open(token, "r+b") as f:
                f.set_pipelined(True)  # acknowledgements are collected at close
                f.seek((number - 1) * self.piece_size)
                view = memoryview(data)
                for start in range(0, len(view), WRITE_PIECE):
                    control.check()
                    f.write(view[start:start + WRITE_PIECE])

        self._run(f"upload {token} piece {number}", do)
        return ""

    def finish_pieces(self, path: bytes, token: str, receipts: list[str]) -> Entry:
        full = self._abs(path)
        self._run(f"upload {full}", lambda s: s.posix_rename(token, full))
        return self.stat(path)

    def abort_pieces(self, path: bytes, token: str) -> None:
        def do(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(FileNotFoundError):  # finished or aborted already
                sftp.remove(token)

        self._run(f"remove {token}", do)

    def mkdir(self, path: bytes, mode: int) -> None:
        full = self._abs(path)
        self._run(f"mkdir {full}", lambda s: s.mkdir(full, stat.S_IMODE(mode)))

    def rmdir(self, path: bytes) -> None:
        full = self._abs(path)
        self._run(f"rmdir {full}", lambda s: s.rmdir(full))

    def unlink(self, path: bytes) -> None:
        full = self._abs(path)
        self._run(f"unlink {full}", lambda s: s.remove(full))

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        src, dst = self._abs(old), self._abs(new)
        if flags:
            raise OSError(errno.EINVAL, "SFTP cannot rename atomically with flags")
        self._run(f"rename {src}", lambda s: s.posix_rename(src, dst))

    def symlink(self, target: bytes, path: bytes) -> None:
        full = self._abs(path)
        self._run(f"symlink {full}", lambda s: s.symlink(os.fsdecode(target), full))

    def link(self, existing: bytes, new: bytes) -> None:
        raise OSError(errno.EPERM, "hard links over SFTP are not supported")

    def chmod(self, path: bytes, mode: int) -> None:
        full = self._abs(path)
        self._run(f"chmod {full}", lambda s: s.chmod(full, stat.S_IMODE(mode)))

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        full = self._abs(path)

        def do(sftp: paramiko.SFTPClient) -> None:
            current = sftp.lstat(full)
            sftp.chown(full, current.st_uid if uid < 0 else uid,
                       current.st_gid if gid < 0 else gid)

        self._run(f"chown {full}", do)

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        full = self._abs(path)

        def do(sftp: paramiko.SFTPClient) -> None:
            current = sftp.stat(full)
            atime = current.st_atime if atime_ns is None else atime_ns / 1e9
            mtime = current.st_mtime if mtime_ns is None else mtime_ns / 1e9
            sftp.utime(full, (atime, mtime))

        self._run(f"utime {full}", do)

    def truncate(self, path: bytes, size: int) -> None:
        full = self._abs(path)
        self._run(f"truncate {full}", lambda s: s.truncate(full, size))

    def check(self) -> str:
        full = self._abs(b"")
        attrs: Any = self._run(f"stat {full}", lambda s: s.stat(full))
        if not stat.S_ISDIR(attrs.st_mode or 0):
            raise OSError(errno.ENOTDIR, f"{full} is not a directory")
        count = sum(len(page) for page in self.list_pages(b""))
        return (f"sftp://{self.loc.user}@{self.loc.host}:{self.loc.port}{full}: directory, "
                f"{count} entries at the top level")

    def close(self) -> None:
        while True:
            try:
                self._close(self._pool.get_nowait())
            except queue.Empty:
                return
