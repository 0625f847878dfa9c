"""Folders that gather members from elsewhere: the base of views, tags and categories.

A gathered folder's entries are computed (from the catalog, and for views from
listings made on demand): its own sub-folders (catalog nodes of its kind, so
their inodes are stable) and its members, each shown as the member's own node —
the same inode as under /sources or /tables, so reads, writes and attributes are
the source's. Computed entries are kept for `entry_ttl` for lookups; a listing
from the start computes them again.

Invariant (gathering never deletes data): removing an entry of a gathered folder
only takes the member out of it (unpin, untag, unassign), never deletes a file.
"""

from __future__ import annotations

import errno
import logging

import trio

from markfs.bounded import RecentMap
from markfs.catalog.curation import categories, tags
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.curation.membership import Candidate, assign_names
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.provider import Listing, Provider, Services
from markfs.namespace.tree import EVERYTHING

log = logging.getLogger(__name__)
GATHERED_KEPT = 256  # gathered folders whose computed entries are kept (for entry_ttl)


class GatheredFolders(Provider):
    """Computed entries, cached per folder; subclasses say what a folder holds."""

    def __init__(self, services: Services, sources: SourceSet) -> None:
        super().__init__(services)
        self.sources = sources
        # folder id -> (when, its entries), for `entry_ttl`; the most recent folders only
        self._computed: RecentMap[int, tuple[float, list[tuple[bytes, Node]]]] = RecentMap(
            GATHERED_KEPT)

    async def compute(self, folder: Node) -> dict[bytes, Node]:
        raise NotImplementedError

    async def entries(self, folder: Node, fresh: bool = False) -> list[tuple[bytes, Node]]:
        cached = self._computed.get(folder.id)
        now = trio.current_time()
        if not fresh and cached is not None and now - cached[0] < self.s.config.entry_ttl:
            return cached[1]
        entries = sorted((await self.compute(folder)).items())
        self._computed[folder.id] = (now, entries)
        return entries

    def forget(self, folder_id: int) -> None:
        self._computed.pop(folder_id, None)

    def forget_all(self) -> None:
        """Members may have changed anywhere (a command changed views, tags or
        categories)."""
        self._computed.clear()

    async def lookup(self, parent: Node, name: bytes) -> Node | None:
        for entry_name, node in await self.entries(parent):
            if entry_name == name:
                return node
        return None

    async def list_folder(self, directory: Node, after: int, limit: int) -> Listing:
        entries = await self.entries(directory, fresh=after == 0)
        return [(cookie, name, node) for cookie, (name, node)
                in enumerate(entries[after : after + limit], start=after + 1)]

    async def rename(self, old_parent: Node, old_name: bytes, new_parent: Node,
                     new_name: bytes, flags: int) -> None:
        raise FsError(errno.EROFS, "entries of gathered folders are not moved")

    def candidates(self, node_ids: list[int]) -> list[Candidate]:
        """Members by node id, under their own names (ids no longer in the tree skipped)."""
        out = []
        for node_id in node_ids:
            node = self.s.tree.node(node_id)
            if node is not None:
                out.append(Candidate(node.name, node, self._source_name(node),
                                     node.remote_path or b""))
        return out

    def _source_name(self, node: Node) -> str:
        row = self.sources.row(node.source_id) if node.source_id is not None else None
        return row.name if row is not None else "markfs"

    async def _member(self, parent: Node, name: bytes) -> Node:
        node = await self.lookup(parent, name)
        if node is None:
            raise FsError(errno.ENOENT)
        return node


class TagFolders(GatheredFolders):
    """/tags/TAG: every node with the tag, flat. Removing an entry removes the tag.
    (The catalog's reads and writes through its runner: off the loop on a server's.)"""

    async def compute(self, folder: Node) -> dict[bytes, Node]:
        return await self.s.catalog.read(self._tagged, folder)

    def _tagged(self, folder: Node) -> dict[bytes, Node]:
        tag = self.s.tree.catalog.tags.tag_of_folder(folder.id)
        if tag is None:
            return {}
        return assign_names(self.candidates(self.s.tree.catalog.tags.nodes_tagged(tag)),
                            set())

    async def remove(self, parent: Node, name: bytes, want_dir: bool) -> None:
        node = await self._member(parent, name)
        await self.s.catalog(self._untag, parent, node, want_dir)
        self.forget(parent.id)

    def _untag(self, parent: Node, node: Node, want_dir: bool) -> None:
        tag = self.s.tree.catalog.tags.tag_of_folder(parent.id)
        if tag is None or node.is_dir != want_dir:
            raise FsError(errno.ENOTDIR if want_dir else errno.EISDIR)
        with self.s.tree.transaction() as txn:
            tags.remove_tag(txn, node.id, tag)
        log.info("tag %r taken off node %d (nothing deleted)", tag, node.id)


class CategoryFolders(GatheredFolders):
    """/categories/PATH: sub-categories, then the files assigned to the category.
    (The catalog's reads and writes through its runner: off the loop on a server's.)"""

    async def compute(self, folder: Node) -> dict[bytes, Node]:
        return await self.s.catalog.read(self._assigned, folder)

    def _assigned(self, folder: Node) -> dict[bytes, Node]:
        catalog = self.s.tree.catalog
        category = catalog.categories.by_folder(folder.id)
        if category is None:
            return {}
        subfolders = {name: node for _c, name, node
                      in self.s.tree.children(folder.id, 0, EVERYTHING)}
        members = assign_names(self.candidates(catalog.categories.members(category.id)),
                               set(subfolders))
        return {**subfolders, **members}

    async def remove(self, parent: Node, name: bytes, want_dir: bool) -> None:
        node = await self._member(parent, name)
        await self.s.catalog(self._unassign, parent, node, want_dir)
        self.forget(parent.id)

    def _unassign(self, parent: Node, node: Node, want_dir: bool) -> None:
        catalog = self.s.tree.catalog
        category = catalog.categories.by_folder(parent.id)
        if category is None or catalog.categories.by_folder(node.id) is not None:
            raise FsError(errno.EPERM, "categories are removed with: markfs category remove")
        if node.is_dir != want_dir:
            raise FsError(errno.ENOTDIR if want_dir else errno.EISDIR)
        with self.s.tree.transaction() as txn:
            categories.unassign(txn, category.id, node.id)
