"""Extended attributes (`user.*`) of source files and folders.

A local source keeps them on the disk, as the disk would: setting one moves the
file's ctime there, and other tools see them. Where the disk has none (a filesystem
without user xattrs answers ENOTSUP), and on S3 and SFTP, which keep none, they
live in the catalog's `xattrs` table. Attributes a local file got in the catalog
before markfs kept them on the disk are still read, listed and removable.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from markfs.backends.base import Backend, DirectFiles, serves_in_place
from markfs.catalog import xattrs
from markfs.errors import FsError
from markfs.model import USER_XATTRS, Node
from markfs.namespace.listing import update_attrs
from markfs.namespace.provider import Services

NOT_THERE = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)  # kept nowhere on the disk
T = TypeVar("T")


class DiskXattrs:
    """The user xattrs of one file on a local disk; every answer None/False where the
    disk keeps none (ENOTSUP), other errors as their errno. (Local xattr calls take
    microseconds: made on the loop, as a stat is.)"""

    def __init__(self, backend: DirectFiles, path: bytes) -> None:
        self.backend, self.path = backend, path

    def get(self, name: bytes) -> bytes | None:
        return self._call(lambda: self.backend.getxattr(self.path, name))

    def names(self) -> list[bytes]:
        found = self._call(lambda: self.backend.listxattr(self.path)) or []
        return [n for n in found if n.startswith(USER_XATTRS)]

    def set(self, name: bytes, value: bytes) -> bool:
        """False: the disk keeps no user xattrs."""
        return self._done(lambda: self.backend.setxattr(self.path, name, value))

    def remove(self, name: bytes) -> bool:
        """False: not there (or the disk keeps none)."""
        return self._done(lambda: self.backend.removexattr(self.path, name))

    @staticmethod
    def _call(call: Callable[[], T]) -> T | None:
        try:
            return call()
        except OSError as exc:
            if exc.errno in NOT_THERE:
                return None
            raise FsError(exc.errno or errno.EIO) from None

    @staticmethod
    def _done(call: Callable[[], None]) -> bool:
        try:
            call()
        except OSError as exc:
            if exc.errno in NOT_THERE:
                return False
            raise FsError(exc.errno or errno.EIO) from None
        return True


def _disk(node: Node, backend: Backend) -> DiskXattrs | None:
    """The disk's xattrs of a local source's file; None for storages that keep none."""
    if serves_in_place(backend) and node.remote_path is not None:
        return DiskXattrs(backend, node.remote_path)
    return None


class SourceXattrs:
    def __init__(self, services: Services) -> None:
        self.s = services

    def get(self, node: Node, backend: Backend, name: bytes) -> bytes:
        disk = _disk(node, backend)
        value = disk.get(name) if disk is not None else None
        if value is None:
            value = self.s.tree.catalog.xattrs.get_xattr(node.id, name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def names(self, node: Node, backend: Backend) -> list[bytes]:
        found = set(self.s.tree.catalog.xattrs.list_xattrs(node.id))
        disk = _disk(node, backend)
        if disk is not None:
            found.update(disk.names())
        return sorted(found)

    def set(self, node: Node, backend: Backend, name: bytes, value: bytes) -> None:
        if not name.startswith(USER_XATTRS):
            raise FsError(errno.ENOTSUP)
        disk = _disk(node, backend)
        if disk is not None and disk.set(name, value):
            self._catalog_remove(node, name)  # (an older copy kept there)
            self._changed(node, backend)
            return
        with self.s.tree.transaction((node.parent, node.id)) as txn:  # (its folder's lock)
            xattrs.set_xattr(txn, node.id, name, value)

    def remove(self, node: Node, backend: Backend, name: bytes) -> None:
        in_catalog = self._catalog_remove(node, name)
        disk = _disk(node, backend)
        on_disk = disk is not None and disk.remove(name)
        if on_disk or (in_catalog and disk is not None):
            self._changed(node, backend)
        if not (on_disk or in_catalog):
            raise FsError(errno.ENODATA)

    def _catalog_remove(self, node: Node, name: bytes) -> bool:
        if self.s.tree.catalog.xattrs.get_xattr(node.id, name) is None:
            return False
        with self.s.tree.transaction((node.parent, node.id)) as txn:
            return xattrs.remove_xattr(txn, node.id, name)

    def _changed(self, node: Node, backend: Backend) -> None:
        """The disk moved the file's ctime: show it now."""
        try:
            entry = backend.stat(node.remote_path or b"")
        except OSError:
            return
        update_attrs(self.s.tree, node, entry)
