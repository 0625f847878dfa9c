"""The namespace: every filesystem operation, on catalog node ids, dispatched to providers.

The FUSE adapter calls these with catalog ids and bytes names and turns
`FsError` into an errno. Here a request is resolved to its node, checked where
the check is the same for every kind (names, `.`/`..`, folders), and handed to
the provider of the node's kind (see `provider`). What is common stays here:
open file handles, writers' sizes layered over the catalog's, and the services
every provider shares (directory locks, change marks, kernel notifications).
"""

from __future__ import annotations

import errno
import logging
import os
import stat

import trio

from markfs.cache.content import ContentCache
from markfs.cache.snapshots import SnapshotStore
from markfs.cache.staging import StagingArea
from markfs.config import DataDir, MountConfig
from markfs.errors import FsError
from markfs.metrics import METRICS
from markfs.model import USER_XATTRS, Kind, Node
from markfs.namespace.attributes import ExtendedAttributes
from markfs.namespace.control import (
    FsStats,
    MountInfo,
    filesystem_stats,
    refresh_gauges,
    render_status,
)
from markfs.namespace.coordination import (
    ChangeMarks,
    DirectoryLocks,
    KernelNotifications,
    KernelNotifier,
)
from markfs.namespace.curation.gathered import CategoryFolders, GatheredFolders, TagFolders
from markfs.namespace.curation.reach import GATHERED, Reach, hidden
from markfs.namespace.curation.tagxattr import TagAttribute
from markfs.namespace.curation.views import ViewFolders
from markfs.namespace.files.provider import SourceFiles
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.files.upkeep import SourceUpkeep
from markfs.namespace.fixed import ControlFiles, LayoutFolders
from markfs.namespace.handles import HandleTable
from markfs.namespace.listing import NAME_MAX, valid_name
from markfs.namespace.ownership import MountOwner, Ownership
from markfs.namespace.provider import AttrChanges, Caller, Provider, Services
from markfs.namespace.remote.remotefiles import RemoteFiles
from markfs.namespace.tables.provider import TableFiles
from markfs.namespace.tree import Tree
from markfs.namespace.workers import CatalogRunner, WorkerPool

log = logging.getLogger(__name__)

__all__ = ["Caller", "FsStats", "KernelNotifier", "Namespace", "check_name"]


