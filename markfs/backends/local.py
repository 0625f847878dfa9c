"""The `file://` backend: a directory of the local filesystem."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from markfs.backends.base import Entry, ServerCopies, UploadControl, hidden_twin

PAGE_SIZE = 1000
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def _renameat2(old: bytes, new: bytes, flags: int) -> None:
    if _libc.renameat2(_AT_FDCWD, old, _AT_FDCWD, new, ctypes.c_uint(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def entry_from_stat(name: bytes, st: os.stat_result, target: bytes | None = None) -> Entry:
    return Entry(name=name, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, size=st.st_size,
                 mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, nlink=st.st_nlink,
                 target=target, atime_ns=st.st_atime_ns, rdev=st.st_rdev)


class LocalFile:
    """An open local file: positioned reads and writes on one descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def write(self, offset: int, data: bytes) -> int:
        return os.pwrite(self.fd, data, offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def fsync(self, datasync: bool) -> None:
        (os.fdatasync if datasync else os.fsync)(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class LocalBackend:
    """A local directory; paths never leave it (names are checked by the namespace)."""

    atomic_rename = True
    keeps_modes = True

    def check_path(self, path: bytes) -> None:
        """(Files are made in place: the disk answers at once.)"""

    def __init__(self, root: Path) -> None:
        self.root = os.fsencode(root.resolve())

    def _abs(self, path: bytes) -> bytes:
        return self.root + b"/" + path if path else self.root

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        page: list[Entry] = []
        with os.scandir(self._abs(path)) as it:
            for item in it:
                try:
                    st = item.stat(follow_symlinks=False)
                    target = os.readlink(item.path) if stat.S_ISLNK(st.st_mode) else None
                except FileNotFoundError:
                    continue  # removed while we listed
                page.append(entry_from_stat(item.name, st, target))
                if len(page) >= PAGE_SIZE:
                    yield page
                    page = []
        yield page

    def stat(self, path: bytes) -> Entry:
        full = self._abs(path)
        st = os.lstat(full)
        target = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
        return entry_from_stat(path.rsplit(b"/", 1)[-1], st, target)

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        with open(self._abs(path), "rb") as f:
            return os.pread(f.fileno(), size, offset)

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        with open(self._abs(path), "rb") as f:
            end = offset + size
            while offset < end and (piece := os.pread(f.fileno(), min(1 << 20, end - offset),
                                                      offset)):
                offset += len(piece)
                yield piece

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               mode: int | None = None) -> Entry:
        if control is not None:
            control.check()
        temp = hidden_twin(self._abs(path), b".markfs-upload-")
        shutil.copyfile(local_file, temp)
        os.chmod(temp, 0o600 if mode is None else stat.S_IMODE(mode))
        os.replace(temp, self._abs(path))
        return self.stat(path)

    def open(self, path: bytes, flags: int) -> LocalFile:
        keep = os.O_ACCMODE | os.O_APPEND | os.O_SYNC | os.O_DSYNC | os.O_TRUNC
        return LocalFile(os.open(self._abs(path), (flags & keep) | os.O_NOFOLLOW | os.O_CLOEXEC))

    def create(self, path: bytes, mode: int, flags: int, exclusive: bool) -> LocalFile:
        keep = os.O_ACCMODE | os.O_APPEND | os.O_SYNC | os.O_DSYNC | os.O_TRUNC
        flags = (flags & keep) | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        if exclusive:
            flags |= os.O_EXCL
        fd = os.open(self._abs(path), flags, stat.S_IMODE(mode))
        os.fchmod(fd, stat.S_IMODE(mode))  # the daemon's umask must not apply
        return LocalFile(fd)

    def mkdir(self, path: bytes, mode: int) -> None:
        full = self._abs(path)
        os.mkdir(full, stat.S_IMODE(mode))
        os.chmod(full, stat.S_IMODE(mode))

    def rmdir(self, path: bytes) -> None:
        os.rmdir(self._abs(path))

    def unlink(self, path: bytes) -> None:
        os.unlink(self._abs(path))

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        _renameat2(self._abs(old), self._abs(new), flags)

    def mknod(self, path: bytes, mode: int, rdev: int) -> None:
        full = self._abs(path)
        os.mknod(full, mode, rdev)
        os.chmod(full, stat.S_IMODE(mode))  # the daemon's umask is not the caller's

    def getxattr(self, path: bytes, name: bytes) -> bytes:
        return os.getxattr(self._abs(path), name, follow_symlinks=False)

    def listxattr(self, path: bytes) -> list[bytes]:
        return [os.fsencode(n) for n in os.listxattr(self._abs(path), follow_symlinks=False)]

    def setxattr(self, path: bytes, name: bytes, value: bytes) -> None:
        os.setxattr(self._abs(path), name, value, follow_symlinks=False)

    def removexattr(self, path: bytes, name: bytes) -> None:
        os.removexattr(self._abs(path), name, follow_symlinks=False)

    def symlink(self, target: bytes, path: bytes) -> None:
        os.symlink(target, self._abs(path))

    def link(self, existing: bytes, new: bytes) -> None:
        os.link(self._abs(existing), self._abs(new), follow_symlinks=False)

    def chmod(self, path: bytes, mode: int) -> None:
        full = self._abs(path)
        if stat.S_ISLNK(os.lstat(full).st_mode):
            raise OSError(errno.EOPNOTSUPP, "symlinks have no mode of their own")
        os.chmod(full, stat.S_IMODE(mode))

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        os.chown(self._abs(path), uid, gid, follow_symlinks=False)

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        full = self._abs(path)
        st = os.lstat(full)
        times = (st.st_atime_ns if atime_ns is None else atime_ns,
                 st.st_mtime_ns if mtime_ns is None else mtime_ns)
        os.utime(full, ns=times, follow_symlinks=False)

    def truncate(self, path: bytes, size: int) -> None:
        os.truncate(self._abs(path), size)

    def copy_file(self, source: ServerCopies, old: bytes, new: bytes) -> Entry:
        """copy_file_range into a hidden name (reflinks where the disk has them), then a
        hard link to the new name, which fails rather than replace a file."""
        if not isinstance(source, LocalBackend):
            raise OSError(errno.EXDEV, "not a local folder")
        src, dst = source._abs(old), self._abs(new)
        temp = hidden_twin(dst, b".markfs-copy-")
        try:
            with open(src, "rb") as reader, open(temp, "xb") as writer:
                while os.copy_file_range(reader.fileno(), writer.fileno(), 1 << 30):
                    pass
                os.fchmod(writer.fileno(), stat.S_IMODE(os.fstat(reader.fileno()).st_mode))
            os.link(temp, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return self.stat(new)

    def connect_ahead(self) -> None:
        """Nothing to connect to."""

    def check(self) -> str:
        full = self._abs(b"")
        if not os.path.isdir(full):
            raise OSError(errno.ENOENT, f"{os.fsdecode(full)} is not a directory")
        if not os.access(full, os.R_OK | os.X_OK):
            raise OSError(errno.EACCES, f"{os.fsdecode(full)} is not readable")
        writable = "read-write" if os.access(full, os.W_OK) else "read-only"
        count = sum(len(page) for page in self.list_pages(b""))
        return f"{os.fsdecode(full)}: directory, {writable}, {count} entries at the top level"
