"""Keeping the catalog's copy of source folders in step with the sources.

A source folder is listed when it is first looked into and again after
`dir_ttl` — except folders of a local source whose inotify watches were in place
before that listing: the watcher reports each change to them, so their listing stays
trusted until the watcher says it lost events (a queue overflow). The listing is
reconciled with the catalog under the folder's lock (see `listing.reconcile`).
Single paths are re-checked after the mount changed them (`record`, `restat`) and
when the watcher reports an outside change (`refresh_path`). A source that does not
answer keeps showing what was listed before, for `dir_ttl`, instead of making every
`ls` wait for the timeout.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import trio

from markfs.backends.base import Backend, Entry, keeps_metadata
from markfs.bounded import RecentMap
from markfs.errors import FsError, SourceShut
from markfs.metrics import METRICS
from markfs.model import Kind, Node
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.listing import (
    ListingDiff,
    child_path,
    name_folders,
    needs_completion,
    reconcile,
    refresh_one,
    update_attrs,
    valid_name,
)
from markfs.namespace.provider import Services
from markfs.namespace.renames import RenameEpochs

log = logging.getLogger(__name__)
LISTINGS_KEPT = 100_000  # folders whose listing time is remembered (~10 MB at most)
COMPLETIONS_AT_ONCE = 16  # requests completing a listing's entries (S3 HEADs) at once


class SourceListings:
    def __init__(self, services: Services, sources: SourceSet) -> None:
        self.s = services
        self.sources = sources
        self.renames = RenameEpochs()  # a rename during a listing makes it stale
        # dir id -> trio time of its last reconcile, the most recent `LISTINGS_KEPT`: a
        # folder forgotten is listed again when next looked into, as after a remount
        self._listed: RecentMap[int, float] = RecentMap(LISTINGS_KEPT)
        self._watched: dict[int, float] = {}  # source id -> trio time its watches were set

    def watched(self, source_ids: list[int]) -> None:
        """The watcher reports every change to these sources from now on."""
        now = trio.current_time()
        self._watched.update((source_id, now) for source_id in source_ids)
        METRICS.watched_sources.set(len(self._watched))

    def watch_lost(self) -> None:
        """The watcher lost events: every listing expires by `dir_ttl` again."""
        self._watched.clear()
        METRICS.watched_sources.set(0)

    def backend(self, node: Node) -> Backend:
        if node.kind is not Kind.SOURCE or node.source_id is None:
            raise FsError(errno.EROFS)
        backend = self.sources.backend(node.source_id)
        if backend is None:
            raise FsError(errno.ENOENT)
        return backend

    def mark_listed(self, dir_id: int) -> None:
        """A folder just made through the mount: empty, nothing to list."""
        self._listed[dir_id] = trio.current_time()

    def _fresh(self, directory: Node) -> bool:
        listed = self._listed.get(directory.id)
        if listed is None:
            return False
        if self._listed_while_watched(listed, directory.source_id):
            return True  # every later change was reported
        return trio.current_time() - listed < self.s.config.dir_ttl

    def _listed_while_watched(self, listed: float, source_id: int | None) -> bool:
        since = self._watched.get(source_id or 0)
        return since is not None and listed >= since

    def kernel_may_keep(self, dir_id: int, source_id: int | None) -> float | None:
        """Seconds the kernel may keep the names in folder `dir_id` and its children's
        attributes: as long as its listing stays trusted, since every change markfs
        learns of before then tells the kernel at once (the mount's own, the watcher's,
        a refresh's diff, a command's). A watched folder's listing stays trusted until a
        lost event: then `dir_ttl` bounds what the kernel still holds. None: not listed
        (the mount's `entry_ttl`/`attr_ttl` apply)."""
        listed = self._listed.get(dir_id)
        if listed is None:
            return None
        if self._listed_while_watched(listed, source_id):
            return self.s.config.dir_ttl
        return listed + self.s.config.dir_ttl - trio.current_time()

    async def ensure_listed(self, directory: Node, force: bool = False) -> None:
        """Make the catalog's children of a source directory match the source."""
        if directory.kind is not Kind.SOURCE or (not force and self._fresh(directory)):
            return
        async with self.s.locks.hold(directory.id):
            if not force and self._fresh(directory):
                return
            first = directory.id not in self._listed
            for _attempt in range(3):  # a rename above may make a listing stale: read again
                try:
                    diff = await self._list_and_reconcile(directory)
                except FsError as exc:
                    if not await self._serve_stale(directory, exc):
                        raise
                    return
                if diff is not None:
                    self._listed[directory.id] = trio.current_time()
                    break
            else:
                return
        self.s.kernel.listing_changed(directory.id, diff, first)

    async def _serve_stale(self, directory: Node, exc: FsError) -> bool:
        """A source that does not answer: keep showing what was listed before, if anything
        was, and do not ask again for `dir_ttl` (every `ls` would wait for the timeout).
        A source that refuses us for good (its bucket or folder gone) shows nothing."""
        if exc.code == errno.ENOENT or exc.refused:
            return False
        known = directory.id in self._listed or bool(
            await self.s.catalog.read(self.s.tree.children, directory.id, 0, 1))
        if known:
            log.warning("listing %r failed (%s): showing the cached listing",
                        directory.remote_path, exc.strerror)
            self._listed[directory.id] = trio.current_time()
        return known

    async def _list_and_reconcile(self, directory: Node) -> ListingDiff | None:
        """One listing applied to the catalog; None if paths moved while it was read."""
        backend = self.backend(directory)
        current = self.s.tree.node(directory.id)
        if current is None:
            raise FsError(errno.ENOENT)
        path = current.remote_path or b""
        shut = self.sources.shut(current.source_id or 0)
        if shut is not None:  # known not to answer: the cached listing, at once
            raise SourceShut(errno.EIO, f"the source is {shut.state}",
                             refused=shut.state == "refused")
        with self.s.marks.observing() as started:
            return await self._read_and_reconcile(backend, current, path, started)

    async def _read_and_reconcile(self, backend: Backend, current: Node, path: bytes,
                                  started: float) -> ListingDiff | None:
        directory, mark = current, self.renames.mark()
        METRICS.listings.labels(self.sources.name(current.source_id)).inc()
        try:
            pages = await self._list_pages(backend, path)
            entries = await self._completed(backend, current, [e for p in pages for e in p])
            self.sources.answered(current.source_id)
        except FsError as exc:
            self.sources.answered(current.source_id, exc)
            if exc.code == errno.ENOENT and self.renames.unchanged_since(mark):
                await self._vanished(current)
            raise
        now = self.s.tree.node(directory.id)
        if now is None:
            raise FsError(errno.ENOENT)
        if not self.renames.unchanged_since(mark) or now.remote_path != path:
            return None
        return await self.s.catalog(reconcile, self.s.tree, now, entries,
                                    self.s.marks.since(started))

    async def _completed(self, backend: Backend, folder: Node,
                         entries: list[Entry]) -> list[Entry]:
        """The entries, those a listing gave only in part (S3: no object metadata) and
        whose node does not hold it for this version completed — a request each,
        `COMPLETIONS_AT_ONCE` at a time. An entry gone meanwhile is left out."""
        if not keeps_metadata(backend):
            return entries
        known = await self.s.catalog.read(self.s.tree.child_map, folder.id)
        todo = [i for i, e in enumerate(entries)
                if valid_name(e.name) and needs_completion(known.get(e.name), e)]
        if not todo:
            return entries
        out: list[Entry | None] = list(entries)
        limiter = trio.CapacityLimiter(COMPLETIONS_AT_ONCE)

        async def complete(index: int) -> None:
            async with limiter:
                entry = entries[index]
                try:
                    out[index] = await self.s.io(backend.complete,
                                                 child_path(folder, entry.name), entry)
                except FsError as exc:
                    if exc.code != errno.ENOENT:
                        raise
                    out[index] = None
        async with trio.open_nursery() as nursery:
            for index in todo:
                nursery.start_soon(complete, index)
        return [e for e in out if e is not None]

    async def _list_pages(self, backend: Backend, path: bytes) -> list[list[Entry]]:
        """Every page of a listing. Each page must come within `io_timeout` (a server that
        stopped answering is EIO, not a wait), the whole within `list_timeout`."""
        pages: list[list[Entry]] = []
        iterator = backend.list_pages(path)  # a generator: nothing is asked before next()
        with trio.move_on_after(self.s.config.list_timeout):
            while (page := await self.s.io(next, iterator, None)) is not None:
                pages.append(page)
            return pages
        raise FsError(errno.EIO, f"listing took longer than {self.s.config.list_timeout:.0f}s")

    async def _vanished(self, node: Node) -> None:
        parent = self.s.tree.node(node.parent)
        if parent is not None and parent.kind is Kind.SOURCE:
            self.s.kernel.listing_changed(parent.id, await self.s.catalog(
                refresh_one, self.s.tree, parent, None, node.name))

    async def refresh_path(self, source_id: int, remote_path: bytes) -> None:
        """Re-check one path of a source that changed outside the mount (watcher events)."""
        parent_path, _, name = remote_path.rpartition(b"/")
        if not name:
            return
        parent = self.s.tree.node_at(source_id, parent_path)
        if parent is None or parent.id not in self._listed:
            return  # never shown to the kernel: its first listing will see the change
        backend = self.backend(parent)
        async with self.s.locks.hold(parent.id):
            with self.s.marks.observing() as started:
                mark = self.renames.mark()
                try:
                    entry: Entry | None = await self.s.io(backend.stat, remote_path)
                except FsError as exc:
                    if exc.code not in (errno.ENOENT, errno.ENOTDIR):
                        raise
                    entry = None
                current = self.s.tree.node(parent.id)
                if (current is None or current.remote_path != parent_path
                        or not self.renames.unchanged_since(mark)):
                    return  # paths moved meanwhile: the rename's own events cover them
                diff = await self.s.catalog(refresh_one, self.s.tree, current, entry, name,
                                            self.s.marks.since(started))
        self.s.kernel.listing_changed(parent.id, diff)

    async def record(self, parent: Node, name: bytes, backend: Backend,
                     also: Callable[[], object] = lambda: None) -> Node:
        """Stat a path just changed through the mount and store what the source says
        (`also`: as in `record_entry`)."""
        return await self.record_entry(
            parent, name, await self.s.io(backend.stat, child_path(parent, name)), also)

    async def record_entry(self, parent: Node, name: bytes, entry: Entry,
                           also: Callable[[], object] = lambda: None) -> Node:
        """Store what the source said of a path just changed through the mount; `also`
        writes in the same transaction (the folder's new times: one commit for both).
        The node is read after the commit: the mirror shows a transaction's writes only
        then."""
        await self.s.catalog(self._record, parent, name, entry, also)
        node = self.s.tree.child(parent.id, name)
        if node is None:
            raise FsError(errno.EIO, "entry vanished while being recorded")
        return node

    def _record(self, parent: Node, name: bytes, entry: Entry,
                also: Callable[[], object]) -> None:
        with self.s.tree.transaction(name_folders(self.s.tree, parent, name)):
            refresh_one(self.s.tree, parent, entry, name)
            also()

    async def restat(self, node: Node) -> Node:
        """Re-read one node's attributes from its source after changing it."""
        assert node.remote_path is not None
        self.s.marks.mark(node.id)
        entry = await self.s.io(self.backend(node).stat, node.remote_path)
        self.s.marks.mark(node.id)
        current = self.s.tree.node(node.id)
        return node if current is None else await self.s.catalog(
            update_attrs, self.s.tree, current, entry)

    async def restat_id(self, node_id: int) -> Node | None:
        """`restat` of the node as the catalog has it now; None if it is gone."""
        node = self.s.tree.node(node_id)
        return None if node is None else await self.restat(node)