class Namespace:
    def __init__(self, tree: Tree, sources: SourceSet, config: MountConfig,
                 info: MountInfo, data_dir: DataDir) -> None:
        self.tree = tree
        self.sources = sources
        self.config = config
        self.info = info
        self.data_dir = data_dir
        self.ownership = Ownership(MountOwner.parse(config.uid, config.gid, config.umask),
                                   sources.scheme, sources.table_access)
        self.handles = HandleTable()
        self.workers = WorkerPool(config.io_threads, config.io_timeout)
        catalog_calls = CatalogRunner(tree.catalog, config.io_timeout)
        self.upkeep = SourceUpkeep(sources, self.workers.run,
                                   lambda: self.remote.uploader.retry_now())
        self.remote = RemoteFiles(
            tree, ContentCache(data_dir.cache, config.cache_max_bytes),
            StagingArea(data_dir.staging), self.workers.run, self.upkeep.backend,
            config.io_timeout, config.upload_delay, catalog_calls)
        self.s = Services(
            tree, config, self.workers.run, self.handles, DirectoryLocks(),
            ChangeMarks(lambda n: bool(self.handles.writers(n)) or self.remote.staged.has(n)),
            KernelNotifications(lambda n: bool(self.handles.writers(n))), catalog_calls)
        self.remote.tell(self._changed_on_source, self.s.kernel.forget_entry, sources.answered)
        self.source_files = SourceFiles(self.s, sources, self.remote)
        self.providers: dict[Kind, Provider] = {
            Kind.LAYOUT: LayoutFolders(self.s),
            Kind.CONTROL: ControlFiles(self.s, self._status),
            Kind.SOURCE: self.source_files,
            Kind.TABLE: TableFiles(self.s, SnapshotStore(data_dir.cache)),
            Kind.VIEW: ViewFolders(self.s, sources, self.source_files),
            Kind.TAG: TagFolders(self.s, sources),
            Kind.CATEGORY: CategoryFolders(self.s, sources),
        }
        self.xattrs = ExtendedAttributes(catalog_calls, self._provider, TagAttribute(tree))

    def close(self) -> None:
        """The caches this namespace opened (the tree is its owner's to close)."""
        self.remote.cache.close()

    @property
    def notifier(self) -> KernelNotifier | None:
        return self.s.kernel.notifier

    @notifier.setter
    def notifier(self, notifier: KernelNotifier | None) -> None:
        self.s.kernel.notifier = notifier

    def _changed_on_source(self, node_id: int) -> None:
        self.s.marks.mark(node_id)
        self.s.kernel.forget_inode(node_id)

    def _status(self) -> bytes:
        return render_status(self.tree, self.info, len(self.handles),
                             self.remote.uploader.pending(), self.sources.health.snapshot())

    def refresh_metrics(self) -> None:
        """Gauges that are answers of the catalog and the caches, brought up to date."""
        refresh_gauges(self.tree, self.remote.uploader.pending(), self.remote.cache)

    def _provider(self, node: Node) -> Provider:
        return self.providers[node.kind]

    def _folder(self, dir_id: int) -> tuple[Node, Provider]:
        directory = self.node(dir_id)
        if not directory.is_dir:
            raise FsError(errno.ENOTDIR)
        return directory, self._provider(directory)

    # -- nodes -------------------------------------------------------------------------

    def node(self, node_id: int) -> Node:
        """Current attributes of a node, with what open writers know layered on top."""
        node = self.tree.node(node_id)
        if node is None:
            node = self._open_orphan(node_id)
        node = self._provider(node).attrs(node)
        size = self.handles.written_size(node_id)
        return node if size is None else node.with_(size=size)

    def _open_orphan(self, node_id: int) -> Node:
        """A node unlinked while still open keeps its last attributes until released."""
        for h in self.handles.for_node(node_id):
            return h.node.with_(nlink=0, size=h.size)
        raise FsError(errno.ENOENT)

    def kernel_ttl(self, node: Node) -> tuple[float, float]:
        """Seconds the kernel may keep `node`'s name and its attributes: what its
        provider says it keeps true by telling the kernel of every change
        (`Provider.kernel_keeps`), never less than the mount's `entry_ttl`/`attr_ttl`."""
        kept = self._provider(node).kernel_keeps(node)
        if kept is None:
            return self.config.entry_ttl, self.config.attr_ttl
        return max(kept, self.config.entry_ttl), max(kept, self.config.attr_ttl)

    def kernel_ttl_of_absent(self, parent_id: int) -> float:
        """Seconds the kernel may remember that folder `parent_id` has no such name (a
        create through the mount or a pushed invalidation replaces the answer)."""
        parent = self.tree.node(parent_id)
        kept = None if parent is None else self._provider(parent).kernel_keeps_absent(parent)
        return self.config.entry_ttl if kept is None else max(kept, self.config.entry_ttl)

    async def is_writable(self, node: Node) -> bool:
        """(A view's answer is its row in the catalog: through the catalog's runner.)"""
        return await self.s.catalog.read(self._provider(node).writable, node)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every background task of the namespace, for as long as it serves: uploads left
        by a crash resumed, the chunk reader's runs, the uploader, renames a crash
        interrupted finished (before anything is served: their folders' locks are
        taken), sources that stopped answering probed, slow ones connected ahead. The
        daemon and the in-process harness both start it."""
        self.remote.uploader.resume()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.remote.reader.run)
            await nursery.start(self.remote.uploader.run)
            await nursery.start(self.source_files.finish_interrupted_renames)
            nursery.start_soon(self.upkeep.probe)
            nursery.start_soon(self.upkeep.connect_ahead)
            task_status.started()

    # -- lookups and listings ----------------------------------------------------------

    async def lookup(self, parent_id: int, name: bytes, caller: Caller | None = None) -> Node:
        """`caller`: in a gathered folder, a member it could not reach is not there."""
        parent = self.node(parent_id)
        if name == b".":
            return parent
        if name == b"..":
            return self.node(parent.parent)
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        if len(name) > NAME_MAX:  # as a disk says it, for every call that names it
            raise FsError(errno.ENAMETOOLONG)
        child = await self._provider(parent).lookup(parent, name)
        if child is None or (caller is not None and hidden(parent, child,
                                                                  self._reach(caller))):
            raise FsError(errno.ENOENT)
        return self.node(child.id)

    async def readdir(self, dir_id: int, after: int, limit: int,
                      caller: Caller | None = None) -> list[tuple[int, bytes, Node | None]]:
        """Up to `limit` entries after cookie `after`; an entry the caller could not reach
        in a gathered folder has no node (it is not listed, but its cookie counts)."""
        directory, provider = self._folder(dir_id)
        reach = self._reach(caller) if caller is not None else None
        return [(cookie, name, None if reach is not None and hidden(directory, n, reach)
                 else self.node(n.id) if self.handles.is_open(n.id) else n)
                for cookie, name, n in await provider.list_folder(directory, after, limit)]

    def changed_elsewhere(self, names: list[tuple[int, bytes]], node_ids: list[int],
                          gathered: bool) -> None:
        """Another process (a command) changed these names and nodes in the catalog:
        the kernel forgets what it held of them; gathered folders compute again."""
        for parent_id, name in names:
            self.s.kernel.forget_entry(parent_id, name)
        for node_id in node_ids:
            self.s.kernel.forget_inode(node_id)
        if gathered:
            for provider in self.providers.values():
                if isinstance(provider, GatheredFolders):
                    provider.forget_all()

    async def kernel_told(self) -> None:
        """Until the kernel has been told what was asked so far (bounded: a kernel that
        does not answer must not stop this daemon)."""
        await self.s.kernel.told(within=self.config.io_timeout)

    def shows_per_caller(self, folder_id: int) -> bool:
        """Does the folder show each caller other entries (gathered folders)? The kernel
        then must not keep its names or misses for the next caller."""
        folder = self.tree.node(folder_id)
        return folder is not None and folder.kind in GATHERED

    def _reach(self, caller: Caller) -> Reach:
        return Reach(caller, self.tree.node, self.ownership.of)

    def readlink(self, node_id: int) -> bytes:
        node = self.node(node_id)
        if not node.is_symlink or node.target is None:
            raise FsError(errno.EINVAL)
        return node.target

    # -- files -------------------------------------------------------------------------

    async def open(self, node_id: int, flags: int) -> tuple[int, bool]:
        """Open a file; returns the handle and whether reads must bypass the page cache."""
        node = self.node(node_id)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        handle = await self._provider(node).open(node, flags)
        return self.handles.add(handle), handle.direct_io

    async def create(self, parent_id: int, name: bytes, mode: int, flags: int,
                     caller: Caller) -> tuple[int, Node]:
        check_name(name)
        parent, provider = self._folder(parent_id)
        handle = await provider.create(parent, name, mode, flags, caller)
        return self.handles.add(handle), handle.node

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(fh)
        data = await handle.read(offset, size)
        METRICS.read_bytes.labels(self.sources.name(handle.node.source_id)).inc(len(data))
        return data

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self.handles.get(fh)
        if not handle.writable:
            raise FsError(errno.EBADF)
        written = await handle.write(offset, data)
        METRICS.written_bytes.labels(self.sources.name(handle.node.source_id)).inc(written)
        self.s.marks.mark(handle.node_id)
        handle.wrote(offset, written)
        return written

    async def flush(self, fh: int) -> None:
        handle = self.handles.get(fh)
        if handle.written:
            await handle.settle()

    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self.handles.get(fh)
        await handle.fsync(datasync)
        if handle.written:
            await handle.settle()
        # (a descriptor that wrote nothing itself, as `sync FILE` opens one, waits for the
        # file's content as it was closed through any other: fsync is of the file)
        journal_id = (handle.last_upload()
                      or await self.remote.uploader.latest_upload(handle.node_id))
        if journal_id is not None:
            await self.remote.uploader.wait_uploaded(journal_id, self.config.io_timeout * 4)
        self.tree.catalog.checkpoint()
        self.tree.hot.sync()

    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        try:
            if handle.written:  # written after the last FLUSH (an mmap's pages): settle
                await handle.settle()  # first, so close finds the staged copy journaled
        finally:
            await handle.close()

    # -- attributes --------------------------------------------------------------------

    async def setattr(self, node_id: int, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      fh: int | None = None) -> Node:
        node = self.node(node_id)
        handle = self.handles.get(fh) if fh is not None else None
        changes = AttrChanges(mode, uid, gid, size, atime_ns, mtime_ns)
        await self._provider(node).setattr(node, changes, handle)
        return self.node(node_id)

    # -- names -------------------------------------------------------------------------

    async def mkdir(self, parent_id: int, name: bytes, mode: int, caller: Caller) -> Node:
        check_name(name)
        parent, provider = self._folder(parent_id)
        return await provider.mkdir(parent, name, mode, caller)

    async def mknod(self, parent_id: int, name: bytes, mode: int, caller: Caller,
                    rdev: int = 0) -> Node:
        """A regular file (as an empty create), or a FIFO, socket or device node."""
        if not stat.S_ISREG(mode):
            check_name(name)
            parent, provider = self._folder(parent_id)
            return await provider.mknod(parent, name, mode, rdev, caller)
        fh, node = await self.create(parent_id, name, mode, os.O_WRONLY | os.O_EXCL, caller)
        await self.release(fh)
        return self.node(node.id)

    async def symlink(self, parent_id: int, name: bytes, target: bytes, caller: Caller) -> Node:
        check_name(name)
        parent, provider = self._folder(parent_id)
        return await provider.symlink(parent, name, target, caller)

    async def link(self, node_id: int, parent_id: int, name: bytes) -> Node:
        check_name(name)
        node = self.node(node_id)
        parent, provider = self._folder(parent_id)
        await provider.link(node, parent, name)
        return self.node(node_id)

    async def unlink(self, parent_id: int, name: bytes) -> None:
        parent, provider = self._folder(parent_id)
        await provider.remove(parent, name, want_dir=False)

    async def rmdir(self, parent_id: int, name: bytes) -> None:
        parent, provider = self._folder(parent_id)
        await provider.remove(parent, name, want_dir=True)

    async def rename(self, old_parent_id: int, old_name: bytes, new_parent_id: int,
                     new_name: bytes, flags: int) -> None:
        check_name(new_name)
        old_parent, provider = self._folder(old_parent_id)
        new_parent, _ = self._folder(new_parent_id)
        if old_parent.kind is not new_parent.kind and GATHERED & {old_parent.kind,
                                                                  new_parent.kind}:
            raise FsError(errno.EXDEV)  # mv copies into a view's landing, never moves data
        await provider.rename(old_parent, old_name, new_parent, new_name, flags)

    # -- extended attributes -----------------------------------------------------------

    async def getxattr(self, node_id: int, name: bytes) -> bytes:
        if not name.startswith(USER_XATTRS):  # ls -l asks two of these of every file
            raise FsError(errno.ENODATA)  # markfs holds none: answered without a lookup
        return await self.xattrs.get(self.node(node_id), name)

    async def listxattr(self, node_id: int) -> list[bytes]:
        return await self.xattrs.names(self.node(node_id))

    async def setxattr(self, node_id: int, name: bytes, value: bytes) -> None:
        await self.xattrs.set(self.node(node_id), name, value)

    async def removexattr(self, node_id: int, name: bytes) -> None:
        await self.xattrs.remove(self.node(node_id), name)

    # -- the filesystem as a whole -----------------------------------------------------

    async def statfs(self) -> FsStats:
        nodes = await self.s.catalog.read(self.tree.count_nodes)
        return filesystem_stats(self.data_dir.root, nodes)


def check_name(name: bytes) -> None:
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG)
    if not valid_name(name):
        raise FsError(errno.EINVAL)
