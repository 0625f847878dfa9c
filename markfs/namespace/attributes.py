"""Extended attributes through the mount: `user.*` names, dispatched to the node's
provider, and `user.markfs.tags` (the catalog's tags of files of sources and tables).

Every answer may need the catalog (attributes a storage cannot keep live in its
`xattrs` table; tags are its own), so each call runs through the catalog's runner —
off the trio loop where the catalog is a server's, inline on SQLite — with the node
resolved on the loop first. (A local disk's own xattr calls, made there too, take µs.)
"""

from __future__ import annotations

from collections.abc import Callable

from markfs.model import Node
from markfs.namespace.curation.tagxattr import TAGS_XATTR, TagAttribute
from markfs.namespace.provider import Provider
from markfs.namespace.workers import CatalogRunner


class ExtendedAttributes:
    def __init__(self, catalog: CatalogRunner, provider_of: Callable[[Node], Provider],
                 tags: TagAttribute) -> None:
        self.catalog, self.provider_of, self.tags = catalog, provider_of, tags

    async def get(self, node: Node, name: bytes) -> bytes:
        return await self.catalog.read(self._get, node, name)

    async def names(self, node: Node) -> list[bytes]:
        return await self.catalog.read(self._names, node)

    async def set(self, node: Node, name: bytes, value: bytes) -> None:
        await self.catalog(self._set, node, name, value)

    async def remove(self, node: Node, name: bytes) -> None:
        await self.catalog(self._remove, node, name)

    def _get(self, node: Node, name: bytes) -> bytes:
        tags = self.tags.get(node) if name == TAGS_XATTR else None
        return tags if tags is not None else self.provider_of(node).getxattr(node, name)

    def _names(self, node: Node) -> list[bytes]:
        return self.tags.listed(node, self.provider_of(node).listxattr(node))

    def _set(self, node: Node, name: bytes, value: bytes) -> None:
        if name == TAGS_XATTR:
            self.tags.set(node, value)
        else:
            self.provider_of(node).setxattr(node, name, value)

    def _remove(self, node: Node, name: bytes) -> None:
        if name == TAGS_XATTR:
            self.tags.remove(node)
        else:
            self.provider_of(node).removexattr(node, name)
