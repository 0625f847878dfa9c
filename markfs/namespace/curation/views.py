"""The provider of /views: virtual folders that gather files of several sources.

A view folder at path P (b'' for the view itself) shows, for each rule
`SOURCE:GLOB`, what the source folder FIXED/P holds that the glob selects:
files (and, for a glob not ending in `**`, folders) that match are members;
folders that may hold matches are the view's own sub-folders (kind 'view'
nodes, `remote_path` = P, created when first listed so their inodes stay). Only
the folders a user opens are listed, on demand, as under /sources: a readdir
never walks a whole bucket. Rules over SQL sources gather managed tables'
folders; pins add nodes at the top level.

Changes: creating a file at the top of a view with a landing creates it in the
landing folder (and pins it unless a rule shows it there); without a landing,
EROFS. Removing an entry unpins a pinned member, and is EPERM for a member by
rule: a view never deletes source data. Renames inside views are EROFS.
"""

from __future__ import annotations

import errno
import logging
import stat
import time

from markfs.catalog import nodes
from markfs.catalog.curation import views
from markfs.catalog.sources import SourceRow
from markfs.errors import FsError
from markfs.model import Kind, Node
from markfs.namespace.curation.definitions import table_members
from markfs.namespace.curation.gathered import GatheredFolders
from markfs.namespace.curation.membership import Candidate, Pattern, Place, assign_names
from markfs.namespace.files.provider import SourceFiles
from markfs.namespace.files.sources import SourceSet, is_sql
from markfs.namespace.handles import FileHandle
from markfs.namespace.provider import Caller, Services
from markfs.namespace.tree import EVERYTHING, SOURCES_ID

log = logging.getLogger(__name__)
FOLDER_MODE = stat.S_IFDIR | 0o755


