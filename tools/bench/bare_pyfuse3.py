"""The least a pyfuse3 filesystem can do: a passthrough to one folder (not markfs, not a
test; the floor of issue 25, part 9).

Every request is answered on the trio loop with one system call on the folder beneath,
no thread, no catalog, no cache of its own; entries and attributes are kept by the
kernel for 60 s. `floor_bench.py` times the same workloads through this, through
libfuse's C passthrough and through markfs: what this one costs over the plain folder is
what pyfuse3 and trio cost, whatever the filesystem behind them does.

    .venv/bin/python tools/bench/bare_pyfuse3.py FOLDER MOUNTPOINT
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

import pyfuse3
import trio

KEEP_S = 60.0


class Passthrough(pyfuse3.Operations):
    """Inode numbers are the folder's own; a dict maps them to one path each (no hard
    links in the workloads)."""

    enable_writeback_cache = False

    def __init__(self, root: str) -> None:
        super().__init__()
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: root}
        self.root_ino = os.lstat(root).st_ino

    def _path(self, inode: int) -> str:
        return self.paths[inode]

    def _entry(self, path: str) -> pyfuse3.EntryAttributes:
        st = os.lstat(path)
        ino = pyfuse3.ROOT_INODE if st.st_ino == self.root_ino else st.st_ino
        self.paths[ino] = path
        entry = pyfuse3.EntryAttributes()
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                     "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(entry, name, getattr(st, name))
        entry.st_ino = ino
        entry.st_blksize = 4096
        entry.st_blocks = st.st_blocks
        entry.entry_timeout = KEEP_S
        entry.attr_timeout = KEEP_S
        return entry

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        try:
            return self._entry(os.path.join(self._path(parent_inode), os.fsdecode(name)))
        except FileNotFoundError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._entry(self._path(inode))

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        path = self._path(inode)
        if fields.update_size:
            os.truncate(path, attr.st_size)
        if fields.update_mode:
            os.chmod(path, stat.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            os.chown(path, attr.st_uid if fields.update_uid else -1,
                     attr.st_gid if fields.update_gid else -1, follow_symlinks=False)
        if fields.update_atime or fields.update_mtime:
            st = os.lstat(path)
            os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                               attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
        return self._entry(path)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        os.mkdir(path, stat.S_IMODE(mode))
        os.chown(path, ctx.uid, ctx.gid)
        return self._entry(path)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> Any:
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        fd = os.open(path, flags | os.O_CREAT, stat.S_IMODE(mode))
        os.fchown(fd, ctx.uid, ctx.gid)
        return pyfuse3.FileInfo(fh=fd), self._entry(path)

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        return pyfuse3.FileInfo(fh=os.open(self._path(inode), flags & ~os.O_CREAT))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return os.pread(fh, size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return os.pwrite(fh, buf, off)

    async def flush(self, fh: int) -> None:
        return None

    async def release(self, fh: int) -> None:
        os.close(fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        os.fsync(fh)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        os.unlink(os.path.join(self._path(parent_inode), os.fsdecode(name)))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        os.rmdir(os.path.join(self._path(parent_inode), os.fsdecode(name)))

    async def rename(self, parent_old: int, name_old: bytes, parent_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        old = os.path.join(self._path(parent_old), os.fsdecode(name_old))
        new = os.path.join(self._path(parent_new), os.fsdecode(name_new))
        os.rename(old, new)
        self.paths[os.lstat(new).st_ino] = new

    async def opendir(self, inode: int, ctx: Any) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        path = self._path(fh)
        names = sorted(os.listdir(path))
        for index, name in enumerate(names[start_id:], start_id):
            entry = self._entry(os.path.join(path, name))
            if not pyfuse3.readdir_reply(token, os.fsencode(name), entry, index + 1):
                return

    async def releasedir(self, fh: int) -> None:
        return None

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        raise pyfuse3.FUSEError(errno.ENODATA)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        return []

    async def statfs(self, ctx: Any) -> Any:
        st = os.statvfs(self.paths[pyfuse3.ROOT_INODE])
        out = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                     "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(out, name, getattr(st, name))
        return out


def main() -> None:
    folder, mountpoint = sys.argv[1], sys.argv[2]
    options = set(pyfuse3.default_options) | {"fsname=bare", "subtype=bare"}
    pyfuse3.init(Passthrough(os.path.realpath(folder)), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
