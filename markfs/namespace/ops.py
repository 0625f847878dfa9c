"""The namespace: every filesystem operation, on catalog node ids, against the right provider.

The FUSE adapter calls these with catalog ids and bytes names and turns
`FsError` into an errno. Here a request is resolved to its node, checked
(writability, names, file types), carried out on the source's backend in a
worker thread, and recorded in the catalog. Mutations of a directory hold that
directory's lock, so a listing being reconciled never interleaves with them.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from markfs.backends.base import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Backend,
    DirectFiles,
    Entry,
    OpenFile,
)
from markfs.cache.content import ContentCache
from markfs.cache.snapshots import SnapshotStore
from markfs.cache.staging import StagingArea
from markfs.catalog import managed, nodes, xattrs
from markfs.catalog import renames as rename_journal
from markfs.catalog.db import Txn
from markfs.config import DataDir, MountConfig
from markfs.errors import FsError
from markfs.model import Kind, Node
from markfs.namespace.control import MountInfo, render_status
from markfs.namespace.handles import Handle, HandleTable
from markfs.namespace.listing import (
    ListingDiff,
    child_path,
    reconcile,
    refresh_one,
    update_attrs,
    valid_name,
)
from markfs.namespace.remote import RemoteFiles
from markfs.namespace.renames import RenameEpochs
from markfs.namespace.sources import SourceSet
from markfs.namespace.tree import STATUS_FILE_ID, Tree
from markfs.namespace.workers import WorkerPool

log = logging.getLogger(__name__)
T = TypeVar("T")
XATTR_WRITABLE_PREFIX = b"user."


class KernelNotifier(Protocol):
    """Drops what the kernel cached about names and inodes that changed behind its back."""

    def forget_entry(self, parent_id: int, name: bytes) -> None: ...

    def forget_inode(self, node_id: int) -> None: ...


@dataclass(frozen=True)
class Caller:
    """Who asked: new files and folders belong to them."""

    uid: int
    gid: int


@dataclass(frozen=True)
class FsStats:
    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int
    files: int
    files_free: int
    name_max: int = 255


class Namespace:
    def __init__(self, tree: Tree, sources: SourceSet, config: MountConfig,
                 info: MountInfo, data_dir: DataDir) -> None:
        self.tree = tree
        self.sources = sources
        self.config = config
        self.info = info
        self.data_dir = data_dir
        self.handles = HandleTable()
        self.notifier: KernelNotifier | None = None
        self.workers = WorkerPool(config.io_threads, config.io_timeout)
        self._io = self.workers.run
        self._listed: dict[int, float] = {}  # dir id -> trio time of its last reconcile
        self._locks: dict[int, trio.Lock] = {}
        self._changed_at: dict[int, float] = {}  # node id -> trio time the mount last changed it
        self._renames = RenameEpochs()
        self._as_root = os.geteuid() == 0
        self.snapshots = SnapshotStore(data_dir.cache)
        self.remote = RemoteFiles(
            tree, ContentCache(data_dir.cache, config.cache_max_bytes),
            StagingArea(data_dir.staging), self._io, self._backend_by_id, config.io_timeout)

    def _backend_by_id(self, source_id: int) -> Backend:
        backend = self.sources.backend(source_id)
        if backend is None:
            raise FsError(errno.ENOENT, f"source {source_id} is gone")
        return backend

    # -- plumbing ------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self, *dir_ids: int) -> AsyncIterator[None]:
        locks = [self._locks.setdefault(i, trio.Lock()) for i in sorted(set(dir_ids))]
        for lock in locks:
            await lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()

    def _mark_changed(self, node_id: int) -> None:
        now = trio.current_time()
        if len(self._changed_at) > 10_000:  # forget what no listing in flight can predate
            self._changed_at = {k: t for k, t in self._changed_at.items() if now - t < 600}
        self._changed_at[node_id] = now

    def _changed_since(self, since: float) -> Callable[[int], bool]:
        """Nodes whose attributes the mount set after `since`, or that are open for writing:
        a listing or stat read at `since` is older than what the catalog has for them."""
        def keep(node_id: int) -> bool:
            return (self._changed_at.get(node_id, -1.0) >= since
                    or bool(self.handles.writers(node_id)) or self.remote.has_staged(node_id))
        return keep

    def node(self, node_id: int) -> Node:
        """Current attributes of a node, with what open writers know layered on top."""
        node = self.tree.node(node_id)
        if node is None:
            node = self._open_orphan(node_id)
        if node.id == STATUS_FILE_ID:
            return node.with_(size=len(self._status()))
        size = self.handles.written_size(node_id)
        return node if size is None else node.with_(size=size)

    def _open_orphan(self, node_id: int) -> Node:
        """A node unlinked while still open keeps its last attributes until released."""
        for h in self.handles.for_node(node_id):
            if h.node is not None:
                return h.node.with_(nlink=0, size=h.size)
        raise FsError(errno.ENOENT)

    def _backend(self, node: Node) -> Backend:
        if node.kind is not Kind.SOURCE or node.source_id is None:
            raise FsError(errno.EROFS)
        backend = self.sources.backend(node.source_id)
        if backend is None:
            raise FsError(errno.ENOENT)
        return backend

    def _writable(self, node: Node) -> Backend:
        backend = self._backend(node)
        row = self.sources.row(node.source_id or 0)
        if row is None or row.read_only:
            raise FsError(errno.EROFS)
        return backend

    def is_writable(self, node: Node) -> bool:
        try:
            self._writable(node)
        except FsError:
            return False
        return True

    def _writable_dir(self, dir_id: int) -> tuple[Node, Backend]:
        parent = self.node(dir_id)
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        return parent, self._writable(parent)

    def _notify(self, dir_id: int, diff: ListingDiff) -> None:
        if diff.removed:
            log.info("outside change: %d name(s) gone from directory %d: %s", len(diff.removed),
                     dir_id, [name for name, _ in diff.removed][:5])
        if self.notifier is None or not diff:
            return
        for name in [*(name for name, _old in diff.removed), *diff.added]:
            self.notifier.forget_entry(dir_id, name)  # added: drops a cached "no such name"
        for node_id in diff.changed:
            if not self.handles.writers(node_id):
                self.notifier.forget_inode(node_id)
        if diff.removed or diff.added:
            self.notifier.forget_inode(dir_id)

    def _status(self) -> bytes:
        return render_status(self.tree, self.info, len(self.handles), self.remote.pending())

    # -- listings ------------------------------------------------------------

    def _fresh(self, dir_id: int) -> bool:
        listed = self._listed.get(dir_id)
        return listed is not None and trio.current_time() - listed < self.config.dir_ttl

    async def ensure_listed(self, directory: Node, force: bool = False) -> None:
        """Make the catalog's children of a source directory match the source."""
        if directory.kind is not Kind.SOURCE or (not force and self._fresh(directory.id)):
            return
        async with self._locked(directory.id):
            if not force and self._fresh(directory.id):
                return
            for _attempt in range(3):  # a rename above may make a listing stale: read again
                try:
                    diff = await self._list_and_reconcile(directory)
                except FsError as exc:
                    if not self._serve_stale(directory, exc):
                        raise
                    return
                if diff is not None:
                    self._listed[directory.id] = trio.current_time()
                    break
            else:
                return
        self._notify(directory.id, diff)

    def _serve_stale(self, directory: Node, exc: FsError) -> bool:
        """A source that does not answer: keep showing what was listed before, if anything
        was, and do not ask again for `dir_ttl` (every `ls` would wait for the timeout)."""
        if exc.code == errno.ENOENT:
            return False
        known = directory.id in self._listed or bool(self.tree.children(directory.id, 0, 1))
        if known:
            log.warning("listing %r failed (%s): showing the cached listing",
                        directory.remote_path, exc.strerror)
            self._listed[directory.id] = trio.current_time()
        return known

    async def _list_and_reconcile(self, directory: Node) -> ListingDiff | None:
        """One listing applied to the catalog; None if paths moved while it was read."""
        backend = self._backend(directory)
        current = self.tree.node(directory.id)
        if current is None:
            raise FsError(errno.ENOENT)
        path = current.remote_path or b""
        started, mark = trio.current_time(), self._renames.mark()
        try:
            pages = await self._list_pages(backend, path)
        except FsError as exc:
            if exc.code == errno.ENOENT and self._renames.unchanged_since(mark):
                await self._vanished(current)
            raise
        current = self.tree.node(directory.id)
        if current is None:
            raise FsError(errno.ENOENT)
        if not self._renames.unchanged_since(mark) or current.remote_path != path:
            return None
        return reconcile(self.tree, current, [e for page in pages for e in page],
                         self._changed_since(started))

    async def _list_pages(self, backend: Backend, path: bytes) -> list[list[Entry]]:
        """Every page of a listing. Each page must come within `io_timeout` (a server that
        stopped answering is EIO, not a wait), the whole within `list_timeout`."""
        pages: list[list[Entry]] = []
        iterator = backend.list_pages(path)  # a generator: nothing is asked before next()
        with trio.move_on_after(self.config.list_timeout):
            while (page := await self._io(next, iterator, None)) is not None:
                pages.append(page)
            return pages
        raise FsError(errno.EIO, f"listing took longer than {self.config.list_timeout:.0f}s")

    async def _vanished(self, node: Node) -> None:
        parent = self.tree.node(node.parent)
        if parent is not None and parent.kind is Kind.SOURCE:
            self._notify(parent.id, refresh_one(self.tree, parent, None, node.name))

    async def refresh_path(self, source_id: int, remote_path: bytes) -> None:
        """Re-check one path of a source that changed outside the mount (watcher events)."""
        parent_path, _, name = remote_path.rpartition(b"/")
        if not name:
            return
        parent = nodes.node_by_remote(self.tree.catalog.conn, source_id, parent_path)
        if parent is None or parent.id not in self._listed:
            return  # never shown to the kernel: its first listing will see the change
        backend = self._backend(parent)
        async with self._locked(parent.id):
            started, mark = trio.current_time(), self._renames.mark()
            try:
                entry: Entry | None = await self._io(backend.stat, remote_path)
            except FsError as exc:
                if exc.code not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                entry = None
            current = self.tree.node(parent.id)
            if (current is None or current.remote_path != parent_path
                    or not self._renames.unchanged_since(mark)):
                return  # paths moved meanwhile: the rename's own events cover them
            diff = refresh_one(self.tree, current, entry, name, self._changed_since(started))
        self._notify(parent.id, diff)

    async def _record(self, parent: Node, name: bytes, backend: Backend) -> Node:
        """Stat a path just changed through the mount and store what the source says."""
        entry = await self._io(backend.stat, child_path(parent, name))
        refresh_one(self.tree, parent, entry, name)
        node = self.tree.child(parent.id, name)
        if node is None:
            raise FsError(errno.EIO, "entry vanished while being recorded")
        return node

    async def _restat(self, node: Node) -> Node:
        """Re-read one node's attributes from its source after changing it."""
        assert node.remote_path is not None
        self._mark_changed(node.id)
        entry = await self._io(self._backend(node).stat, node.remote_path)
        self._mark_changed(node.id)
        current = self.tree.node(node.id)
        return node if current is None else update_attrs(self.tree, current, entry)

    # -- lookups and listings -------------------------------------------------

    async def lookup(self, parent_id: int, name: bytes) -> Node:
        parent = self.node(parent_id)
        if name == b".":
            return parent
        if name == b"..":
            return self.node(parent.parent)
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        await self.ensure_listed(parent)
        child = self.tree.child(parent_id, name)
        if child is None:
            raise FsError(errno.ENOENT)
        return self.node(child.id)

    async def readdir(self, dir_id: int, after: int, limit: int) -> list[tuple[int, bytes, Node]]:
        directory = self.node(dir_id)
        if not directory.is_dir:
            raise FsError(errno.ENOTDIR)
        if after == 0:
            await self.ensure_listed(directory)
        return [(cookie, name, self.node(n.id) if self.handles.is_open(n.id) else n)
                for cookie, name, n in self.tree.children(dir_id, after, limit)]

    def readlink(self, node_id: int) -> bytes:
        node = self.node(node_id)
        if not node.is_symlink or node.target is None:
            raise FsError(errno.EINVAL)
        return node.target

    # -- files ----------------------------------------------------------------

    async def open(self, node_id: int, flags: int) -> tuple[int, bool]:
        """Open a file; returns the handle and whether reads must bypass the page cache."""
        node = self.node(node_id)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY or bool(flags & os.O_TRUNC)
        if node.kind is Kind.CONTROL:
            if writable:
                raise FsError(errno.EROFS)
            return self.handles.add(Handle(node_id, snapshot=self._status(), node=node)), True
        if node.kind is Kind.TABLE:
            return await self._open_table_file(node, writable), False
        backend = self._writable(node) if writable else self._backend(node)
        assert node.remote_path is not None
        handle = Handle(node_id, writable=writable, size=node.size, node=node)
        if isinstance(backend, DirectFiles):
            handle.file = await self._io(backend.open, node.remote_path, flags, release=_close)
        else:
            if writable:
                handle.staged = await self.remote.open_writer(node, bool(flags & os.O_TRUNC))
                handle.size = handle.staged.size
        if flags & os.O_TRUNC:
            handle.size, handle.written = 0, True
        return self.handles.add(handle), False

    async def _open_table_file(self, node: Node, writable: bool) -> int:
        """A snapshot file: the handle holds the blob open, so a refresh that swaps in a
        new snapshot (and deletes this blob) leaves this reader on the old bytes."""
        if writable:
            raise FsError(errno.EROFS)
        for _attempt in range(2):
            if node.etag is None:
                raise FsError(errno.EIO, "table file without a snapshot")
            try:
                file = await self._io(self.snapshots.open, node.etag.decode(), release=_close)
            except FsError as exc:
                if exc.code != errno.ENOENT:
                    raise
                node = self.node(node.id)  # swapped meanwhile? (ENOENT if it was replaced)
                continue
            return self.handles.add(Handle(node.id, file=file, size=node.size, node=node))
        raise FsError(errno.EIO, "snapshot blob missing (run: markfs refresh)")

    async def create(self, parent_id: int, name: bytes, mode: int, flags: int,
                     caller: Caller) -> tuple[int, Node]:
        check_name(name)
        parent, backend = self._writable_dir(parent_id)
        path = child_path(parent, name)
        async with self._locked(parent_id):
            if not isinstance(backend, DirectFiles):
                return await self._create_staged(parent, name, mode, caller)
            file = await self._io(backend.create, path, mode, flags, bool(flags & os.O_EXCL),
                                  release=_close)
            await self._own(backend, parent, path, caller)
            node = await self._record(parent, name, backend)
        fh = self.handles.add(Handle(node.id, file=file, writable=True, size=node.size, node=node))
        return fh, node

    async def _create_staged(self, parent: Node, name: bytes, mode: int,
                             caller: Caller) -> tuple[int, Node]:
        """A new file of a remote source: in the catalog and staged now, uploaded at close."""
        if self.tree.child(parent.id, name) is not None:
            raise FsError(errno.EEXIST)
        now = time.time_ns()
        new = nodes.NewNode(Kind.SOURCE, stat.S_IFREG | stat.S_IMODE(mode), caller.uid, caller.gid,
                        0, now, now, source_id=parent.source_id,
                        remote_path=child_path(parent, name))
        with self.tree.transaction() as txn:
            node_id = nodes.insert_node(txn, parent.id, name, new, generation=self.tree.generation)
        node = self.node(node_id)
        self._mark_changed(node_id)
        handle = Handle(node_id, writable=True, written=True, node=node)
        handle.staged = await self.remote.open_writer(node, truncate=True)
        return self.handles.add(handle), node

    async def _own(self, backend: Backend, parent: Node, path: bytes, caller: Caller) -> None:
        """Give a new entry to the caller, as a local filesystem would."""
        if not self._as_root:
            return
        gid = parent.gid if parent.mode & stat.S_ISGID else caller.gid
        if (caller.uid, gid) != (os.geteuid(), os.getegid()):
            await self._io(backend.chown, path, caller.uid, gid)

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(fh)
        if handle.snapshot is not None:
            return handle.snapshot[offset : offset + size]
        if handle.file is not None:
            return await self._io(handle.file.read, offset, size)
        node = self.node(handle.node_id)
        try:
            return await self.remote.read(node, offset, size)
        except FsError as exc:
            if exc.code != errno.ESTALE:
                raise
        # the object changed on the server since it was listed: read the new version
        node = await self._restat(node)
        if self.notifier is not None:
            self.notifier.forget_inode(node.id)
        return await self.remote.read(node, offset, size)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self.handles.get(fh)
        if not handle.writable:
            raise FsError(errno.EBADF)
        if handle.staged is not None:
            written = await self.remote.write(handle.staged, offset, data)
        elif handle.file is not None:
            written = await self._io(handle.file.write, offset, data)
        else:
            raise FsError(errno.EBADF)
        self._mark_changed(handle.node_id)
        handle.size = max(handle.size, offset + written)
        handle.written = True
        return written

    async def flush(self, fh: int) -> None:
        handle = self.handles.get(fh)
        if handle.written:
            await self._settle(handle)

    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self.handles.get(fh)
        if handle.file is not None:
            await self._io(handle.file.fsync, datasync)
        if handle.written:
            await self._settle(handle)
        if handle.journal_id is not None:
            await self.remote.wait_uploaded(handle.journal_id, self.config.io_timeout * 4)
        self.tree.catalog.checkpoint()
        self.tree.hot.sync()

    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        try:
            if handle.file is not None:
                await self._io(handle.file.close)
        finally:
            if handle.written:
                await self._settle(handle)
            if handle.staged is not None:
                self.remote.release_writer(handle.node_id, handle.staged)

    async def _settle(self, handle: Handle) -> None:
        """Make what was written the file's content: catalog attributes, and for a remote
        source a journaled upload of the staged copy."""
        handle.written = False
        node = self.tree.node(handle.node_id)
        if node is None:
            return  # unlinked while open
        if handle.staged is not None:
            size = handle.staged.size
            with self.tree.transaction() as txn:
                nodes.update_node(txn, node.id, size=size, mtime_ns=time.time_ns(),
                              ctime_ns=time.time_ns())
            handle.journal_id = self.remote.journal(node.with_(size=size), handle.staged)
            handle.size = size
            return
        try:
            node = await self._restat(node)
        except FsError as exc:
            if exc.code != errno.ENOENT:
                raise
            return
        handle.size = node.size

    # -- attributes -------------------------------------------------------------

    async def setattr(self, node_id: int, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      fh: int | None = None) -> Node:
        node = self.node(node_id)
        backend = self._writable(node)
        path = node.remote_path
        assert path is not None
        self._mark_changed(node_id)
        if size is not None:
            await self._truncate(node, backend, size, fh)
        if mode is not None:
            await self._io(backend.chmod, path, mode)
        if uid is not None or gid is not None:
            await self._io(backend.chown, path, -1 if uid is None else uid,
                           -1 if gid is None else gid)
        if atime_ns is not None or mtime_ns is not None:
            await self._io(backend.utime, path, atime_ns, mtime_ns)
        if self.remote.has_staged(node_id):
            return self.node(node_id)  # the source has not got this content yet
        return self.node((await self._restat(node)).id)

    async def _truncate(self, node: Node, backend: Backend, size: int, fh: int | None) -> None:
        if node.is_dir:
            raise FsError(errno.EISDIR)
        handle = self.handles.get(fh) if fh is not None else None
        if not isinstance(backend, DirectFiles):
            await self._truncate_staged(node, size, handle)
        elif handle is not None and handle.file is not None and handle.writable:
            await self._io(handle.file.truncate, size)
        else:
            assert node.remote_path is not None
            await self._io(backend.truncate, node.remote_path, size)
        self.handles.set_size(node.id, size)

    async def _truncate_staged(self, node: Node, size: int, handle: Handle | None) -> None:
        """Truncate a remote file: in its staged copy, uploaded as a whole afterwards."""
        if handle is not None and handle.staged is not None:
            await self.remote.truncate(handle.staged, size)
            handle.written = True
            return
        writer = Handle(node.id, writable=True, written=True, node=node)
        writer.staged = await self.remote.open_writer(node, truncate=size == 0)
        try:
            await self.remote.truncate(writer.staged, size)
            await self._settle(writer)
        finally:
            self.remote.release_writer(node.id, writer.staged)

    # -- names --------------------------------------------------------------------

    async def mkdir(self, parent_id: int, name: bytes, mode: int, caller: Caller) -> Node:
        check_name(name)
        parent, backend = self._writable_dir(parent_id)
        path = child_path(parent, name)
        async with self._locked(parent_id):
            if parent.mode & stat.S_ISGID:
                mode |= stat.S_ISGID
            await self._io(backend.mkdir, path, mode)
            await self._own(backend, parent, path, caller)
            node = await self._record(parent, name, backend)
        self._listed[node.id] = trio.current_time()  # new and empty: nothing to list
        return node

    async def mknod(self, parent_id: int, name: bytes, mode: int, caller: Caller) -> Node:
        if not stat.S_ISREG(mode):
            raise FsError(errno.EPERM, "only regular files can be made with mknod")
        fh, node = await self.create(parent_id, name, mode, os.O_WRONLY | os.O_EXCL, caller)
        await self.release(fh)
        return self.node(node.id)

    async def symlink(self, parent_id: int, name: bytes, target: bytes, caller: Caller) -> Node:
        check_name(name)
        parent, backend = self._writable_dir(parent_id)
        path = child_path(parent, name)
        async with self._locked(parent_id):
            await self._io(backend.symlink, target, path)
            await self._own(backend, parent, path, caller)
            return await self._record(parent, name, backend)

    async def link(self, node_id: int, parent_id: int, name: bytes) -> Node:
        check_name(name)
        node = self.node(node_id)
        parent, backend = self._writable_dir(parent_id)
        if node.is_dir:
            raise FsError(errno.EPERM)
        if node.source_id != parent.source_id:
            raise FsError(errno.EXDEV)
        assert node.remote_path is not None
        path = child_path(parent, name)
        async with self._locked(parent_id):
            await self._io(backend.link, node.remote_path, path)
            entry = await self._io(backend.stat, path)
            with self.tree.transaction() as txn:
                nodes.add_hardlink(txn, node.id, parent.id, name, path)
                nodes.update_node(txn, node.id, nlink=entry.nlink, ctime_ns=entry.ctime_ns)
        return self.node(node.id)

    async def unlink(self, parent_id: int, name: bytes) -> None:
        await self._remove(parent_id, name, want_dir=False)

    async def rmdir(self, parent_id: int, name: bytes) -> None:
        await self._remove(parent_id, name, want_dir=True)

    async def _remove(self, parent_id: int, name: bytes, want_dir: bool) -> None:
        parent, backend = self._writable_dir(parent_id)
        async with self._locked(parent_id):
            node = self.tree.child(parent_id, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.is_dir != want_dir:
                raise FsError(errno.ENOTDIR if want_dir else errno.EISDIR)
            path = child_path(parent, name)
            if isinstance(backend, DirectFiles):
                await self._io(backend.rmdir if want_dir else backend.unlink, path)
            else:
                await self._remove_remote(backend, node, path)
            refresh_one(self.tree, parent, None, name)
        survivor = self.tree.node(node.id)
        if survivor is not None:  # other hard links remain
            await self._restat(survivor)

    async def _remove_remote(self, backend: Backend, node: Node, path: bytes) -> None:
        """Delete on a remote source, after any upload of it (which would bring it back)."""
        if node.is_dir:
            if self.remote.staged_below(node.id):
                raise FsError(errno.ENOTEMPTY)
            await self._io(backend.rmdir, path)
            return
        staged = self.remote.has_staged(node.id)
        async with self.remote.uploads_paused(node.id):
            self.remote.discard(node.id)
            try:
                await self._io(backend.unlink, path)
            except FsError as exc:
                if not (staged and exc.code == errno.ENOENT):  # never uploaded: nothing there
                    raise

    async def rename(self, old_parent_id: int, old_name: bytes, new_parent_id: int,
                     new_name: bytes, flags: int) -> None:
        check_name(new_name)
        old_parent, backend = self._writable_dir(old_parent_id)
        new_parent, _ = self._writable_dir(new_parent_id)
        if old_parent.source_id != new_parent.source_id:
            raise FsError(errno.EXDEV)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise FsError(errno.EINVAL)
        async with self._locked(old_parent_id, new_parent_id):
            node = self.tree.child(old_parent_id, old_name)
            if node is None:
                raise FsError(errno.ENOENT)
            target = self.tree.child(new_parent_id, new_name)
            if node.is_dir and self._is_below(new_parent, node.id):
                raise FsError(errno.EINVAL)
            old_path, new_path = child_path(old_parent, old_name), child_path(new_parent, new_name)
            async with AsyncExitStack() as paused:
                if not isinstance(backend, DirectFiles):  # no upload may land at either name
                    await paused.enter_async_context(
                        self.remote.uploads_paused(None if node.is_dir else node.id))
                    if target is not None and not target.is_dir:
                        await paused.enter_async_context(self.remote.uploads_paused(target.id))
                await self._rename_locked(backend, node, target, _Move(
                    old_parent_id, old_name, old_path, new_parent_id, new_name, new_path), flags)
        survivor = self.tree.node(target.id) if target is not None else None
        if survivor is not None and survivor.id != node.id:  # a replaced name had hard links
            await self._restat(survivor)

    async def _rename_locked(self, backend: Backend, node: Node, target: Node | None,
                             move: _Move, flags: int) -> None:
        """The rename itself, under both folders' locks (and with uploads paused)."""
        old_path, new_path = move.old_path, move.new_path
        with self._renames.renaming():
            if isinstance(backend, DirectFiles):
                await self._io(backend.rename, old_path, new_path, flags)
            else:
                await self._rename_remote(backend, node, target, old_path, new_path, flags)
            if target is not None and target.id == node.id and not flags & RENAME_EXCHANGE:
                return  # two names of one file: rename(2) leaves both in place
            with self.tree.transaction() as txn:
                if flags & RENAME_EXCHANGE:
                    _exchange(txn, move)
                else:
                    if target is not None:
                        nodes.remove_name(txn, move.new_parent, move.new_name)
                    nodes.move_name(txn, move.old_parent, move.old_name, move.new_parent,
                                move.new_name, new_path)
                self.remote.retarget(txn, node, old_path, new_path)

    async def _rename_remote(self, backend: Backend, node: Node, target: Node | None,
                             old_path: bytes, new_path: bytes, flags: int) -> None:
        """Rename on S3/SFTP (uploads of what it moves are paused by the caller)."""
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "this source cannot exchange names")
        if flags & RENAME_NOREPLACE and target is not None:
            raise FsError(errno.EEXIST)
        if target is not None and target.is_dir and self.remote.staged_below(target.id):
            raise FsError(errno.ENOTEMPTY)
        if target is not None and not target.is_dir:
            self.remote.discard(target.id)
        journal = None
        if not backend.atomic_rename and node.source_id is not None:
            with self.tree.transaction() as txn:
                journal = rename_journal.begin(txn, node.source_id, old_path, new_path)
        try:
            await self._io(backend.rename, old_path, new_path, 0, timeout=self.config.list_timeout)
        except FsError as exc:
            if not (exc.code == errno.ENOENT and self.remote.has_staged(node.id)):
                raise  # (a file not uploaded yet has nothing to move on the server)
        if journal is not None:
            with self.tree.transaction() as txn:
                rename_journal.finish(txn, journal)

    async def finish_interrupted_renames(self) -> None:
        """At start: complete copy-then-delete renames a crash cut short (idempotent)."""
        for rename_id, source_id, old, new in rename_journal.unfinished(self.tree.catalog.conn):
            log.info("finishing an interrupted rename %r -> %r", old, new)
            try:
                await self._io(self._backend_by_id(source_id).rename, old, new, 0,
                               timeout=self.config.list_timeout)
            except FsError as exc:
                if exc.code != errno.ENOENT:  # ENOENT: nothing was left at the old path
                    log.warning("could not finish the rename of %r: %s", old, exc)
                    continue
            with self.tree.transaction() as txn:
                rename_journal.finish(txn, rename_id)

    def _is_below(self, candidate: Node, ancestor_id: int) -> bool:
        """Is `candidate` the node `ancestor_id` or inside it? (no dir into itself)"""
        node: Node | None = candidate
        while node is not None and node.id != node.parent:
            if node.id == ancestor_id:
                return True
            node = self.tree.node(node.parent)
        return False

    # -- extended attributes ---------------------------------------------------

    def getxattr(self, node_id: int, name: bytes) -> bytes:
        node = self.node(node_id)
        if node.kind is Kind.TABLE:
            return self._table_xattrs(node_id).get(name) or _no_data()
        value = xattrs.get_xattr(self.tree.catalog.conn, node_id, name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def listxattr(self, node_id: int) -> list[bytes]:
        if self.node(node_id).kind is Kind.TABLE:
            return sorted(self._table_xattrs(node_id))
        return xattrs.list_xattrs(self.tree.catalog.conn, node_id)

    def _table_xattrs(self, node_id: int) -> dict[bytes, bytes]:
        """What a snapshot file says about itself (table folders have none)."""
        f = managed.file_by_node(self.tree.catalog.conn, node_id)
        if f is None:
            return {}
        taken = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.rendered_ns / 1e9))
        return {b"user.markfs.source": f.source.encode(),
                b"user.markfs.table": f"{f.source}/{f.schema}/{f.table}".encode(),
                b"user.markfs.snapshot_time": taken.encode(),
                b"user.markfs.rows": str(f.rows).encode(),
                b"user.markfs.hash": f"xxh3-128:{f.digest}".encode(),
                b"user.markfs.stale": b"1" if f.stale else b"0"}

    def setxattr(self, node_id: int, name: bytes, value: bytes) -> None:
        self._writable(self.node(node_id))
        if not name.startswith(XATTR_WRITABLE_PREFIX):
            raise FsError(errno.ENOTSUP)
        with self.tree.transaction() as txn:
            xattrs.set_xattr(txn, node_id, name, value)

    def removexattr(self, node_id: int, name: bytes) -> None:
        self._writable(self.node(node_id))
        with self.tree.transaction() as txn:
            if not xattrs.remove_xattr(txn, node_id, name):
                raise FsError(errno.ENODATA)

    # -- the filesystem as a whole ---------------------------------------------

    def statfs(self) -> FsStats:
        st = os.statvfs(self.data_dir.root)
        used = self.tree.count_nodes()
        return FsStats(block_size=st.f_frsize, blocks=st.f_blocks, blocks_free=st.f_bfree,
                       blocks_avail=st.f_bavail, files=used + st.f_ffree, files_free=st.f_ffree)


def _close(file: OpenFile) -> None:
    file.close()


def _no_data() -> bytes:
    raise FsError(errno.ENODATA)


def check_name(name: bytes) -> None:
    if len(name) > 255:
        raise FsError(errno.ENAMETOOLONG)
    if not valid_name(name):
        raise FsError(errno.EINVAL)


@dataclass(frozen=True)
class _Move:
    """One rename: a name and its source path, before and after."""

    old_parent: int
    old_name: bytes
    old_path: bytes
    new_parent: int
    new_name: bytes
    new_path: bytes


def _exchange(txn: Txn, move: _Move) -> None:
    """Swap two names in the catalog (RENAME_EXCHANGE), via a name no file can have."""
    parking = b"\0exchange"
    nodes.move_name(txn, move.old_parent, move.old_name, move.old_parent, parking,
                move.old_path + b"\0")
    nodes.move_name(txn, move.new_parent, move.new_name, move.old_parent, move.old_name,
                move.old_path)
    nodes.move_name(txn, move.old_parent, parking, move.new_parent, move.new_name, move.new_path)