class ViewFolders(GatheredFolders):
    def __init__(self, services: Services, sources: SourceSet, files: SourceFiles) -> None:
        super().__init__(services, sources)
        self.files = files

    def _view(self, folder: Node) -> views.ViewRow:
        """The view a folder belongs to (its own folder is the one right below /views)."""
        for node in self.s.tree.lineage(folder.id):
            if node.kind is not Kind.VIEW:
                break
            view = self.s.tree.catalog.views.view_of_folder(node.id)
            if view is not None:
                return view
        raise FsError(errno.ENOENT, "a view folder without a view")

    async def compute(self, folder: Node) -> dict[bytes, Node]:
        """(The catalog's reads and writes through its runner: off the loop on a
        server's catalog.)"""
        rules, pins = await self.s.catalog.read(self._definition, folder)
        below = tuple(folder.remote_path.split(b"/")) if folder.remote_path else ()
        subfolders: set[bytes] = set()
        candidates: list[Candidate] = []
        for rule in rules:
            row = self.sources.row(rule.source_id)
            if row is None:
                continue
            pattern = Pattern.parse(rule.glob)
            if not is_sql(row):
                await self._gather(row, pattern, below, subfolders, candidates)
            elif not below:  # (tables are members at the view's top only)
                candidates += await self.s.catalog.read(self._tables, row, pattern)
        if not below:
            candidates += self.candidates(pins)
        own = await self.s.catalog(self._subfolders, folder, below, subfolders)
        return {**own, **assign_names(candidates, set(own))}

    def _definition(self, folder: Node) -> tuple[list[views.Rule], list[int]]:
        """The rules of the folder's view, and the files pinned to it."""
        view = self._view(folder)
        catalog = self.s.tree.catalog
        return catalog.views.rules_of(view.id), catalog.views.pins_of(view.id)

    async def _gather(self, row: SourceRow, pattern: Pattern, below: tuple[bytes, ...],
                      subfolders: set[bytes], candidates: list[Candidate]) -> None:
        """What one rule contributes to the view folder at `below`."""
        if below and not pattern.may_hold(below):
            return
        folder = await self.source_folder(row, pattern.fixed + below)
        if folder is None:
            return
        for _cookie, name, child in await self.files.list_folder(folder, 0, EVERYTHING):
            place = pattern.place((*below, name), child.is_dir)
            if place is Place.FOLDER:
                subfolders.add(name)
            elif place is Place.MEMBER:
                candidates.append(Candidate(name, child, row.name, child.remote_path or b""))

    async def source_folder(self, row: SourceRow, parts: tuple[bytes, ...]) -> Node | None:
        """A folder of a file source, looked up (and listed) on demand; None if absent."""
        known = await self.s.catalog.read(self.s.tree.node_at, row.id, b"/".join(parts))
        if known is not None:
            return known if known.is_dir else None
        node = self.s.tree.child(SOURCES_ID, row.name.encode())
        for part in parts:
            if node is None or not node.is_dir:
                return None
            node = await self.files.lookup(node, part)
        return node if node is not None and node.is_dir else None

    def _tables(self, row: SourceRow, pattern: Pattern) -> list[Candidate]:
        return [Candidate(node.name, node, row.name, path)
                for path, node in table_members(self.s.tree, row, pattern)]

    def _subfolders(self, folder: Node, below: tuple[bytes, ...],
                    names: set[bytes]) -> dict[bytes, Node]:
        """The view's own folders by these names: found, or made (their ids stay)."""
        found = {name: self.s.tree.child(folder.id, name) for name in names}
        missing = sorted(name for name, node in found.items() if node is None)
        if missing:
            now = time.time_ns()
            with self.s.tree.transaction() as txn:
                for name in missing:
                    new = nodes.NewNode(Kind.VIEW, FOLDER_MODE, folder.uid, folder.gid, 0, now,
                                        now, nlink=2, remote_path=b"/".join((*below, name)))
                    nodes.insert_node(txn, folder.id, name, new,
                                      generation=self.s.tree.generation)
            found = {name: self.s.tree.child(folder.id, name) for name in names}
        return {name: node for name, node in found.items() if node is not None}

    # -- changes ---------------------------------------------------------------------------

    def writable(self, node: Node) -> bool:
        view = self._view(node)
        return node.id == view.node_id and view.landing_source_id is not None

    async def create(self, parent: Node, name: bytes, mode: int, flags: int,
                     caller: Caller) -> FileHandle:
        view = await self.s.catalog.read(self._view, parent)
        if parent.id != view.node_id or view.landing_source_id is None:
            raise FsError(errno.EROFS, "this view has no landing folder for new files")
        if await self.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST)
        row = self.sources.row(view.landing_source_id)
        parts = tuple(p.encode() for p in view.landing_path.split("/") if p)
        landing = await self.source_folder(row, parts) if row is not None else None
        if landing is None:
            raise FsError(errno.ENOENT, "the view's landing folder is gone")
        handle = await self.files.create(landing, name, mode, flags, caller)
        if not any(entry == name and node.id == handle.node_id
                   for entry, node in await self.entries(parent, fresh=True)):
            await self.s.catalog(self.s.tree.write, views.pin, view.id, handle.node_id)
            self.forget(parent.id)
        return handle

    async def remove(self, parent: Node, name: bytes, want_dir: bool) -> None:
        view = await self.s.catalog.read(self._view, parent)
        node = await self._member(parent, name)
        if node.kind is Kind.VIEW:
            raise FsError(errno.EPERM, "a view's folders follow its rules")
        if node.is_dir != want_dir:
            raise FsError(errno.ENOTDIR if want_dir else errno.EISDIR)
        pinned = parent.id == view.node_id and node.id in await self.s.catalog.read(
            self.s.tree.catalog.views.pins_of, view.id)
        if not pinned:
            log.warning("view %s: %r is a member by rule; removing it from the view would "
                        "delete nothing and is refused (change the rules instead)",
                        view.name, name)
            raise FsError(errno.EPERM)
        await self.s.catalog(self.s.tree.write, views.unpin, view.id, node.id)
        self.forget(parent.id)
