"""The `file://` backend: a directory of the local filesystem."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from markfs.backends.base import Entry, FileAttrs, ServerCopies, UploadControl, hidden_name
from markfs.backends.beneath import SourceRoot, proc_path
from markfs.schemes import SCHEMES

PAGE_SIZE = 1000
# Filesystems whose metadata calls are the kernel's own work on this machine: they answer
# in microseconds, or hang only with the machine. Anything else (NFS, SMB, FUSE, 9p,
# Ceph, ...) may wait on a network and keeps every call in a worker thread, under its
# deadline.
LOCAL_DISK_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs",
                              "overlay", "zfs", "f2fs", "jfs", "bcachefs", "reiserfs"})
# The calls of such a source run on the trio loop, not in a thread (a hop costs 40-110 us
# here, the call itself a few): none that may free a large file's blocks (unlink, rename
# over a file, truncate, open with O_TRUNC) or move much data (read, large writes, fsync;
# `LocalFile.write_small` is the exception: a small copy into the page cache).
INLINE_CALLS = frozenset({"stat", "create", "mkdir", "rmdir", "chmod", "chown", "utime",
                          "symlink", "link", "mknod", "getxattr", "listxattr", "setxattr",
                          "removexattr"})
SMALL_WRITE = 64 * 1024  # the most `LocalFile.write_small` is given
_libc = ctypes.CDLL(None, use_errno=True)
_KEEP_FLAGS = os.O_ACCMODE | os.O_APPEND | os.O_SYNC | os.O_DSYNC | os.O_TRUNC


def _renameat2(old: tuple[int, bytes], new: tuple[int, bytes], flags: int) -> None:
    if _libc.renameat2(old[0], old[1], new[0], new[1], ctypes.c_uint(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def entry_from_stat(name: bytes, st: os.stat_result, target: bytes | None = None) -> Entry:
    return Entry(name=name, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, size=st.st_size,
                 mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, nlink=st.st_nlink,
                 target=target, atime_ns=st.st_atime_ns, rdev=st.st_rdev)


def filesystem_types(path: bytes) -> set[str]:
    """The types of the filesystems a walk below `path` (absolute, resolved) may meet:
    the one it is on and every one mounted below it (from mountinfo, now)."""
    best, holding, below = -1, "", set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace(b"\\040", b" ").replace(b"\\011", b"\t")
            kind = os.fsdecode(fields[fields.index(b"-") + 1])
            if path == point or path.startswith(point.rstrip(b"/") + b"/"):
                if len(point) >= best:
                    best, holding = len(point), kind
            elif point.startswith(path.rstrip(b"/") + b"/"):
                below.add(kind)
    return {holding, *below}


class LocalFile:
    """An open local file: positioned reads and writes on one descriptor."""

    def __init__(self, fd: int, inline_calls: frozenset[str] = frozenset()) -> None:
        self.fd = fd
        # {"close", "write_small"} on a local disk (see INLINE_CALLS)
        self.inline_calls = inline_calls

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def write(self, offset: int, data: bytes) -> int:
        return os.pwrite(self.fd, data, offset)

    def write_small(self, offset: int, data: bytes) -> int:
        """`write` of at most SMALL_WRITE bytes: run on the loop on a local disk, where
        it is a copy into the page cache (tar writes 10 KiB at a time, sqlite a page:
        a thread hop each cost more than the write). Larger writes keep their thread:
        a writer past the kernel's dirty limits is made to wait."""
        return os.pwrite(self.fd, data, offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def fsync(self, datasync: bool) -> None:
        (os.fdatasync if datasync else os.fsync)(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class LocalBackend:
    """A local directory. Every path is resolved beneath the root without following a
    symlink in any component (`beneath.SourceRoot`): the daemon is root, and a caller
    who may write a folder of the source may swap any folder for a symlink."""

    scheme = SCHEMES["file"]

    def check_path(self, path: bytes) -> None:
        """(Files are made in place: the disk answers at once.)"""

    def __init__(self, root: Path) -> None:
        self.root = os.fsencode(root.resolve())
        self.at = SourceRoot(self.root)
        local = filesystem_types(self.root) <= LOCAL_DISK_TYPES
        self.inline_calls = INLINE_CALLS if local else frozenset()  # (WorkerPool.run)
        self._file_inline = frozenset({"close", "write_small"}) if local else frozenset()

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        page: list[Entry] = []
        fd = self.at.open_folder(path)
        try:
            with os.scandir(fd) as it:
                for item in it:
                    try:
                        st = item.stat(follow_symlinks=False)
                        target = (os.fsencode(os.readlink(item.name, dir_fd=fd))
                                  if stat.S_ISLNK(st.st_mode) else None)
                    except FileNotFoundError:
                        continue  # removed while we listed
                    page.append(entry_from_stat(os.fsencode(item.name), st, target))
                    if len(page) >= PAGE_SIZE:
                        yield page
                        page = []
        finally:
            os.close(fd)
        yield page

    def stat(self, path: bytes) -> Entry:
        with self.at.parent(path) as (folder, name):
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            target = os.readlink(name, dir_fd=folder) if stat.S_ISLNK(st.st_mode) else None
        return entry_from_stat(path.rsplit(b"/", 1)[-1], st, target)

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        fd = self.at.open_file(path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        fd = self.at.open_file(path, os.O_RDONLY)
        try:
            end = offset + size
            while offset < end and (piece := os.pread(fd, min(1 << 20, end - offset),
                                                      offset)):
                offset += len(piece)
                yield piece
        finally:
            os.close(fd)

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               attrs: FileAttrs | None = None) -> Entry:
        mode = None if attrs is None else attrs.mode
        if control is not None:
            control.check()
        with self.at.parent(path) as (folder, name):
            temp = hidden_name(name, b".markfs-upload-")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=folder)
            try:
                with open(local_file, "rb") as source:
                    _copy_all(source.fileno(), fd)
                os.fchmod(fd, 0o600 if mode is None else stat.S_IMODE(mode))
            finally:
                os.close(fd)
            _renameat2((folder, temp), (folder, name), 0)
        return self.stat(path)

    def open(self, path: bytes, flags: int) -> LocalFile:
        return LocalFile(self.at.open_file(path, flags & _KEEP_FLAGS), self._file_inline)

    def create(self, path: bytes, mode: int, flags: int, exclusive: bool) -> LocalFile:
        flags = (flags & _KEEP_FLAGS) | os.O_CREAT | (os.O_EXCL if exclusive else 0)
        fd = self.at.open_file(path, flags, stat.S_IMODE(mode))
        os.fchmod(fd, stat.S_IMODE(mode))  # the daemon's umask must not apply
        return LocalFile(fd, self._file_inline)

    def mkdir(self, path: bytes, mode: int) -> None:
        with self.at.parent(path) as (folder, name):
            os.mkdir(name, stat.S_IMODE(mode), dir_fd=folder)
        self.at.chmod(path, mode)  # the daemon's umask is not the caller's

    def rmdir(self, path: bytes) -> None:
        with self.at.parent(path) as (folder, name):
            os.rmdir(name, dir_fd=folder)

    def unlink(self, path: bytes) -> None:
        with self.at.parent(path) as (folder, name):
            os.unlink(name, dir_fd=folder)

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        with self.at.parent(old) as was, self.at.parent(new) as will_be:
            _renameat2(was, will_be, flags)

    def mknod(self, path: bytes, mode: int, rdev: int) -> None:
        with self.at.parent(path) as (folder, name):
            os.mknod(name, mode, rdev, dir_fd=folder)
        self.at.chmod(path, mode)  # the daemon's umask is not the caller's

    def getxattr(self, path: bytes, name: bytes) -> bytes:
        with self.at.entry(path) as fd:
            return os.getxattr(proc_path(fd), name)

    def listxattr(self, path: bytes) -> list[bytes]:
        with self.at.entry(path) as fd:
            return [os.fsencode(n) for n in os.listxattr(proc_path(fd))]

    def setxattr(self, path: bytes, name: bytes, value: bytes) -> None:
        with self.at.entry(path) as fd:
            os.setxattr(proc_path(fd), name, value)

    def removexattr(self, path: bytes, name: bytes) -> None:
        with self.at.entry(path) as fd:
            os.removexattr(proc_path(fd), name)

    def symlink(self, target: bytes, path: bytes) -> None:
        with self.at.parent(path) as (folder, name):
            os.symlink(target, name, dir_fd=folder)

    def link(self, existing: bytes, new: bytes) -> None:
        with self.at.parent(existing) as (old_folder, old_name), \
                self.at.parent(new) as (new_folder, new_name):
            os.link(old_name, new_name, src_dir_fd=old_folder, dst_dir_fd=new_folder,
                    follow_symlinks=False)

    def chmod(self, path: bytes, mode: int) -> None:
        self.at.chmod(path, mode)

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        with self.at.parent(path) as (folder, name):
            os.chown(name, uid, gid, dir_fd=folder, follow_symlinks=False)

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        with self.at.parent(path) as (folder, name):
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            times = (st.st_atime_ns if atime_ns is None else atime_ns,
                     st.st_mtime_ns if mtime_ns is None else mtime_ns)
            os.utime(name, ns=times, dir_fd=folder, follow_symlinks=False)

    def truncate(self, path: bytes, size: int) -> None:
        self.at.truncate(path, size)

    def copy_file(self, source: ServerCopies, old: bytes, new: bytes) -> Entry:
        """copy_file_range into a hidden name (reflinks where the disk has them), then a
        hard link to the new name, which fails rather than replace a file."""
        if not isinstance(source, LocalBackend):
            raise OSError(errno.EXDEV, "not a local folder")
        reader = source.at.open_file(old, os.O_RDONLY)
        try:
            with self.at.parent(new) as (folder, name):
                temp = hidden_name(name, b".markfs-copy-")
                writer = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=folder)
                try:
                    _copy_all(reader, writer)
                    os.fchmod(writer, stat.S_IMODE(os.fstat(reader).st_mode))
                    os.link(temp, name, src_dir_fd=folder, dst_dir_fd=folder,
                            follow_symlinks=False)
                finally:
                    os.close(writer)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp, dir_fd=folder)
        finally:
            os.close(reader)
        return self.stat(new)

    def connect_ahead(self) -> None:
        """Nothing to connect to."""

    def check(self) -> str:
        full = self.root
        if not os.path.isdir(full):
            raise OSError(errno.ENOENT, f"{os.fsdecode(full)} is not a directory")
        if not os.access(full, os.R_OK | os.X_OK):
            raise OSError(errno.EACCES, f"{os.fsdecode(full)} is not readable")
        writable = "read-write" if os.access(full, os.W_OK) else "read-only"
        count = sum(len(page) for page in self.list_pages(b""))
        return f"{os.fsdecode(full)}: directory, {writable}, {count} entries at the top level"


def _copy_all(reader: int, writer: int) -> None:
    """Every byte of `reader` into `writer` inside the kernel (copy_file_range: a
    reflink where the disk has them)."""
    while os.copy_file_range(reader, writer, 1 << 30):
        pass
