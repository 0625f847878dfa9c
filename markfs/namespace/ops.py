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
from dataclasses import dataclass

import trio

from markfs.backends.base import Backend
from markfs.cache.content import ContentCache
from markfs.cache.snapshots import SnapshotStore
from markfs.cache.staging import StagingArea
from markfs.config import DataDir, MountConfig
from markfs.errors import FsError, SourceShut, UserError
from markfs.metrics import METRICS
from markfs.model import Kind, Node
from markfs.namespace import inventory
from markfs.namespace.control import MountInfo, render_status
from markfs.namespace.coordination import (
    ChangeMarks,
    DirectoryLocks,
    KernelNotifications,
    KernelNotifier,
)
from markfs.namespace.curation import definitions
from markfs.namespace.curation.gathered import CategoryFolders, GatheredFolders, TagFolders
from markfs.namespace.curation.reach import Reach
from markfs.namespace.curation.views import ViewFolders
from markfs.namespace.files.provider import SourceFiles
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.fixed import ControlFiles, LayoutFolders
from markfs.namespace.handles import HandleTable
from markfs.namespace.listing import NAME_MAX, valid_name
from markfs.namespace.ownership import MountOwner, Ownership
from markfs.namespace.provider import AttrChanges, Caller, Provider, Services
from markfs.namespace.remote.remotefiles import RemoteFiles
from markfs.namespace.tables.provider import TableFiles
from markfs.namespace.tree import Tree
from markfs.namespace.workers import WorkerPool

log = logging.getLogger(__name__)
USER_XATTRS = b"user."  # the only namespace of xattrs markfs stores or serves
TAGS_XATTR = b"user.markfs.tags"  # comma-separated tags of a file, read and set as an xattr
TAGGABLE = frozenset({Kind.SOURCE, Kind.TABLE})
GATHERED = frozenset({Kind.VIEW, Kind.TAG, Kind.CATEGORY})
PROBE_EVERY_S = 2.0  # how often a source that is not ok is asked whether it answers

