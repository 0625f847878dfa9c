"""Open files of the mount: one handle type per way of reading and writing, chosen at open.

`FileHandle` holds the defaults every open file shares (as rclone's vfs
`baseHandle` does): not readable, not writable, nothing to flush or close. Each
subclass overrides what its kind of file can do:

- `GeneratedHandle`: bytes rendered at open (control files), served from memory.
- `SnapshotHandle`: a managed table's snapshot blob, held open so a refresh that
  swaps in a new snapshot leaves this reader on the old bytes.
- `InPlaceHandle`: a file of a local source, read and written where it lives.
- `RemoteReadHandle`: an S3/SFTP file opened read-only, served by the content cache.
- `StagedHandle`: an S3/SFTP file opened for writing: a staged local copy, journaled
  for upload at every flush.

While a file is open for writing, its size as written so far overrides the
catalog's, so getattr is right before the catalog hears of the change.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from collections.abc import Awaitable, Callable

from markfs.backends.base import OpenFile
from markfs.backends.local import SMALL_WRITE
from markfs.catalog import nodes
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.remote.digests import ReadDigest
from markfs.namespace.remote.remotefiles import RemoteFiles
from markfs.namespace.remote.staged import Staged
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner


class FileHandle:
    """An open file with nothing it can do: the defaults the handle types override."""

    direct_io = False  # True: reads bypass the kernel's page cache (content may change)

    def __init__(self, node: Node, writable: bool = False) -> None:
        self.node_id = node.id
        self.node = node  # attributes at open, served if the node is unlinked meanwhile
        self.writable = writable
        # any write or truncate through this handle since its last flush, and the size as
        # it last knew it (for writers): set by the handle's own `wrote`/`truncated` only
        self.written = False
        self.size = node.size

    async def read(self, offset: int, size: int) -> bytes:
        raise FsError(errno.EBADF)

    async def write(self, offset: int, data: bytes) -> int:
        raise FsError(errno.EBADF)

    async def truncate(self, size: int) -> None:
        raise FsError(errno.EBADF)

    async def fsync(self, datasync: bool) -> None:
        """Nothing buffered here."""

    def wrote(self, offset: int, count: int) -> None:
        """`count` bytes were written at `offset` through this handle."""
        self.size = max(self.size, offset + count)
        self.written = True

    def truncated(self, size: int) -> None:
        """The file was cut (or grown) to `size`, through this handle or another."""
        self.size, self.written = size, True

    def last_upload(self) -> int | None:
        """The upload journal row of this handle's last flush (remote files), if any."""
        return None

    async def settle(self) -> None:
        """Make what was written the file's content (called when `written` is set)."""
        self.written = False

    async def close(self) -> None:
        """Nothing held."""


class GeneratedHandle(FileHandle):
    direct_io = True  # rendered anew at each open: the page cache must not keep old bytes

    def __init__(self, node: Node, data: bytes) -> None:
        super().__init__(node)
        self.data = data

    async def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


class SnapshotHandle(FileHandle):
    def __init__(self, node: Node, file: OpenFile, io: IoRunner) -> None:
        super().__init__(node)
        self.file, self._io = file, io

    async def read(self, offset: int, size: int) -> bytes:
        return await self._io(self.file.read, offset, size)

    async def close(self) -> None:
        await self._io(self.file.close)


class InPlaceHandle(SnapshotHandle):
    """`restat` re-reads a node from its source after a change (the source is the truth);
    None when the node is gone."""

    def __init__(self, node: Node, file: OpenFile, io: IoRunner, writable: bool,
                 restat: Callable[[int], Awaitable[Node | None]]) -> None:
        super().__init__(node, file, io)
        self.writable = writable
        self._restat = restat
        # a local file's writes of up to SMALL_WRITE run without a thread hop
        self._write_small = getattr(file, "write_small", file.write)

    async def write(self, offset: int, data: bytes) -> int:
        small = len(data) <= SMALL_WRITE
        return await self._io(self._write_small if small else self.file.write, offset, data)

    async def truncate(self, size: int) -> None:
        await self._io(self.file.truncate, size)

    async def fsync(self, datasync: bool) -> None:
        await self._io(self.file.fsync, datasync)

    async def settle(self) -> None:
        self.written = False
        try:
            node = await self._restat(self.node_id)
        except FsError as exc:
            if exc.code != errno.ENOENT:  # unlinked meanwhile: nothing to record
                raise
            return
        if node is not None:
            self.size = node.size


