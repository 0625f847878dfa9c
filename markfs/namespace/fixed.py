"""Providers of the mount's own nodes: the fixed folders (/, /sources, /tables, ...)
and the generated read-only files under /.markfs."""

from __future__ import annotations

import errno
from collections.abc import Callable

from markfs.errors import FsError
from markfs.metrics import METRICS
from markfs.model import Node
from markfs.namespace.handles import FileHandle, GeneratedHandle, is_write_open
from markfs.namespace.provider import CatalogFolders, Provider, Services
from markfs.namespace.tree import STATUS_FILE_ID


class LayoutFolders(CatalogFolders):
    """The fixed folders: their children are catalog rows (sources, views, tags...)."""

    def kernel_keeps(self, node: Node) -> float | None:
        """Only commands change these, and a command returns once every mount has
        dropped what the kernel held of its changes (`changefeed`)."""
        return self.s.config.dir_ttl

    def kernel_keeps_absent(self, folder: Node) -> float | None:
        return self.s.config.dir_ttl


class ControlFiles(Provider):
    """status.json and metrics (the Prometheus text of this process's counters):
    rendered at each open. status.json reads the catalog, so it renders through the
    catalog's runner (off the loop on a server's catalog) and a stat shows the size of
    its last rendering: its reads bypass the page cache (direct I/O), so a size that
    changed since never cuts what is read."""

    def __init__(self, services: Services, render_status: Callable[[], bytes]) -> None:
        super().__init__(services)
        self._render_status = render_status
        self._last_status = render_status()  # the last rendering of status.json (its size)

    async def _render(self, node: Node) -> bytes:
        if node.id != STATUS_FILE_ID:
            return METRICS.text()
        self._last_status = await self.s.catalog.read(self._render_status)
        return self._last_status

    def attrs(self, node: Node) -> Node:
        shown = self._last_status if node.id == STATUS_FILE_ID else METRICS.text()
        return node.with_(size=len(shown))

    async def open(self, node: Node, flags: int) -> FileHandle:
        if is_write_open(flags):
            raise FsError(errno.EROFS)
        return GeneratedHandle(node, await self._render(node))
