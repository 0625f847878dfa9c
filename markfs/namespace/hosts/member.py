"""A daemon as one host of a shared catalog: its session and its feed, started together."""

from __future__ import annotations

import threading

import trio

from markfs.catalog.engines.postgres import PostgresEngine
from markfs.config import DataDir, MountConfig
from markfs.namespace.hosts.feed import CatalogFeed, forgetting
from markfs.namespace.hosts.session import HostSession
from markfs.namespace.ops import Namespace


class CatalogMember:
    def __init__(self, namespace: Namespace, engine: PostgresEngine, host: str,
                 mountpoint: str, config: MountConfig) -> None:
        tree, io = namespace.tree, namespace.workers.run
        self._forget = forgetting(namespace.changed_elsewhere)
        self._loop: tuple[int, trio.lowlevel.TrioToken] | None = None  # (thread, token)
        tree.hear = self._hear
        self.session = HostSession(tree, engine, io, mountpoint, host, config.session_ttl)
        self.feed = CatalogFeed(tree, engine.describe(), io, config.feed_poll)

    def _hear(self, changes: object) -> None:
        """What other hosts changed, forgotten on the loop: a write transaction that
        catches up may run in the catalog's worker thread (`CatalogRunner`), and the
        gathered folders' caches are the loop's. Never waited for from there (the loop
        may be waiting for that worker's catalog connection)."""
        loop = self._loop
        if loop is None or loop[0] == threading.get_ident():
            self._forget(changes)
        else:
            loop[1].run_sync_soon(self._forget, changes)

    async def run(self) -> None:
        self._loop = (threading.get_ident(), trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.session.run)
            nursery.start_soon(self.feed.run)


def join(namespace: Namespace, data_dir: DataDir, config: MountConfig,
         mountpoint: str) -> CatalogMember | None:
    """The daemon's membership, its session registered (None: the catalog is its own)."""
    engine = namespace.tree.catalog.engine
    if not isinstance(engine, PostgresEngine):
        return None
    member = CatalogMember(namespace, engine, data_dir.host_id, mountpoint, config)
    member.session.register()
    return member
