"""What operations on different nodes share: directory locks, change marks, and telling
the kernel what it cached that is no longer true.

Invariant (listings never undo the mount's own changes): a listing or stat read at
trio time `t` does not overwrite a node the mount changed at or after `t`, nor one
open for writing or with staged content (`ChangeMarks.since`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol

import trio

from markfs.namespace.listing import ListingDiff

log = logging.getLogger(__name__)


class KernelNotifier(Protocol):
    """Drops what the kernel cached about names and inodes that changed behind its back."""

    def forget_entry(self, parent_id: int, name: bytes) -> None: ...

    def forget_inode(self, node_id: int) -> None: ...

    def then(self, call: Callable[[], object]) -> None:
        """Call `call` (on the notifier's thread) once everything asked before is done."""


class DirectoryLocks:
    """One lock per directory: its mutations and the reconcile of its listing never
    interleave. Several are taken in id order, so two renames cannot deadlock. A lock
    exists while someone holds or waits for it (the table holds only those)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[trio.Lock, int]] = {}  # dir id -> (lock, users)

    @asynccontextmanager
    async def hold(self, *dir_ids: int) -> AsyncIterator[None]:
        ids = sorted(set(dir_ids))
        for dir_id in ids:
            lock, users = self._locks.get(dir_id) or (trio.Lock(), 0)
            self._locks[dir_id] = (lock, users + 1)
        held: list[int] = []
        try:
            for dir_id in ids:
                await self._locks[dir_id][0].acquire()
                held.append(dir_id)
            yield
        finally:
            for dir_id in reversed(held):
                self._locks[dir_id][0].release()
            for dir_id in ids:
                lock, users = self._locks[dir_id]
                if users > 1:
                    self._locks[dir_id] = (lock, users - 1)
                else:
                    del self._locks[dir_id]


class ChangeMarks:
    """When the mount last changed each node, so older listings leave it alone.

    `busy(node_id)` says whether a node is open for writing or has staged content:
    then nothing the source says about it is newer than what the mount has. A listing
    or stat of the source is an observation (`observing`); a mark matters only to one
    begun before it, so marks older than every observation in flight leave, from the
    front of a table kept in the order they were made: a mark costs the same however
    busy the mount has been, and the table holds only what observations in flight made
    (before: every mark of the last 600 s — 700,000 at a thousand creates a second)."""

    def __init__(self, busy: Callable[[int], bool]) -> None:
        # node id -> monotonic time the mount last changed it, oldest first
        self._at: OrderedDict[int, float] = OrderedDict()
        self._observing: Counter[float] = Counter()  # start -> observations in flight
        self._busy = busy
        # (marks are made in the catalog's worker thread too: `CatalogRunner`)
        self._lock = threading.Lock()

    @contextmanager
    def observing(self) -> Iterator[float]:
        """A look at the source from now until the block ends; gives its start time, for
        `since`. Marks made meanwhile are kept until it is over."""
        with self._lock:
            started = time.monotonic()
            self._observing[started] += 1
        try:
            yield started
        finally:
            with self._lock:
                self._observing[started] -= 1
                if not self._observing[started]:
                    del self._observing[started]

    def mark(self, node_id: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._at[node_id] = now
            self._at.move_to_end(node_id)
            needed_from = min(self._observing, default=now)  # (a few observations at most)
            while self._at:  # forget what no observation in flight can predate
                oldest, at = next(iter(self._at.items()))
                if at >= needed_from:
                    break
                del self._at[oldest]

    def since(self, started: float) -> Callable[[int], bool]:
        """Nodes an observation begun at `started` (under `observing`) must keep as they
        are in the catalog."""
        def keep(node_id: int) -> bool:
            return self._at.get(node_id, -1.0) >= started or self._busy(node_id)
        return keep


class KernelNotifications:
    """The kernel notifier, once the mount has one (tests run without a kernel)."""

    def __init__(self, is_written: Callable[[int], bool]) -> None:
        self.notifier: KernelNotifier | None = None
        self._is_written = is_written

    def forget_inode(self, node_id: int) -> None:
        if self.notifier is not None:
            self.notifier.forget_inode(node_id)

    def forget_entry(self, parent_id: int, name: bytes) -> None:
        if self.notifier is not None:
            self.notifier.forget_entry(parent_id, name)

    async def told(self, within: float) -> None:
        """Until the kernel has been told everything asked so far (at most `within`)."""
        if self.notifier is None:
            return
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        self.notifier.then(lambda: token.run_sync_soon(done.set))
        with trio.move_on_after(within):
            await done.wait()

    def listing_changed(self, dir_id: int, diff: ListingDiff, first: bool = False) -> None:
        """After a reconcile: names added or gone, attributes changed (not of files open
        for writing: their writers know better). Nothing after a folder's `first`
        listing in this mount: the kernel cannot hold names of a folder never listed
        (every lookup lists it first), and dropping them would only race with the
        READDIRPLUS answer that is creating them, making every `stat` a LOOKUP."""
        if diff.removed:
            log.info("outside change: %d name(s) gone from directory %d: %s",
                     len(diff.removed), dir_id, [name for name, _ in diff.removed][:5])
        if self.notifier is None or not diff or first:
            return
        for name in [*(name for name, _old in diff.removed), *diff.added]:
            self.notifier.forget_entry(dir_id, name)  # added: drops a cached "no such name"
        for node_id in diff.changed:
            if not self._is_written(node_id):
                self.notifier.forget_inode(node_id)
        if diff.removed or diff.added:
            self.notifier.forget_inode(dir_id)