__all__ = ["Caller", "FsStats", "KernelNotifier", "Namespace", "check_name"]


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
        self.ownership = Ownership(MountOwner.parse(config.uid, config.gid, config.umask),
                                   sources.scheme, sources.table_access)
        self.handles = HandleTable()
        self.workers = WorkerPool(config.io_threads, config.io_timeout)
        self.remote = RemoteFiles(
            tree, ContentCache(data_dir.cache, config.cache_max_bytes),
            StagingArea(data_dir.staging), self.workers.run, self._backend_by_id,
            config.io_timeout, config.upload_delay)
        self.s = Services(
            tree, config, self.workers.run, self.handles, DirectoryLocks(),
            ChangeMarks(lambda n: bool(self.handles.writers(n)) or self.remote.staged.has(n)),
            KernelNotifications(lambda n: bool(self.handles.writers(n))))
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

    def close(self) -> None:
        """The caches this namespace opened (the tree is its owner's to close)."""
        self.remote.cache.close()

    @property
    def notifier(self) -> KernelNotifier | None:
        return self.s.kernel.notifier

    @notifier.setter
    def notifier(self, notifier: KernelNotifier | None) -> None:
        self.s.kernel.notifier = notifier

    def _backend_by_id(self, source_id: int) -> Backend:
        """The backend for a call to a source; EIO at once while the source is not ok
        (the probe, not each caller, finds out when it answers again)."""
        shut = self.sources.shut(source_id)
        if shut is not None:
            raise SourceShut(errno.EIO, f"source {self.sources.name(source_id)} is "
                             f"{shut.state} ({shut.failure or shut.last_error}): failing at "
                             "once until it answers again", refused=shut.state == "refused")
        backend = self.sources.backend(source_id)
        if backend is None:
            raise FsError(errno.ENOENT, f"source {source_id} is gone")
        return backend

    def _changed_on_source(self, node_id: int) -> None:
        self.s.marks.mark(node_id)
        self.s.kernel.forget_inode(node_id)

    def _status(self) -> bytes:
        return render_status(self.tree, self.info, len(self.handles),
                             self.remote.uploader.pending(), self.sources.health.snapshot())

    def refresh_metrics(self) -> None:
        """Gauges that are answers of the catalog and the caches, brought up to date."""
        count, size = self.remote.uploader.pending()
        METRICS.uploads_pending.set(count)
        METRICS.uploads_pending_bytes.set(size)
        METRICS.cache_bytes.set(self.remote.cache.used_bytes())
        for state, jobs in inventory.jobs_by_state(self.tree).items():
            METRICS.scan_jobs.labels(state).set(jobs)
        METRICS.stale_tables.set(len(inventory.stale_tables(self.tree)))

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

    def is_writable(self, node: Node) -> bool:
        return self._provider(node).writable(node)

    async def ensure_listed(self, directory: Node, force: bool = False) -> None:
        await self.source_files.listings.ensure_listed(directory, force)

    async def refresh_path(self, source_id: int, remote_path: bytes) -> None:
        """Re-check one path of a source that changed outside the mount (watcher events)."""
        await self.source_files.listings.refresh_path(source_id, remote_path)

    def watching(self, source_ids: list[int]) -> None:
        """The local watcher reports every change to these sources from now on."""
        self.source_files.listings.watched(source_ids)

    def watch_lost(self) -> None:
        """The local watcher lost events: listings expire by `dir_ttl` again."""
        self.source_files.listings.watch_lost()

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
            await nursery.start(self.finish_interrupted_renames)
            nursery.start_soon(self.probe_sources)
            nursery.start_soon(self.connect_sources)
            task_status.started()

    async def connect_sources(self) -> None:
        """Connect to the sources slow to connect ahead of their first use, all at once."""
        async with trio.open_nursery() as nursery:
            for backend in self.sources.slow_to_connect():
                nursery.start_soon(self._connect_ahead, backend)

    async def _connect_ahead(self, backend: Backend) -> None:
        try:
            await self.workers.run(backend.connect_ahead)
        except FsError as exc:  # the first request will say it again, to whoever asked
            log.info("connecting ahead failed: %s", exc.strerror)

    async def finish_interrupted_renames(
            self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.source_files.finish_interrupted_renames(task_status)

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
        if child is None or (caller is not None and self._hidden(parent, child,
                                                                  self._reach(caller))):
            raise FsError(errno.ENOENT)
        return self.node(child.id)

    async def readdir(self, dir_id: int, after: int, limit: int,
                      caller: Caller | None = None) -> list[tuple[int, bytes, Node | None]]:
        """Up to `limit` entries after cookie `after`; an entry the caller could not reach
        in a gathered folder has no node (it is not listed, but its cookie counts)."""
        directory, provider = self._folder(dir_id)
        reach = self._reach(caller) if caller is not None else None
        return [(cookie, name, None if reach is not None and self._hidden(directory, n, reach)
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

    async def probe_sources(self) -> None:
        """For the life of the mount: every `PROBE_EVERY_S`, ask each source that is not
        ok whether it answers again (its whole listing of the root, bounded by
        io_timeout); one that does is ok, and its waiting uploads go at once."""
        async with trio.open_nursery() as nursery:
            probing: set[int] = set()
            while True:
                await trio.sleep(PROBE_EVERY_S)
                for source_id in self.sources.shut_ids():
                    if source_id not in probing:
                        probing.add(source_id)
                        nursery.start_soon(self._probe, source_id, probing)

    async def _probe(self, source_id: int, probing: set[int]) -> None:
        """The first page of the source's root listing: an answer makes it ok; a failure
        says what it is now (unreachable, or refused for good: the bucket or folder
        gone)."""
        try:
            backend = self.sources.backend(source_id)
            if backend is not None:
                await self.workers.run(_first_page, backend)
                self.sources.answered(source_id)
                self.remote.uploader.retry_now()
        except FsError as exc:
            self.sources.answered(source_id, exc)
        finally:
            probing.discard(source_id)

    def shows_per_caller(self, folder_id: int) -> bool:
        """Does the folder show each caller other entries (gathered folders)? The kernel
        then must not keep its names or misses for the next caller."""
        folder = self.tree.node(folder_id)
        return folder is not None and folder.kind in GATHERED

    def _reach(self, caller: Caller) -> Reach:
        return Reach(caller, self.tree.node, self.ownership.of)

    @staticmethod
    def _hidden(folder: Node, child: Node, reach: Reach) -> bool:
        """A member of a gathered folder (not one of its own folders) the caller could not
        reach through its source's folders."""
        return (folder.kind in GATHERED and child.kind is not folder.kind
                and not reach.reaches(child))

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
        journal_id = handle.last_upload() or self.remote.uploader.latest_upload(handle.node_id)
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

    def getxattr(self, node_id: int, name: bytes) -> bytes:
        if not name.startswith(USER_XATTRS):  # ls -l asks two of these of every file
            raise FsError(errno.ENODATA)  # markfs holds none: answered without a lookup
        node = self.node(node_id)
        if name == TAGS_XATTR and node.kind in TAGGABLE:
            found = definitions.tags_of(self.tree, node)
            if not found:
                raise FsError(errno.ENODATA)
            return ",".join(found).encode()
        return self._provider(node).getxattr(node, name)

    def listxattr(self, node_id: int) -> list[bytes]:
        node = self.node(node_id)
        names = self._provider(node).listxattr(node)
        if node.kind in TAGGABLE and definitions.tags_of(self.tree, node):
            names = sorted({*names, TAGS_XATTR})
        return names

    def setxattr(self, node_id: int, name: bytes, value: bytes) -> None:
        node = self.node(node_id)
        if name == TAGS_XATTR:
            self._set_tags(node, value.decode(errors="replace").split(","))
            return
        self._provider(node).setxattr(node, name, value)

    def removexattr(self, node_id: int, name: bytes) -> None:
        node = self.node(node_id)
        if name == TAGS_XATTR:
            if node.kind not in TAGGABLE or not definitions.tags_of(self.tree, node):
                raise FsError(errno.ENODATA)
            self._set_tags(node, [])
            return
        self._provider(node).removexattr(node, name)

    def _set_tags(self, node: Node, wanted: list[str]) -> None:
        """Tags are the catalog's, not the source's: set on read-only sources too."""
        if node.kind not in TAGGABLE:
            raise FsError(errno.ENOTSUP, "only files and folders of sources and tables")
        try:
            definitions.set_tags(self.tree, node, wanted)
        except UserError as exc:
            raise FsError(errno.EINVAL, str(exc)) from None

    # -- the filesystem as a whole -----------------------------------------------------

    def statfs(self) -> FsStats:
        st = os.statvfs(self.data_dir.root)
        used = self.tree.count_nodes()
        return FsStats(block_size=st.f_frsize, blocks=st.f_blocks, blocks_free=st.f_bfree,
                       blocks_avail=st.f_bavail, files=used + st.f_ffree, files_free=st.f_ffree)


def _first_page(backend: Backend) -> None:
    next(iter(backend.list_pages(b"")), None)


def check_name(name: bytes) -> None:
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG)
    if not valid_name(name):
        raise FsError(errno.EINVAL)
