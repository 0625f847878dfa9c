"""The provider of /sources: files and folders of local, S3 and SFTP sources.

A request is checked (writable source, same source for links and renames),
carried out on the source's backend through its store strategy (in place, or
cached and staged: see `sourcestores`), and recorded in the catalog under the
folder's lock. Folder contents come from the catalog after `SourceListings` made
it match the source.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from markfs.backends.base import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Backend,
    Entry,
    FileAttrs,
    MetadataStore,
    keeps_metadata,
    serves_in_place,
)
from markfs.catalog import nodes
from markfs.catalog.journals import renames as rename_journal
from markfs.catalog.txn import Txn
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.files.listings import SourceListings
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.files.stores import InPlaceStore, StagedStore, give_to
from markfs.namespace.files.xattrs import SourceXattrs
from markfs.namespace.handles import FileHandle, is_write_open
from markfs.namespace.listing import child_path, name_folders, refresh_one, update_attrs
from markfs.namespace.provider import AttrChanges, Caller, Listing, Provider, Services
from markfs.namespace.remote.remotefiles import RemoteFiles
from markfs.namespace.remote.settling import folder_keeps

log = logging.getLogger(__name__)


class SourceFiles(Provider):
    def __init__(self, services: Services, sources: SourceSet, remote: RemoteFiles) -> None:
        super().__init__(services)
        self.sources = sources
        self.remote = remote
        self.listings = SourceListings(services, sources)
        self._in_place = InPlaceStore(services, self.listings)
        self._staged = StagedStore(services, self.listings, remote)
        self.xattrs = SourceXattrs(services)

    def _store(self, backend: Backend) -> InPlaceStore | StagedStore:
        return self._in_place if serves_in_place(backend) else self._staged

    def _writable(self, node: Node) -> Backend:
        backend = self.listings.backend(node)
        row = self.sources.row(node.source_id or 0)
        if row is None or row.read_only:
            raise FsError(errno.EROFS)
        return backend

    def writable(self, node: Node) -> bool:
        try:
            self._writable(node)
        except FsError:
            return False
        return True

    # -- names -------------------------------------------------------------------------

    async def lookup(self, parent: Node, name: bytes) -> Node | None:
        await self.listings.ensure_listed(parent)
        return self.s.tree.child(parent.id, name)

    async def list_folder(self, directory: Node, after: int, limit: int) -> Listing:
        if after == 0:
            await self.listings.ensure_listed(directory)
        return await self.s.catalog.read(self.s.tree.children, directory.id, after, limit)

    async def create(self, parent: Node, name: bytes, mode: int, flags: int,
                     caller: Caller) -> FileHandle:
        backend = self._writable(parent)
        async with self.s.locks.hold(parent.id):  # (the store records the parent's
            # new times with the new name, in one transaction)
            return await self._store(backend).create(parent, name, backend, mode, flags,
                                                     caller)

    async def mkdir(self, parent: Node, name: bytes, mode: int, caller: Caller) -> Node:
        backend = self._writable(parent)
        path = child_path(parent, name)
        async with self.s.locks.hold(parent.id):
            if parent.mode & stat.S_ISGID:
                mode |= stat.S_ISGID
            if keeps_metadata(backend):  # (S3: mode and owner go with the marker)
                gid = parent.gid if parent.mode & stat.S_ISGID else caller.gid
                attrs = FileAttrs(stat.S_IFDIR | stat.S_IMODE(mode), caller.uid, gid,
                                  time.time_ns())
                entry = folder_keeps(await self.s.io(backend.mkdir_with, path, attrs), attrs)
                node = await self.listings.record_entry(parent, name, entry,
                                                        also=self._times_of(parent, backend))
            else:
                await self.s.io(backend.mkdir, path, mode)
                await give_to(self.s, backend, parent, path, caller)
                node = await self.listings.record(parent, name, backend,
                                                  also=self._times_of(parent, backend))
        self.listings.mark_listed(node.id)
        return node

    def _times_of(self, folder: Node, backend: Backend) -> Callable[[], None]:
        """Records a folder's new times after a change of its names (joins the
        transaction that records the name)."""
        return lambda: self._store(backend).attrs_changed(folder, backend)

    async def mknod(self, parent: Node, name: bytes, mode: int, rdev: int,
                    caller: Caller) -> Node:
        backend = self._writable(parent)
        store = self._store(backend)
        async with self.s.locks.hold(parent.id):
            node = await store.mknod(parent, name, backend, mode, rdev, caller)
            await self.s.catalog(store.attrs_changed, parent, backend)
            return node

    async def symlink(self, parent: Node, name: bytes, target: bytes, caller: Caller) -> Node:
        backend = self._writable(parent)
        path = child_path(parent, name)
        async with self.s.locks.hold(parent.id):
            await self.s.io(backend.symlink, target, path)
            await give_to(self.s, backend, parent, path, caller)
            return await self.listings.record(parent, name, backend,
                                              also=self._times_of(parent, backend))

    async def link(self, node: Node, parent: Node, name: bytes) -> Node:
        backend = self._writable(parent)
        if node.is_dir:
            raise FsError(errno.EPERM)
        if node.source_id != parent.source_id:
            raise FsError(errno.EXDEV)
        assert node.remote_path is not None
        path = child_path(parent, name)
        async with self.s.locks.hold(parent.id):
            await self.s.io(backend.link, node.remote_path, path)
            entry = await self.s.io(backend.stat, path)
            await self.s.catalog(self._record_link, node, parent, name, path, entry, backend)
        return node

    def _record_link(self, node: Node, parent: Node, name: bytes, path: bytes, entry: Entry,
                     backend: Backend) -> None:
        with self.s.tree.transaction((parent.id, node.parent)) as txn:
            nodes.add_hardlink(txn, node.id, parent.id, name, path)
            nodes.update_node(txn, node.id, nlink=entry.nlink, ctime_ns=entry.ctime_ns)
            self._store(backend).attrs_changed(parent, backend)

    async def remove(self, parent: Node, name: bytes, want_dir: bool) -> None:
        backend = self._writable(parent)
        await self.listings.ensure_listed(parent)  # (the kernel looked it up; a caller may not)
        async with self.s.locks.hold(parent.id):
            node = self.s.tree.child(parent.id, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.is_dir != want_dir:
                raise FsError(errno.ENOTDIR if want_dir else errno.EISDIR)
            await self._store(backend).remove(node, backend, child_path(parent, name))
            await self.s.catalog(self._record_removal, parent, name, backend)
        survivor = self.s.tree.node(node.id)
        if survivor is not None:  # other hard links remain
            await self.listings.restat(survivor)

    async def rename(self, old_parent: Node, old_name: bytes, new_parent: Node,
                     new_name: bytes, flags: int) -> None:
        backend = self._writable(old_parent)
        self._writable(new_parent)
        if old_parent.source_id != new_parent.source_id:
            raise FsError(errno.EXDEV)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise FsError(errno.EINVAL)
        for folder in (old_parent, new_parent):
            await self.listings.ensure_listed(folder)
        async with self.s.locks.hold(old_parent.id, new_parent.id):
            node = self.s.tree.child(old_parent.id, old_name)
            if node is None:
                raise FsError(errno.ENOENT)
            target = self.s.tree.child(new_parent.id, new_name)
            if node.is_dir and self._is_below(new_parent, node.id):
                raise FsError(errno.EINVAL)
            move = _Move(old_parent.id, old_name, child_path(old_parent, old_name),
                         new_parent.id, new_name, child_path(new_parent, new_name))
            await self._store(backend).rename(
                node, target, backend, (move.old_path, move.new_path), flags,
                then=lambda: self.s.catalog(self._record_move, node, target, move, flags,
                                            backend, old_parent, new_parent))
        survivor = self.s.tree.node(target.id) if target is not None else None
        if survivor is not None and survivor.id != node.id:  # a replaced name had hard links
            await self.listings.restat(survivor)

    def _record_removal(self, parent: Node, name: bytes, backend: Backend) -> None:
        with self.s.tree.transaction(name_folders(self.s.tree, parent, name)):
            refresh_one(self.s.tree, parent, None, name)
            self._store(backend).attrs_changed(parent, backend)

    def _record_move(self, node: Node, target: Node | None, move: _Move, flags: int,
                     backend: Backend, *folders: Node) -> None:
        """The rename, and the times it gave the folders and the node (which the disk
        says of the new path: the mirror has the old one until COMMIT), in one
        transaction: on a server, two round trips instead of four."""
        store = self._store(backend)
        with self.s.tree.transaction(_move_folders(node, target, move)):
            self._record_rename(node, target, move, flags)
            for folder in {f.id: f for f in folders}.values():
                store.attrs_changed(folder, backend)
            store.attrs_changed(node, backend, at=move.new_path)

    def _record_rename(self, node: Node, target: Node | None, move: _Move, flags: int) -> None:
        if target is not None and target.id == node.id and not flags & RENAME_EXCHANGE:
            return  # two names of one file: rename(2) leaves both in place
        with self.s.tree.transaction() as txn:
            if flags & RENAME_EXCHANGE:
                _exchange(txn, move)
            else:
                if target is not None:
                    nodes.remove_name(txn, move.new_parent, move.new_name)
                nodes.move_name(txn, move.old_parent, move.old_name, move.new_parent,
                                move.new_name, move.new_path)
            self.remote.uploader.retarget(txn, node, move.old_path, move.new_path)

    def _is_below(self, candidate: Node, ancestor_id: int) -> bool:
        """Is `candidate` the node `ancestor_id` or inside it? (no dir into itself)"""
        return any(node.id == ancestor_id for node in self.s.tree.lineage(candidate.id))

    async def finish_interrupted_renames(
            self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """At start: complete copy-then-delete renames a crash cut short (idempotent).
        The folders holding either name are locked first (started() comes after), so
        no listing shows half a move, nor the old name a moment before the new."""
        unfinished = self.s.tree.catalog.renames.unfinished()
        folders = [folder.id for _id, source_id, old, new in unfinished for path in (old, new)
                   if (folder := self.s.tree.node_at(source_id, path.rpartition(b"/")[0]))]
        async with self.s.locks.hold(*folders):
            task_status.started()
            await self._finish_renames(unfinished)

    async def _finish_renames(self, unfinished: list[tuple[int, int, bytes, bytes]]) -> None:
        for rename_id, source_id, old, new in unfinished:
            log.info("finishing an interrupted rename %r -> %r", old, new)
            backend = self.sources.backend(source_id)
            if backend is None:
                continue
            try:
                await self.s.io(backend.rename, old, new, 0,
                                timeout=self.s.config.list_timeout)
            except FsError as exc:
                if exc.code != errno.ENOENT:  # ENOENT: nothing was left at the old path
                    log.warning("could not finish the rename of %r: %s", old, exc)
                    continue
            with self.s.tree.transaction() as txn:
                rename_journal.finish(txn, rename_id)

    # -- the node itself -----------------------------------------------------------------

    async def open(self, node: Node, flags: int) -> FileHandle:
        backend = self._writable(node) if is_write_open(flags) else self.listings.backend(node)
        handle = await self._store(backend).open(node, backend, flags)
        if flags & os.O_TRUNC:
            handle.truncated(0)
        return handle

    async def setattr(self, node: Node, changes: AttrChanges,
                      handle: FileHandle | None) -> Node:
        backend = self._writable(node)
        path = node.remote_path
        assert path is not None
        self.s.marks.mark(node.id)
        if changes.size is not None:
            if node.is_dir:
                raise FsError(errno.EISDIR)
            await self._store(backend).truncate(node, backend, changes.size, handle)
            self.s.handles.set_size(node.id, changes.size)
        times = None if changes.atime_ns is None and changes.mtime_ns is None else (
            changes.atime_ns, changes.mtime_ns)
        if keeps_metadata(backend):
            return await self._set_metadata(node, backend, changes, times)
        if self.remote.staged.has(node.id):  # the source has not got this content yet
            self.remote.settling.staged_attrs(node, changes.mode, times)
            # (a file whose upload never began is not on the server to be chowned: its
            # owner is the server's choice, as it was when this call answered ENOENT)
            if (changes.uid is not None or changes.gid is not None) and (
                    not self.remote.staged.never_sent(node.id)):
                await self._chown(backend, path, changes, missing_ok=True)
            return self.s.tree.node(node.id) or node
        if changes.mode is not None:
            await self.s.io(backend.chmod, path, changes.mode)
        if changes.uid is not None or changes.gid is not None or changes.nothing:
            await self._chown(backend, path, changes)
        if times is not None:
            await self.s.io(backend.utime, path, *times)
            if node.is_dir and backend.scheme.keeps_modes and self.remote.staged.below(node.id):
                # (uploads below would move them)
                self.remote.settling.folder_times_later(node.id, times)
        restated = await self.listings.restat(node)
        # (the server's folder time may be passing: uploads below land before the times
        # set on it are set again; the catalog keeps those)
        return self.remote.settling.keep_folder_times(restated)

    async def _set_metadata(self, node: Node, backend: MetadataStore, changes: AttrChanges,
                            times: tuple[int | None, int | None] | None) -> Node:
        """S3: mode, owner and mtime are the object's metadata. Of a file whose content is
        still staged they are kept in the catalog, and go with its upload; else the
        object's are replaced on the server (its mtime kept: the copy that replaces them
        moves LastModified)."""
        owner = (changes.uid, changes.gid)
        if self.remote.staged.has(node.id):
            self.remote.settling.staged_attrs(node, changes.mode, times, owner)
            return self.s.tree.node(node.id) or node
        mtime = times[1] if times is not None else None
        attrs = FileAttrs(
            mode=None if changes.mode is None else stat.S_IFMT(node.mode) | changes.mode,
            uid=changes.uid, gid=changes.gid, mtime_ns=node.mtime_ns if mtime is None else mtime)
        if attrs.mode is None and attrs.uid is None and attrs.gid is None and mtime is None:
            return await self.listings.restat(node)  # (chown to -1 -1, an atime alone)
        assert node.remote_path is not None
        entry = await self.s.io(backend.set_attrs, node.remote_path, attrs)
        current = self.s.tree.node(node.id)
        if current is None:
            return node
        if current.is_dir:
            entry = folder_keeps(entry, attrs, current)
        return await self.s.catalog(update_attrs, self.s.tree, current, entry)

    async def _chown(self, backend: Backend, path: bytes, changes: AttrChanges,
                     missing_ok: bool = False) -> None:
        try:
            await self.s.io(backend.chown, path, -1 if changes.uid is None else changes.uid,
                            -1 if changes.gid is None else changes.gid)
        except FsError as exc:
            if not (missing_ok and exc.code == errno.ENOENT):  # (not uploaded yet)
                raise

    def kernel_keeps(self, node: Node) -> float | None:
        """A source's root is named in /sources (changed by commands only); the rest
        for as long as their folder's listing stays trusted."""
        if node.remote_path == b"":
            return self.s.config.dir_ttl
        return self.listings.kernel_may_keep(node.parent, node.source_id)

    def kernel_keeps_absent(self, folder: Node) -> float | None:
        return self.listings.kernel_may_keep(folder.id, folder.source_id)

    def getxattr(self, node: Node, name: bytes) -> bytes:
        return self.xattrs.get(node, self.listings.backend(node), name)

    def listxattr(self, node: Node) -> list[bytes]:
        return self.xattrs.names(node, self.listings.backend(node))

    def setxattr(self, node: Node, name: bytes, value: bytes) -> None:
        self.xattrs.set(node, self._writable(node), name, value)

    def removexattr(self, node: Node, name: bytes) -> None:
        self.xattrs.remove(node, self._writable(node), name)


@dataclass(frozen=True)
class _Move:
    """One rename: a name and its source path, before and after."""

    old_parent: int
    old_name: bytes
    old_path: bytes
    new_parent: int
    new_name: bytes
    new_path: bytes


def _move_folders(node: Node, target: Node | None, move: _Move) -> tuple[int, ...]:
    """The folders a rename locks (`Catalog.transaction`): both parents and those of the
    files' own names (a hard link's may be elsewhere) — but a folder moved or replaced
    takes the paths below it along, and holds the whole catalog (none named)."""
    if node.is_dir or (target is not None and target.is_dir):
        return ()
    named = (node.parent,) if target is None else (node.parent, target.parent)
    return (move.old_parent, move.new_parent, *named)


def _exchange(txn: Txn, move: _Move) -> None:
    """Swap two names in the catalog (RENAME_EXCHANGE), via a name no file can have."""
    parking = b"\0exchange"
    nodes.move_name(txn, move.old_parent, move.old_name, move.old_parent, parking,
                    move.old_path + b"\0")
    nodes.move_name(txn, move.new_parent, move.new_name, move.old_parent, move.old_name,
                    move.old_path)
    nodes.move_name(txn, move.old_parent, parking, move.new_parent, move.new_name,
                    move.new_path)

