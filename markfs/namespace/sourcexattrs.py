"""Extended attributes (`user.*`) of source files and folders.

A local source keeps them on the disk, as the disk would: setting one moves the
file's ctime there, and other tools see them. Where the disk has none (a filesystem
without user xattrs answers ENOTSUP), and on S3 and SFTP, which keep none, they
live in the catalog's `xattrs` table. Attributes a local file got in the catalog
before markfs kept them on the disk are still read, listed and removable.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from typing import TypeVar

from markfs.backends.base import Backend, DirectFiles
from markfs.catalog import xattrs
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.listing import update_attrs
from markfs.namespace.provider import Services

USER_PREFIX = b"user."
T = TypeVar("T")


class NoUserXattrs(Exception):
    """The disk keeps no user xattrs (ENOTSUP): the catalog keeps them instead."""


def _on_disk(call: Callable[[], T]) -> T:
    """`call`'s answer, or its errno as an FsError. (Local xattr calls take
    microseconds: made on the loop, as a stat is.)"""
    try:
        return call()
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise NoUserXattrs from None
        raise FsError(exc.errno or errno.EIO) from None


class SourceXattrs:
    def __init__(self, services: Services) -> None:
        self.s = services

    def get(self, node: Node, backend: Backend, name: bytes) -> bytes:
        path = node.remote_path
        if isinstance(backend, DirectFiles) and path is not None:
            try:
                return _on_disk(lambda: backend.getxattr(path, name))
            except NoUserXattrs:
                pass
            except FsError as exc:
                if exc.code != errno.ENODATA:
                    raise
        value = xattrs.get_xattr(self.s.tree.catalog.conn, node.id, name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def names(self, node: Node, backend: Backend) -> list[bytes]:
        found = set(xattrs.list_xattrs(self.s.tree.catalog.conn, node.id))
        path = node.remote_path
        if isinstance(backend, DirectFiles) and path is not None:
            with contextlib.suppress(NoUserXattrs):
                found.update(n for n in _on_disk(lambda: backend.listxattr(path))
                             if n.startswith(USER_PREFIX))
        return sorted(found)

    def set(self, node: Node, backend: Backend, name: bytes, value: bytes) -> None:
        if not name.startswith(USER_PREFIX):
            raise FsError(errno.ENOTSUP)
        path = node.remote_path
        if isinstance(backend, DirectFiles) and path is not None:
            try:
                _on_disk(lambda: backend.setxattr(path, name, value))
            except NoUserXattrs:
                pass
            else:
                self._catalog_remove(node, name)  # (an older copy kept there)
                self._changed(node, backend)
                return
        with self.s.tree.transaction() as txn:
            xattrs.set_xattr(txn, node.id, name, value)

    def remove(self, node: Node, backend: Backend, name: bytes) -> None:
        removed = self._catalog_remove(node, name)
        path = node.remote_path
        if isinstance(backend, DirectFiles) and path is not None:
            try:
                _on_disk(lambda: backend.removexattr(path, name))
                removed = True
            except NoUserXattrs:
                pass
            except FsError as exc:
                if exc.code != errno.ENODATA:
                    raise
            if removed:
                self._changed(node, backend)
        if not removed:
            raise FsError(errno.ENODATA)

    def _catalog_remove(self, node: Node, name: bytes) -> bool:
        if xattrs.get_xattr(self.s.tree.catalog.conn, node.id, name) is None:
            return False
        with self.s.tree.transaction() as txn:
            return xattrs.remove_xattr(txn, node.id, name)

    def _changed(self, node: Node, backend: Backend) -> None:
        """The disk moved the file's ctime: show it now."""
        try:
            entry = backend.stat(node.remote_path or b"")
        except OSError:
            return
        update_attrs(self.s.tree, node, entry)
