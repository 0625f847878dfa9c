"""How a source's files are read and written: the store strategy of `SourceFiles`.

- `InPlaceStore` (local folders, `DirectFiles` backends): every read, write,
  truncate, delete and rename happens on the file where it lives.
- `StagedStore` (S3, SFTP): reads come through the content cache, writes go to a
  staged copy uploaded after close (`remote.RemoteFiles`); deletes and renames
  first pause any upload of what they touch, so no upload lands at a path they
  changed, and a copy-then-delete rename is journaled so a crash cannot leave a
  folder half at each name.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from markfs.backends.base import (
    KEPT_ALL,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Backend,
    keeps_metadata,
    serves_in_place,
)
from markfs.catalog import nodes
from markfs.catalog.journals import renames as rename_journal
from markfs.errors import FsError
from markfs.model import Kind, Node
from markfs.namespace.files.listings import SourceListings
from markfs.namespace.handles import (
    FileHandle,
    InPlaceHandle,
    RemoteReadHandle,
    StagedHandle,
    close_file,
    is_write_open,
)
from markfs.namespace.listing import child_path, update_attrs
from markfs.namespace.provider import Caller, Services
from markfs.namespace.remote.remotefiles import RemoteFiles


class InPlaceStore:
    def __init__(self, services: Services, listings: SourceListings) -> None:
        self.s, self.listings = services, listings

    async def mknod(self, parent: Node, name: bytes, backend: Backend, mode: int, rdev: int,
                    caller: Caller) -> Node:
        """A FIFO, socket or device node in the folder (under the parent's lock)."""
        assert serves_in_place(backend)
        path = child_path(parent, name)
        await self.s.io(backend.mknod, path, mode, rdev)
        await give_to(self.s, backend, parent, path, caller, mode)
        return await self.listings.record(parent, name, backend)

    def attrs_changed(self, changed: Node, backend: Backend, at: bytes | None = None) -> None:
        """A node's attributes (times, link count) as the disk has them right after a
        change in or of it (a folder's entries; a rename moves the renamed one's
        ctime): one stat, short enough for the loop; `at`: its path where the mirror
        does not have it yet (a rename, in its own transaction). Marked changed, so a
        refresh that read the node earlier (a watcher's, under the lock of its parent,
        not its own) leaves what this stores alone."""
        current = self.s.tree.node(changed.id)
        if current is None:
            return
        path = at if at is not None else current.remote_path
        if path is None:
            return
        self.s.marks.mark(current.id)
        try:
            entry = backend.stat(path)
        except OSError:
            return  # gone meanwhile: the next listing says so
        update_attrs(self.s.tree, current, entry)

    async def open(self, node: Node, backend: Backend, flags: int) -> FileHandle:
        assert serves_in_place(backend) and node.remote_path is not None
        file = await self.s.io(backend.open, node.remote_path, flags, release=close_file)
        return InPlaceHandle(node, file, self.s.io, is_write_open(flags), self.listings.restat_id)

    async def create(self, parent: Node, name: bytes, backend: Backend, mode: int,
                     flags: int, caller: Caller) -> FileHandle:
        """Under the parent's lock; the new name and the parent's new times in one
        transaction."""
        assert serves_in_place(backend)
        path = child_path(parent, name)
        file = await self.s.io(backend.create, path, mode, flags, bool(flags & os.O_EXCL),
                               release=close_file)
        await give_to(self.s, backend, parent, path, caller, mode)
        node = await self.listings.record(parent, name, backend,
                                          also=lambda: self.attrs_changed(parent, backend))
        return InPlaceHandle(node, file, self.s.io, True, self.listings.restat_id)

    async def truncate(self, node: Node, backend: Backend, size: int,
                       handle: FileHandle | None) -> None:
        if handle is not None and isinstance(handle, InPlaceHandle) and handle.writable:
            await handle.truncate(size)
        else:
            assert node.remote_path is not None
            await self.s.io(backend.truncate, node.remote_path, size)

    async def remove(self, node: Node, backend: Backend, path: bytes) -> None:
        await self.s.io(backend.rmdir if node.is_dir else backend.unlink, path)

    async def rename(self, node: Node, target: Node | None, backend: Backend,
                     paths: tuple[bytes, bytes], flags: int,
                     then: Callable[[], Awaitable[None]]) -> None:
        """Rename on the source, then `then()` records it in the catalog."""
        with self.listings.renames.renaming():
            await self.s.io(backend.rename, paths[0], paths[1], flags)
            await then()


class StagedStore:
    def __init__(self, services: Services, listings: SourceListings,
                 remote: RemoteFiles) -> None:
        self.s, self.listings, self.remote = services, listings, remote

    async def mknod(self, parent: Node, name: bytes, backend: Backend, mode: int, rdev: int,
                    caller: Caller) -> Node:
        raise FsError(errno.EPERM, "FIFOs, sockets and devices exist on local sources only")

    def attrs_changed(self, folder: Node, backend: Backend, at: bytes | None = None) -> None:
        """A folder changed through the mount: on a storage that keeps folder times (SFTP)
        its mtime and ctime are now, as a disk would have them, without a round trip
        (the server's own come with the next listing) — so a tool that set the folder's
        times before filling it (rsync, cp -a) sees them moved and sets them again at
        its end. S3 folders have no times (nor files: `at` is not needed here)."""
        if not backend.scheme.keeps_modes:
            return
        current = self.s.tree.node(folder.id)
        if current is None or not current.is_dir:
            return
        self.s.marks.mark(current.id)
        now = time.time_ns()
        with self.s.tree.transaction((current.id,)) as txn:
            nodes.update_node(txn, current.id, mtime_ns=now, ctime_ns=now)

    async def open(self, node: Node, backend: Backend, flags: int) -> FileHandle:
        """(On a shared catalog the file's row is read anew first — close-to-open: what
        another host closed since this host's caches had it is what this open reads,
        the kernel's size and pages of it forgotten, and bypassed until then.)"""
        fresh = await self.s.catalog.read(self.s.tree.revalidated, node)
        if fresh is not None:
            self.s.kernel.forget_inode(node.id)
            node = fresh
        handle: FileHandle
        if not is_write_open(flags):
            handle = RemoteReadHandle(node, self.remote, self.s.tree)
        else:
            staged = await self.remote.open_writer(node, bool(flags & os.O_TRUNC))
            handle = StagedHandle(node, staged, self.remote, self.s.tree)
        handle.direct_io = handle.direct_io or fresh is not None
        return handle

    async def create(self, parent: Node, name: bytes, backend: Backend, mode: int,
                     flags: int, caller: Caller) -> FileHandle:
        """A new file: in the catalog and staged now, uploaded at close (under the
        parent's lock)."""
        if self.s.tree.child(parent.id, name) is not None:
            raise FsError(errno.EEXIST)
        try:
            backend.check_path(child_path(parent, name))
        except OSError as exc:
            raise FsError(exc.errno or errno.EINVAL) from None
        now = time.time_ns()
        new = nodes.NewNode(Kind.SOURCE, stat.S_IFREG | stat.S_IMODE(mode), caller.uid,
                            caller.gid, 0, now, now, source_id=parent.source_id,
                            remote_path=child_path(parent, name),
                            # (S3: the upload keeps mode and owner as the object's metadata)
                            meta_kept=KEPT_ALL if keeps_metadata(backend) else None)
        node_id = await self.s.catalog(self._record_new, parent, name, new, backend)
        node = self.s.tree.node(node_id)
        assert node is not None
        self.s.marks.mark(node_id)
        staged = await self.remote.open_writer(node, truncate=True)
        self.remote.staged.made_here(staged)
        handle = StagedHandle(node, staged, self.remote, self.s.tree)
        handle.truncated(0)  # (a new file: its empty content is to be uploaded)
        return handle

    def _record_new(self, parent: Node, name: bytes, new: nodes.NewNode,
                    backend: Backend) -> int:
        with self.s.tree.transaction((parent.id,)) as txn:
            node_id = nodes.insert_node(txn, parent.id, name, new,
                                        generation=self.s.tree.generation)
            self.attrs_changed(parent, backend)  # (joins this transaction)
        return node_id

    async def truncate(self, node: Node, backend: Backend, size: int,
                       handle: FileHandle | None) -> None:
        """In the staged copy (this handle's, or one made for it), uploaded afterwards."""
        if isinstance(handle, StagedHandle):
            await handle.truncate(size)
            handle.truncated(size)
            return
        writer = StagedHandle(node, await self.remote.open_writer(node, truncate=size == 0),
                              self.remote, self.s.tree)
        try:
            await writer.truncate(size)
            await writer.settle()
        finally:
            await writer.close()

    async def remove(self, node: Node, backend: Backend, path: bytes) -> None:
        """Delete on the server, after any upload of it (which would bring it back)."""
        if node.is_dir:
            if self.remote.staged.below(node.id):
                raise FsError(errno.ENOTEMPTY)
            await self.s.io(backend.rmdir, path)
            return
        staged = self.remote.staged.has(node.id)
        async with self.remote.uploader.uploads_paused(node.id):
            never_sent = self.remote.staged.never_sent(node.id)
            self.remote.discard(node.id)
            if never_sent:
                return  # (nothing of it on the server: a temporary file's usual end)
            try:
                await self.s.io(backend.unlink, path)
            except FsError as exc:
                if not (staged and exc.code == errno.ENOENT):  # never uploaded: nothing there
                    raise

    async def rename(self, node: Node, target: Node | None, backend: Backend,
                     paths: tuple[bytes, bytes], flags: int,
                     then: Callable[[], Awaitable[None]]) -> None:
        """Rename on the server, then `then()` records it in the catalog; no upload may
        land at either name until both are done."""
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "this source cannot exchange names")
        if flags & RENAME_NOREPLACE and target is not None:
            raise FsError(errno.EEXIST)
        async with AsyncExitStack() as paused:
            await paused.enter_async_context(
                self.remote.uploader.uploads_paused(None if node.is_dir else node.id))
            if target is not None and not target.is_dir:
                await paused.enter_async_context(self.remote.uploader.uploads_paused(target.id))
            if target is not None and target.id != node.id:
                await self._check_replaceable(node, target)  # (lists: before `renaming`)
            with self.listings.renames.renaming():
                await self._rename_paused(node, target, backend, paths)
                await then()

    async def _rename_paused(self, node: Node, target: Node | None, backend: Backend,
                             paths: tuple[bytes, bytes]) -> None:
        if target is not None and target.is_dir and self.remote.staged.below(target.id):
            raise FsError(errno.ENOTEMPTY)
        if target is not None and not target.is_dir:
            self.remote.discard(target.id)
        if not node.is_dir and self.remote.staged.never_sent(node.id):
            return  # nothing of it on the server yet: its upload goes to the new name
        journal = None
        if not backend.scheme.atomic_rename and node.source_id is not None:
            journal = await self.s.catalog(self._journal_rename, node.source_id, paths)
        try:
            await self.s.io(backend.rename, paths[0], paths[1], 0,
                            timeout=self.s.config.list_timeout)
        except FsError as exc:
            if not (exc.code == errno.ENOENT and self.remote.staged.has(node.id)):
                raise  # (a file not uploaded yet has nothing to move on the server)
        if journal is not None:
            await self.s.catalog(self._rename_done, journal)

    def _journal_rename(self, source_id: int, paths: tuple[bytes, bytes]) -> int:
        with self.s.tree.transaction() as txn:
            return rename_journal.begin(txn, source_id, *paths)

    def _rename_done(self, journal: int) -> None:
        with self.s.tree.transaction() as txn:
            rename_journal.finish(txn, journal)


    async def _check_replaceable(self, node: Node, target: Node) -> None:
        """What rename(2) checks of the name it replaces: S3's rename is a copy (it would
        merge a folder into another, or put a file beside a folder), SFTP's answers
        only "failure" or "no such file" for these."""
        if node.is_dir and not target.is_dir:
            raise FsError(errno.ENOTDIR)
        if not node.is_dir and target.is_dir:
            raise FsError(errno.EISDIR)
        if target.is_dir:
            await self.listings.ensure_listed(target)
            if await self.s.catalog(self.s.tree.children, target.id, 0, 1):
                raise FsError(errno.ENOTEMPTY)


async def give_to(s: Services, backend: Backend, parent: Node, path: bytes,
                  caller: Caller, mode: int = 0) -> None:
    """Give a new entry to the caller, as a local filesystem would (only root can).
    A new file's setuid and setgid bits in `mode` are set again after the chown, which
    clears them (the kernel has already dropped those the caller may not have)."""
    if os.geteuid() != 0:
        return
    gid = parent.gid if parent.mode & stat.S_ISGID else caller.gid
    if (caller.uid, gid) != (os.geteuid(), os.getegid()):
        await s.io(backend.chown, path, caller.uid, gid)
        if mode & (stat.S_ISUID | stat.S_ISGID):
            await s.io(backend.chmod, path, mode)