class RemoteReadHandle(FileHandle):
    """Keeps its node between reads; looks again only after the tree changed in this
    process (an upload, a listing, a restat), not at every read."""

    def __init__(self, node: Node, remote: RemoteFiles, tree: Tree) -> None:
        super().__init__(node)
        self._remote, self._tree = remote, tree
        self._seen = tree.hot.applied
        self._opened = node
        self._digest = ReadDigest()  # recorded at close if the file was read whole

    async def read(self, offset: int, size: int) -> bytes:
        if self._tree.hot.applied != self._seen:
            self._seen = self._tree.hot.applied
            self.node = self._tree.node(self.node_id) or self.node
        if self._remote.staged.has(self.node_id):
            self._digest.stop()  # these bytes are not yet the source's: no identity has them
        data = await self._remote.read(self.node, offset, size)
        self._digest.feed(offset, data)
        return data

    async def close(self) -> None:
        digest = self._digest.hexdigest(self._opened.size)
        if digest is not None and self._opened.size > 0:
            await self._remote.catalog(self._tree.record_read_digest, self._opened, digest)


class StagedHandle(FileHandle):
    def __init__(self, node: Node, staged: Staged, remote: RemoteFiles, tree: Tree) -> None:
        super().__init__(node, writable=True)
        self.staged, self._remote, self._tree = staged, remote, tree
        self.size = staged.size
        self.journal_id: int | None = None  # upload journal row of the last flush, if any

    async def read(self, offset: int, size: int) -> bytes:
        return await self._remote.staged.read(self.staged, offset, size)

    async def write(self, offset: int, data: bytes) -> int:
        return await self._remote.staged.write(self.staged, offset, data)

    async def truncate(self, size: int) -> None:
        await self._remote.staged.truncate(self.staged, size)

    async def settle(self) -> None:
        """The staged copy is the file's content now: catalog attributes, and an upload."""
        self.written = False
        node = self._tree.node(self.node_id)
        if node is None:
            return  # unlinked while open
        size, now = self.staged.size, time.time_ns()
        times = self.staged.times  # set since the last write (cp -a: futimens, then close)
        mtime = times[1] if times is not None and times[1] is not None else now
        uploader, settled = self._remote.uploader, node.with_(size=size)
        self.journal_id = await self._remote.catalog(self._record_settled, settled, mtime, now)
        uploader.journaled(settled, self.staged, self.journal_id)
        self.size = size

    def _record_settled(self, node: Node, mtime: int, now: int) -> int:
        """The new size and times, and the upload of this content, in one transaction."""
        with self._tree.transaction() as txn:
            nodes.update_node(txn, node.id, size=node.size, mtime_ns=mtime, ctime_ns=now)
            return self._remote.uploader.enqueue(node, self.staged)

    def last_upload(self) -> int | None:
        return self.journal_id

    async def close(self) -> None:
        self._remote.staged.release_writer(self.node_id, self.staged)


class HandleTable:
    """File handle number -> handle, indexed by node too (getattr asks on every call)."""

    def __init__(self) -> None:
        self._handles: dict[int, FileHandle] = {}
        self._by_node: dict[int, list[FileHandle]] = {}
        self._numbers = itertools.count(1)

    def add(self, handle: FileHandle) -> int:
        fh = next(self._numbers)
        self._handles[fh] = handle
        self._by_node.setdefault(handle.node_id, []).append(handle)
        return fh

    def get(self, fh: int) -> FileHandle:
        try:
            return self._handles[fh]
        except KeyError:
            raise FsError(errno.EBADF) from None

    def pop(self, fh: int) -> FileHandle:
        handle = self.get(fh)
        del self._handles[fh]
        same_node = self._by_node[handle.node_id]
        same_node.remove(handle)
        if not same_node:
            del self._by_node[handle.node_id]
        return handle

    def for_node(self, node_id: int) -> list[FileHandle]:
        return self._by_node.get(node_id, [])

    def writers(self, node_id: int) -> list[FileHandle]:
        return [h for h in self.for_node(node_id) if h.writable]

    def is_open(self, node_id: int) -> bool:
        return node_id in self._by_node

    def written_size(self, node_id: int) -> int | None:
        """The size writers have produced, if any handle wrote to the node."""
        sizes = [h.size for h in self.for_node(node_id) if h.writable and h.written]
        return max(sizes) if sizes else None

    def set_size(self, node_id: int, size: int) -> None:
        for h in self.writers(node_id):
            h.truncated(size)

    def __len__(self) -> int:
        return len(self._handles)


def close_file(file: OpenFile) -> None:
    """Releases a file the worker pool opened for a request that was abandoned."""
    file.close()


def is_write_open(flags: int) -> bool:
    return (flags & os.O_ACCMODE) != os.O_RDONLY or bool(flags & os.O_TRUNC)
