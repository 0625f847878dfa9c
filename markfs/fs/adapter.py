"""The FUSE adapter: kernel requests in, namespace calls out. The only user of pyfuse3.

It maps kernel inode numbers to catalog ids (they are equal, except that the
mounted subtree's root is always inode 1), turns nodes into `EntryAttributes`,
and turns `FsError` into the errno the kernel gets. Anything else that escapes
is logged and answered with EIO.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import pyfuse3
import trio

from markfs.config import MountConfig
from markfs.errors import FsError
from markfs.metrics import METRICS
from markfs.model import Node
from markfs.namespace.ops import Caller, Namespace

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
READDIR_BATCH = 256
DOT_COOKIES = 2  # "." and ".." take cookies 1 and 2; children follow, shifted by 2


def _errors(fn: F) -> F:
    """Translate namespace errors into FUSE errors; never let a request crash the loop."""

    latency = METRICS.fuse_seconds.labels(fn.__name__)  # (bound once: no lookup per request)

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError as exc:
            _count_error(fn.__name__, exc.errno)
            raise
        except FsError as exc:
            _count_error(fn.__name__, exc.code)
            raise pyfuse3.FUSEError(exc.code) from None
        except OSError as exc:
            log.warning("%s: %s", fn.__name__, exc)
            _count_error(fn.__name__, exc.errno or errno.EIO)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed", fn.__name__)
            _count_error(fn.__name__, errno.EIO)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            latency.observe(time.perf_counter() - started)

    return cast(F, wrapper)


def _count_error(op: str, code: int) -> None:
    METRICS.fuse_errors.labels(op, errno.errorcode.get(code, str(code))).inc()


class KernelCacheNotifier:
    """Tells the kernel to drop cached names and inodes, on a thread of its own.

    Never from a request handler: the kernel may hold locks that a pending
    request needs. The kernel answers ENOENT when it had nothing cached and,
    for a name it is looking up at that very moment, EINVAL; both are harmless.
    """

    def __init__(self, to_ino: Callable[[int], int]) -> None:
        self._to_ino = to_ino
        # (inode, name or None: the inode), a call to make in turn, or None: stop
        self._queue: queue.SimpleQueue[tuple[int, bytes | None] | Callable[[], object] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kernel-notify", daemon=True)
        self._thread.start()

    def forget_entry(self, parent_id: int, name: bytes) -> None:
        self._queue.put((self._to_ino(parent_id), name))

    def forget_inode(self, node_id: int) -> None:
        self._queue.put((self._to_ino(node_id), None))

    def then(self, call: Callable[[], object]) -> None:
        self._queue.put(call)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if callable(item):
                item()
                continue
            ino, name = item
            try:
                if name is None:
                    pyfuse3.invalidate_inode(ino)
                else:
                    pyfuse3.invalidate_entry(ino, name)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EINVAL):
                    log.warning("kernel cache invalidation of %d/%r: %s", ino, name, exc)

    def stop(self) -> None:
        self._queue.put(None)


class MarkFs(pyfuse3.Operations):  # type: ignore[misc]
    supports_dot_lookup = True
    # The kernel's writeback cache was tried (issue 25, part 5): tar's 6 WRITEs a file
    # become 1, but the kernel then keeps times and sizes of its own, and 12 conformance,
    # POSIX and fsx tests fail (ctime after link/rename/xattr changes, truncate to the
    # same size, reads of an unlinked open file, EFBIG); see docs/benchmarks.md
    enable_writeback_cache = False

    def __init__(self, namespace: Namespace, root_id: int, config: MountConfig) -> None:
        super().__init__()
        self.ns = namespace
        self.root_id = root_id
        self.config = config
        self.after_init: Callable[[], None] = lambda: None
        # open directory handles: (folder id, who opened it) — READDIR carries no caller;
        # an entry leaves at RELEASEDIR
        self._dirs: dict[int, tuple[int, Caller]] = {}
        self._dir_handles = itertools.count(1)

    def init(self) -> None:
        """The kernel's INIT is being answered: `after_init` runs once that answer is
        in (the kernel sets some limits of the mount from it, read-ahead among them)."""
        trio.lowlevel.current_trio_token().run_sync_soon(self.after_init)

    # -- inode numbers and attributes ----------------------------------------

    def _id(self, ino: int) -> int:
        return self.root_id if ino == pyfuse3.ROOT_INODE else ino

    def _ino(self, node_id: int) -> int:
        return pyfuse3.ROOT_INODE if node_id == self.root_id else node_id

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = self._ino(node.id)
        entry.generation = node.generation
        entry.entry_timeout, entry.attr_timeout = self.ns.kernel_ttl(node)
        entry.st_mode, entry.st_uid, entry.st_gid = self.ns.ownership.of(node)
        entry.st_nlink = node.nlink
        entry.st_size = node.size
        entry.st_blksize = 1024 * 1024  # cp and friends move 1 MiB per call (FUSE's largest)
        entry.st_blocks = (node.size + 511) // 512
        entry.st_atime_ns = node.mtime_ns if node.atime_ns is None else node.atime_ns
        entry.st_rdev = node.rdev
        entry.st_mtime_ns = node.mtime_ns
        entry.st_ctime_ns = node.ctime_ns
        return entry

    def _member_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        """An entry of a folder that shows each caller its own entries (gathered folders):
        the kernel must ask again for the next path walk, whoever makes it."""
        entry = self._attrs(node)
        entry.entry_timeout = 0
        return entry

    @staticmethod
    def _caller(ctx: pyfuse3.RequestContext) -> Caller:
        return Caller(uid=ctx.uid, gid=ctx.gid, pid=ctx.pid)

    # -- names -------------------------------------------------------------------

    @_errors
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent_id = self._id(parent_inode)
        if name == b".." and parent_id == self.root_id:
            return self._attrs(self.ns.node(parent_id))  # never climb out of the mount
        per_caller = self.ns.shows_per_caller(parent_id)
        try:
            found = await self.ns.lookup(parent_id, name, self._caller(ctx))
            return self._member_attrs(found) if per_caller else self._attrs(found)
        except FsError as exc:
            if exc.code != errno.ENOENT or per_caller:  # (no miss kept for others either)
                raise
        # inode 0: the kernel caches "no such name" (creates through the mount replace
        # it; outside changes drop it through invalidate_entry)
        negative = pyfuse3.EntryAttributes()
        negative.st_ino = 0
        negative.entry_timeout = self.ns.kernel_ttl_of_absent(parent_id)
        return negative

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        """Nothing to free: nodes live in the catalog, not in memory."""

    @_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.ns.node(self._id(inode)))

    @_errors
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self.ns.setattr(
            self._id(inode),
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            fh=fh)
        return self._attrs(node)

    @_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return self.ns.readlink(self._id(inode))

    @_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self.ns.mknod(self._id(parent_inode), name, mode,
                                               self._caller(ctx), rdev))

    @_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self.ns.mkdir(self._id(parent_inode), name, mode,
                                               self._caller(ctx)))

    @_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.unlink(self._id(parent_inode), name)

    @_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.rmdir(self._id(parent_inode), name)

    @_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self.ns.symlink(self._id(parent_inode), name, target,
                                                 self._caller(ctx)))

    @_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self.ns.rename(self._id(parent_inode_old), name_old, self._id(parent_inode_new),
                             name_new, flags)

    @_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self.ns.link(self._id(inode), self._id(new_parent_inode),
                                              new_name))

    # -- files -------------------------------------------------------------------

    @_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fh, direct = await self.ns.open(self._id(inode), flags)
        return pyfuse3.FileInfo(fh=fh, direct_io=direct, keep_cache=not direct)

    @_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fh, node = await self.ns.create(self._id(parent_inode), name, mode, flags,
                                        self._caller(ctx))
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), self._attrs(node)

    @_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.ns.read(fh, off, size)

    @_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.ns.write(fh, off, buf)

    @_errors
    async def flush(self, fh: int) -> None:
        await self.ns.flush(fh)

    @_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.ns.fsync(fh, datasync)

    @_errors
    async def release(self, fh: int) -> None:
        await self.ns.release(fh)

    # -- directories -------------------------------------------------------------

    @_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.ns.node(self._id(inode))
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        fh = next(self._dir_handles)
        self._dirs[fh] = (node.id, self._caller(ctx))
        return fh

    @_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        folder_id, caller = self._dirs[fh]
        if start_id < DOT_COOKIES:
            directory = self.ns.node(folder_id)
            parent = directory if folder_id == self.root_id else self.ns.node(directory.parent)
            for cookie, (name, dot) in enumerate(((b".", directory), (b"..", parent)), 1):
                if cookie > start_id and not pyfuse3.readdir_reply(
                        token, name, self._attrs(dot), cookie):
                    return
        after = max(start_id - DOT_COOKIES, 0)
        attrs = self._member_attrs if self.ns.shows_per_caller(folder_id) else self._attrs
        while True:
            batch = await self.ns.readdir(folder_id, after, READDIR_BATCH, caller)
            for cookie, name, shown in batch:
                if shown is not None and not pyfuse3.readdir_reply(
                        token, name, attrs(shown), cookie + DOT_COOKIES):
                    return
                after = cookie
            if len(batch) < READDIR_BATCH:
                return

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        """Catalog changes are committed as they happen."""

    # -- extended attributes and statfs ---------------------------------------

    @_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self._xattrs_on()
        return await self.ns.getxattr(self._id(inode), name)

    @_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        self._xattrs_on()
        return await self.ns.listxattr(self._id(inode))

    @_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        self._xattrs_on()
        await self.ns.setxattr(self._id(inode), name, value)

    @_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._xattrs_on()
        await self.ns.removexattr(self._id(inode), name)

    def _xattrs_on(self) -> None:
        """`[mount] xattrs = false`: ENOSYS, which the kernel remembers for the mount (it
        asks no more: no GETXATTR per entry of `ls -l`)."""
        if not self.config.xattrs:
            raise FsError(errno.ENOSYS)

    @_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        stats = await self.ns.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = out.f_frsize = stats.block_size
        out.f_blocks = stats.blocks
        out.f_bfree, out.f_bavail = stats.blocks_free, stats.blocks_avail
        out.f_files, out.f_ffree, out.f_favail = stats.files, stats.files_free, stats.files_free
        out.f_namemax = stats.name_max
        return out

    @_errors
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        # default_permissions makes the kernel check modes; only writability is ours.
        node = self.ns.node(self._id(inode))
        if mode & os.W_OK and not await self.ns.is_writable(node):
            raise FsError(errno.EROFS)
        return True
