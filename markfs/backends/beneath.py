"""Paths of a local source resolved beneath its root, never through a symlink.

The daemon runs as root for callers who may write folders of the source, and any
folder of a path may be swapped for a symlink between the mount's lookup and its
next call. So nothing here hands the kernel a whole path: a call walks from a
descriptor of the source root to a descriptor of the parent folder — one
`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` per ~4,000 bytes of path (one
`openat(O_NOFOLLOW)` per folder where the kernel has no openat2) — and acts on the
last name with an `*at` call that does not follow it either (AT_SYMLINK_NOFOLLOW,
O_NOFOLLOW), or on a descriptor of the entry itself opened `O_PATH | O_NOFOLLOW`, used
through `/proc/self/fd` where Linux has no call on such a descriptor (chmod, truncate,
xattrs). A folder that became a symlink is ENOENT: the folder the mount knew is gone.

Because each walk piece is short, paths have no PATH_MAX here: a tree made one
folder at a time is as deep as the disk allows.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_WALK_PIECE = 4000  # bytes of path per openat2: below PATH_MAX with room to spare
_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_openat2_missing = False  # set once the kernel said ENOSYS


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _openat2(dir_fd: int, path: bytes, flags: int) -> int | None:
    """openat2 that follows no symlink and stays beneath `dir_fd`; None where the
    kernel has no openat2."""
    global _openat2_missing
    if _openat2_missing:
        return None
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    for _ in range(16):  # EAGAIN: a rename raced with the walk; the kernel asks to retry
        fd = int(_libc.syscall(_SYS_OPENAT2, dir_fd, path, ctypes.byref(how),
                               ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            _openat2_missing = True
            return None
        if code != errno.EAGAIN:
            raise _fail(errno.ENOENT if code in (errno.ELOOP, errno.EXDEV) else code)
    raise _fail(errno.EAGAIN)


def _open_folder(dir_fd: int, path: bytes) -> int:
    """The folder at `path` below `dir_fd` (no symlink followed); an O_PATH descriptor."""
    fd = _openat2(dir_fd, path, _FOLDER)
    if fd is not None:
        return fd
    return _descend(os.dup(dir_fd), path.split(b"/"), _open_one_folder)


def _open_one_folder(dir_fd: int, name: bytes) -> int:
    try:
        return os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        # O_NOFOLLOW | O_DIRECTORY on a symlink: ENOTDIR; was it one?
        if exc.errno == errno.ENOTDIR and _is_link(dir_fd, name):
            raise _fail(errno.ENOENT) from None
        raise


def _descend(fd: int, steps: Iterable[bytes], step: Callable[[int, bytes], int]) -> int:
    """From the folder `fd` (which this takes over) through each step in turn: the last
    folder's descriptor; every other one is closed, also when a step fails."""
    try:
        for name in steps:
            below = step(fd, name)
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_link(dir_fd: int, name: bytes) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _pieces(names: list[bytes]) -> Iterator[bytes]:
    """Runs of whole names joined by '/', each at most `_WALK_PIECE` bytes."""
    run: list[bytes] = []
    length = 0
    for name in names:
        if run and length + 1 + len(name) > _WALK_PIECE:
            yield b"/".join(run)
            run, length = [], 0
        run.append(name)
        length += len(name) + (1 if length else 0)
    if run:
        yield b"/".join(run)


def proc_path(fd: int) -> str:
    """The name of a descriptor's own inode (an O_PATH descriptor of a symlink names the
    link itself: /proc's magic links are not symlinks to follow further)."""
    return f"/proc/self/fd/{fd}"


class SourceRoot:
    """Where a local source's paths are resolved: beneath `root`, symlinks never
    followed. `root` itself (the administrator's own path) is opened by name."""

    def __init__(self, root: bytes) -> None:
        self.root = root

    @contextlib.contextmanager
    def parent(self, path: bytes) -> Iterator[tuple[int, bytes]]:
        """(a descriptor of the folder holding the last name of `path`, that name).
        The root itself (`b""`) is named in the folder above it."""
        if not path:
            above, name = os.path.split(self.root.rstrip(b"/"))
            fd = os.open(above or b"/", _FOLDER)
            try:
                yield fd, name or b"."
            finally:
                os.close(fd)
            return
        folder, _, name = path.rpartition(b"/")
        fd = self._folder(folder)
        try:
            yield fd, name
        finally:
            os.close(fd)

    def _folder(self, path: bytes) -> int:
        fd = os.open(self.root, _FOLDER)
        return _descend(fd, _pieces(path.split(b"/")), _open_folder) if path else fd

    @contextlib.contextmanager
    def entry(self, path: bytes) -> Iterator[int]:
        """An O_PATH descriptor of the entry at `path` itself (a symlink is not followed)."""
        with self.parent(path) as (folder, name):
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        try:
            yield fd
        finally:
            os.close(fd)

    def open_file(self, path: bytes, flags: int, mode: int = 0o600) -> int:
        """A descriptor of the regular file at `path` (O_CREAT in `flags` may make it).
        Opened O_NONBLOCK, so a FIFO swapped in never blocks the thread; anything but
        a regular file is refused before it is used."""
        with self.parent(path) as (folder, name):
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode,
                         dir_fd=folder)
        try:
            kind = os.fstat(fd).st_mode
            if not stat.S_ISREG(kind):
                raise _fail(errno.EISDIR if stat.S_ISDIR(kind) else errno.ENOENT)
            if not flags & os.O_NONBLOCK:
                os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_folder(self, path: bytes) -> int:
        """A readable descriptor of the folder at `path` (for listing it)."""
        with self.parent(path) as (folder, name):
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=folder)

    def chmod(self, path: bytes, mode: int) -> None:
        """Permission bits of the entry itself; a symlink has none (EOPNOTSUPP)."""
        with self.entry(path) as fd:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.EOPNOTSUPP, "symlinks have no mode of their own")
            os.chmod(proc_path(fd), stat.S_IMODE(mode))

    def truncate(self, path: bytes, size: int) -> None:
        """Truncate the regular file at `path`, as truncate(2) answers for others."""
        with self.entry(path) as fd:
            kind = os.fstat(fd).st_mode
            if stat.S_ISDIR(kind):
                raise _fail(errno.EISDIR)
            if not stat.S_ISREG(kind):
                raise _fail(errno.EINVAL)
            # reopened through its own descriptor: the inode just checked, nothing else
            writable = os.open(proc_path(fd), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(writable, size)
        finally:
            os.close(writable)
