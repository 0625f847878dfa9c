"""Following the other hosts of a shared catalog: their commits into this host's caches.

A daemon whose catalog is shared (PostgreSQL) runs `CatalogFeed.run` beside its
namespace. Two connections of its own, apart from the catalog's:

- the announcer: after each commit of this host, a NOTIFY carrying the newest stamp —
  at most one per `ANNOUNCE_S`, from its own transaction (every notifying commit takes a
  cluster-wide lock, so never inside the catalog's writes);
- the listener: LISTEN, then the change log read from the mirror's stamp whenever a
  notification arrives, and every `feed_poll` seconds in any case (a notification lost with its
  connection, or never sent by a host that died after its commit). After a reconnect
  it listens first, then reads what it missed.

What is read goes into the mirror (`Tree.heard`) and the kernel forgets those names and
inodes (`Tree.hear`). A write transaction of this host catches up by itself before it
writes (`Tree.catch_up`), so the feed is what makes reads current, not writes correct.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from markfs.catalog.engines.pgfeed import Announcer, ChangeListener
from markfs.errors import first_line
from markfs.metrics import METRICS
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner

log = logging.getLogger(__name__)

ANNOUNCE_S = 0.005  # at most one NOTIFY per this
AGAIN_S = 0.01  # a read not applied (a write of this host under way): read again after
RETRY_S = (0.1, 1.0)  # after the server did not answer: the first wait, the longest


class CatalogFeed:
    def __init__(self, tree: Tree, url: str, io: IoRunner, poll_s: float) -> None:
        self.tree, self.url, self.io, self.poll_s = tree, url, io, poll_s
        self._pending = 0  # newest stamp committed here and not announced yet
        self._wake = trio.Event()
        self._loop: trio.lowlevel.TrioToken | None = None  # (once running)
        self._read_again = False  # the last read was not applied: read again soon
        tree.catalog.committed = self.announce

    def announce(self, stamp: int) -> None:
        """A commit of this host, after its COMMIT: in whichever thread did the work
        (`CatalogRunner`), so the announcer is woken through the loop."""
        if self._loop is None:
            self._note(stamp)
        else:
            self._loop.run_sync_soon(self._note, stamp)

    def _note(self, stamp: int) -> None:
        self._pending = max(self._pending, stamp)
        self._wake.set()

    async def run(self) -> None:
        self._loop = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._announcing)
            nursery.start_soon(self._listening)

    async def _announcing(self) -> None:
        announcer: Announcer | None = None
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            stamp, self._pending = self._pending, 0
            try:
                if announcer is None:
                    announcer = await self.io(Announcer, self.url)
                await self.io(announcer.announce, stamp)
            except Exception as exc:  # (the others see it by their poll, within feed_poll)
                log.warning("could not announce stamp %d: %s", stamp, first_line(exc))
                _close(announcer)
                announcer = None
                await trio.sleep(RETRY_S[1])
            await trio.sleep(ANNOUNCE_S)

    async def _listening(self) -> None:
        listener: ChangeListener | None = None
        retry = RETRY_S[0]
        while True:
            try:
                if listener is None:
                    listener = await self.io(ChangeListener, self.url)
                    await self._read(listener)  # what was committed while not listening
                    retry = RETRY_S[0]
                with trio.move_on_after(AGAIN_S if self._read_again else self.poll_s):
                    await trio.lowlevel.wait_readable(listener.fileno())
                newest = listener.heard()  # (the socket is readable: this does not wait)
                if newest == 0 or newest > (self.tree.hot.stamp() or 0):
                    await self._read(listener)
            except Exception as exc:
                log.warning("the catalog's change feed stopped (%s); again in %.1f s",
                            first_line(exc), retry)
                METRICS.feed_failures.inc()
                _close(listener)
                listener = None
                await trio.sleep(retry)
                retry = min(retry * 2, RETRY_S[1])

    async def _read(self, listener: ChangeListener) -> None:
        started = time.monotonic()
        applied = self.tree.hot.stamp() or 0
        newest, changes = await self.io(listener.read_since, applied, self.tree.own_stamps())
        METRICS.feed_behind.set(max(0, newest - applied))
        heard = self.tree.heard(newest, changes)
        self._read_again = heard is None
        if heard:
            METRICS.feed_reads.inc()
            METRICS.feed_read_seconds.observe(time.monotonic() - started)


def _close(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:
            log.debug("closing a feed connection: %s", first_line(exc))



def forgetting(changed_elsewhere: Callable[[list[tuple[int, bytes]], list[int], bool], None]
               ) -> Callable[[Any], None]:
    """`Tree.hear` for a namespace: the kernel forgets the names and inodes the other
    hosts changed; gathered folders compute again (None: the mirror was rebuilt whole,
    and the kernel's entries go by their TTLs)."""
    from markfs.catalog.changelog import names_and_nodes

    def hear(changes: Any) -> None:
        names, nodes = ([], []) if changes is None else names_and_nodes(changes)
        changed_elsewhere(names, nodes, True)
    return hear
