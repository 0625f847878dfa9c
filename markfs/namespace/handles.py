"""Open files of the mount: what each FUSE file handle refers to.

A handle is either a backend file (reads and writes go to the source) or a
snapshot of a generated file (control files: the bytes rendered at open). While
a file is open for writing, its size as written so far overrides the catalog's,
so getattr is right before the catalog hears of the change at release.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from markfs.backends.base import OpenFile
from markfs.errors import FsError
from markfs.model import Node


@dataclass
class Handle:
    node_id: int
    file: OpenFile | None = None  # backend file
    snapshot: bytes | None = None  # generated content
    writable: bool = False
    written: bool = False  # any write or truncate through this handle
    size: int = 0  # size as this handle last knew it (for writers)
    node: Node | None = None  # attributes at open, served if the node is unlinked meanwhile


class HandleTable:
    """File handle number -> Handle, plus which nodes have writers."""

    def __init__(self) -> None:
        self._handles: dict[int, Handle] = {}
        self._numbers = itertools.count(1)

    def add(self, handle: Handle) -> int:
        fh = next(self._numbers)
        self._handles[fh] = handle
        return fh

    def get(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise FsError(9) from None  # EBADF

    def pop(self, fh: int) -> Handle:
        return self._handles.pop(fh)

    def writers(self, node_id: int) -> list[Handle]:
        return [h for h in self._handles.values() if h.node_id == node_id and h.writable]

    def is_open(self, node_id: int) -> bool:
        return any(h.node_id == node_id for h in self._handles.values())

    def for_node(self, node_id: int) -> list[Handle]:
        return [h for h in self._handles.values() if h.node_id == node_id]

    def written_size(self, node_id: int) -> int | None:
        """The size writers have produced, if any handle wrote to the node."""
        sizes = [h.size for h in self.writers(node_id) if h.written]
        return max(sizes) if sizes else None

    def set_size(self, node_id: int, size: int) -> None:
        for h in self.writers(node_id):
            h.size = size
            h.written = True

    def __len__(self) -> int:
        return len(self._handles)
