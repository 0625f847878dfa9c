"""Open files of the mount: what each FUSE file handle refers to.

A handle is either a backend file (reads and writes go to the source) or a
snapshot of a generated file (control files: the bytes rendered at open). While
a file is open for writing, its size as written so far overrides the catalog's,
so getattr is right before the catalog hears of the change at release.
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass

from markfs.backends.base import OpenFile
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.remote import Staged


@dataclass(eq=False)
class Handle:
    node_id: int
    file: OpenFile | None = None  # backend file
    snapshot: bytes | None = None  # generated content
    writable: bool = False
    written: bool = False  # any write or truncate through this handle
    size: int = 0  # size as this handle last knew it (for writers)
    node: Node | None = None  # attributes at open, served if the node is unlinked meanwhile
    staged: Staged | None = None  # a remote writer's staged copy
    journal_id: int | None = None  # the upload journal row of this handle's last flush


class HandleTable:
    """File handle number -> Handle, indexed by node too (getattr asks on every call)."""

    def __init__(self) -> None:
        self._handles: dict[int, Handle] = {}
        self._by_node: dict[int, list[Handle]] = {}
        self._numbers = itertools.count(1)

    def add(self, handle: Handle) -> int:
        fh = next(self._numbers)
        self._handles[fh] = handle
        self._by_node.setdefault(handle.node_id, []).append(handle)
        return fh

    def get(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise FsError(errno.EBADF) from None

    def pop(self, fh: int) -> Handle:
        handle = self.get(fh)
        del self._handles[fh]
        same_node = self._by_node[handle.node_id]
        same_node.remove(handle)
        if not same_node:
            del self._by_node[handle.node_id]
        return handle

    def for_node(self, node_id: int) -> list[Handle]:
        return self._by_node.get(node_id, [])

    def writers(self, node_id: int) -> list[Handle]:
        return [h for h in self.for_node(node_id) if h.writable]

    def is_open(self, node_id: int) -> bool:
        return node_id in self._by_node

    def written_size(self, node_id: int) -> int | None:
        """The size writers have produced, if any handle wrote to the node."""
        sizes = [h.size for h in self.for_node(node_id) if h.writable and h.written]
        return max(sizes) if sizes else None

    def set_size(self, node_id: int, size: int) -> None:
        for h in self.writers(node_id):
            h.size = size
            h.written = True

    def __len__(self) -> int:
        return len(self._handles)
