"""The provider of /tables: managed tables' folders and their snapshot files, read-only.

A snapshot file's handle holds its blob open, so a refresh that swaps in a new
snapshot (and deletes this blob) leaves an open reader on the old bytes. What a
file says of itself (source, table, snapshot time, rows, hash, staleness) comes
as `user.markfs.*` xattrs.
"""

from __future__ import annotations

import errno
import time

from markfs.cache.snapshots import SnapshotStore
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.handles import FileHandle, SnapshotHandle, close_file, is_write_open
from markfs.namespace.provider import CatalogFolders, Services


class TableFiles(CatalogFolders):
    def __init__(self, services: Services, snapshots: SnapshotStore) -> None:
        super().__init__(services)
        self.snapshots = snapshots

    async def open(self, node: Node, flags: int) -> FileHandle:
        if is_write_open(flags):
            raise FsError(errno.EROFS)
        for _attempt in range(2):
            if node.etag is None:
                raise FsError(errno.EIO, "table file without a snapshot")
            try:
                file = await self.s.io(self.snapshots.open, node.etag.decode(),
                                       release=close_file)
            except FsError as exc:
                if exc.code != errno.ENOENT:
                    raise
                current = self.s.tree.node(node.id)  # swapped meanwhile?
                if current is None:
                    raise FsError(errno.ENOENT) from None
                node = current
                continue
            return SnapshotHandle(node, file, self.s.io)
        raise FsError(errno.EIO, "snapshot blob missing (run: markfs refresh)")

    def getxattr(self, node: Node, name: bytes) -> bytes:
        value = self._described(node).get(name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def listxattr(self, node: Node) -> list[bytes]:
        return sorted(self._described(node))

    def _described(self, node: Node) -> dict[bytes, bytes]:
        """What a snapshot file says about itself (table folders say nothing)."""
        f = self.s.tree.catalog.managed.file_by_node(node.id)
        if f is None:
            return {}
        taken = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.rendered_ns / 1e9))
        return {b"user.markfs.source": f.source.encode(),
                b"user.markfs.table": f"{f.source}/{f.schema}/{f.table}".encode(),
                b"user.markfs.snapshot_time": taken.encode(),
                b"user.markfs.rows": str(f.rows).encode(),
                b"user.markfs.hash": f"xxh3-128:{f.digest}".encode(),
                b"user.markfs.stale": b"1" if f.stale else b"0"}
