"""The part of the node tree that follows the other hosts of a shared catalog.

Several hosts keep their own mirrors of one catalog (catalog/changelog.py). A write
transaction catches its mirror up before it decides (`catch_up`); a commit whose stamp
came with its COMMIT lands after it (`landed`); the change feed's reads go in when they
are newer than what the mirror holds (`heard`); an open reads its file's row anew
(`revalidated`: close-to-open). What the kernel must forget of each is handed to
`hear` (set by the daemon's `CatalogMember`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from markfs.model import ChangeSet, Node

if TYPE_CHECKING:
    from markfs.cache.hot import HotCache
    from markfs.catalog.db import Catalog

MINE_AT_MOST = 500  # own commits the log's reads leave out (past it: read, harmlessly)


class FollowingHosts:
    """What `Tree` does with the other hosts' writes and the mirror's stamp."""

    catalog: Catalog
    hot: HotCache
    rebuild_mirror: Callable[..., bool]  # (the tree's)

    def follow_hosts(self) -> None:
        # on a shared catalog: told what other hosts changed (None: anything may have)
        self.hear: Callable[[ChangeSet | None], object] | None = None
        # the newest stamp of this host whose rows are in the mirror ahead of its stamp
        # (`landed`): what the feed read before it must not go over them
        self._ahead = 0
        # the stamps of those commits (at most MINE_AT_MOST; replaced whole, so a reader
        # on another thread sees one set): reads of the log leave them out — the mirror
        # has their rows, and the kernel need not forget what this host itself wrote
        self._mine: frozenset[int] = frozenset()

    def catch_up(self, newest: int) -> None:
        """At the start of a write transaction on a shared catalog, which found it at stamp
        `newest`: the mirror first takes what other hosts committed before (from the log,
        or rebuilt whole if the log no longer reaches back), so the stamp this transaction
        gives the mirror stands for every write before it."""
        with self.catalog.mirror_lock:
            self._catch_up(newest)

    def _catch_up(self, newest: int) -> None:
        applied = self.hot.stamp() or 0
        if applied >= newest:  # (another thread of this host landed a later commit)
            return
        if applied >= 0 and self._all_mine(applied, newest):
            self.hot.apply(ChangeSet(), newest)  # (their rows are in: no read)
            self._covered(newest)
            return
        changes = (self.catalog.changes_since(applied, newest, self._mine)
                   if 0 <= applied < newest else None)
        self._covered(newest)
        told = self._to_forget(changes)
        if changes is None:
            self.hot.rebuild(self.catalog.nodes.iter_nodes(), self.catalog.nodes.iter_hardlinks(),
                             newest)
        else:
            self.hot.apply(changes, newest)
        if self.hear is not None:
            self.hear(told)

    def landed(self, changes: ChangeSet, stamp: int) -> None:
        """This host's commit `stamp`, taken at its COMMIT (`Catalog._locking`): other
        hosts may have committed the stamps before it since its locks were taken. Into
        the mirror under that stamp if the mirror holds every one before; else its rows
        only, the mirror's stamp kept — the feed reads the stamps between (what it
        reads is the rows as they are: this commit's, or newer), and applies nothing
        read before this commit (`_ahead`). Nothing where the mirror holds that stamp
        already: a transaction of another thread of this host, begun after this COMMIT,
        caught it up from the log (rows as they were then: this commit's, or newer)."""
        with self.catalog.mirror_lock:
            self._landed(changes, stamp)

    def _landed(self, changes: ChangeSet, stamp: int) -> None:
        applied = self.hot.stamp() or 0
        mirror = self.catalog.mirror
        assert mirror is not None
        if applied >= stamp:
            return
        if applied == stamp - 1:
            top = stamp  # (and the commits of this host after it that landed first)
            while top + 1 in self._mine:
                top += 1
            mirror.apply(changes, top)
            self._covered(top)
            return
        mirror.apply(changes, applied)
        self._ahead = max(self._ahead, stamp)
        if len(self._mine) < MINE_AT_MOST:
            self._mine = self._mine | {stamp}

    def _to_forget(self, changes: ChangeSet | None) -> ChangeSet | None:
        """What the kernel must forget of `changes` (asked before the mirror takes them):
        every node touched (its attributes), the names that went and the names new to
        the mirror (a miss the kernel may hold) — not a name that stays as it was:
        forgetting a folder's name drops every name below it from the kernel's cache
        (the kernel's `d_invalidate`), and a folder's times change with each create in
        it. (None: anything may have changed.)"""
        if changes is None:
            return None
        return replace(changes, dentries=[(parent, name, node_id) for parent, name, node_id
                                          in changes.dentries
                                          if self.hot.child(parent, name) != node_id])

    def _all_mine(self, applied: int, newest: int) -> bool:
        """Whether every stamp after `applied` up to `newest` is a commit of this host
        whose rows the mirror holds (landed ahead of a commit before it)."""
        return newest - applied <= len(self._mine) and self._mine.issuperset(
            range(applied + 1, newest + 1))

    def own_stamps(self) -> frozenset[int]:
        """This host's commits the mirror holds ahead of its stamp (`_mine`)."""
        return self._mine

    def _covered(self, newest: int) -> None:
        """The mirror now stands for every stamp up to `newest`."""
        if self._mine:
            self._mine = frozenset(s for s in self._mine if s > newest)

    def revalidated(self, node: Node) -> Node | None:
        """A remote file's row as the catalog has it now, where another host changed it
        since the mirror had it (None: unchanged, or a catalog of one host; a local
        file's content is read from its disk, not named by its row) — close-to-open: an
        open after another host's close sees that close, however far the feed is. Into
        the mirror, as `landed` takes a commit of this host (read at the catalog's
        stamp: the feed applies nothing read before it)."""
        if not self.catalog.engine.shared:
            return None
        fresh, stamp = self.catalog.nodes.node_and_stamp(node.id)
        if fresh is None or fresh == node:
            return None
        with self.catalog.mirror_lock:
            applied = self.hot.stamp()
            if applied is not None and applied >= 0:
                self.hot.apply(ChangeSet(nodes=[fresh], dentries=[
                    (fresh.parent, fresh.name, fresh.id)]), applied)
                self._ahead = max(self._ahead, stamp)
        return fresh

    def heard(self, newest: int, changes: ChangeSet | None) -> bool | None:
        """What the change log said other hosts committed up to `newest` (read outside any
        transaction of ours), into the mirror unless it holds that already; was it new?
        None: not now — a write transaction of this host is writing the mirror (in a
        worker thread: the loop does not wait for it); what was read may be older than
        what it applies, so the reader reads again soon."""
        lock = self.catalog.mirror_lock
        if not lock.acquire(blocking=False):
            return None
        try:
            return self._heard(newest, changes)
        finally:
            lock.release()

    def _heard(self, newest: int, changes: ChangeSet | None) -> bool | None:
        applied = self.hot.stamp() or 0
        if 0 <= newest <= applied:
            return False
        if newest < self._ahead:
            return None  # (read before a commit of ours the mirror holds: read again)
        told = None if applied < 0 else self._to_forget(changes)
        if changes is None or applied < 0:
            self.rebuild_mirror()
        else:
            self.hot.apply(changes, newest)
        self._covered(newest)
        if self.hear is not None:
            self.hear(told)
        return True
