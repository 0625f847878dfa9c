"""`user.markfs.tags`: a file's tags read and set as an extended attribute (comma-
separated), on files and folders of sources and tables. Tags are the catalog's, not the
source's: they are set on read-only sources too."""

from __future__ import annotations

import errno

from markfs.errors import FsError, UserError
from markfs.model import Kind, Node
from markfs.namespace.curation import definitions
from markfs.namespace.tree import Tree

TAGS_XATTR = b"user.markfs.tags"
TAGGABLE = frozenset({Kind.SOURCE, Kind.TABLE})


class TagAttribute:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def get(self, node: Node) -> bytes | None:
        """The attribute's value; None where the node is not taggable (the provider's
        own attribute of that name then answers)."""
        if node.kind not in TAGGABLE:
            return None
        found = definitions.tags_of(self.tree, node)
        if not found:
            raise FsError(errno.ENODATA)
        return ",".join(found).encode()

    def listed(self, node: Node, names: list[bytes]) -> list[bytes]:
        """`names` (the provider's), with this attribute where the node has tags."""
        if node.kind in TAGGABLE and definitions.tags_of(self.tree, node):
            return sorted({*names, TAGS_XATTR})
        return names

    def set(self, node: Node, value: bytes) -> None:
        self._set(node, value.decode(errors="replace").split(","))

    def remove(self, node: Node) -> None:
        if node.kind not in TAGGABLE or not definitions.tags_of(self.tree, node):
            raise FsError(errno.ENODATA)
        self._set(node, [])

    def _set(self, node: Node, wanted: list[str]) -> None:
        if node.kind not in TAGGABLE:
            raise FsError(errno.ENOTSUP, "only files and folders of sources and tables")
        try:
            definitions.set_tags(self.tree, node, wanted)
        except UserError as exc:
            raise FsError(errno.EINVAL, str(exc)) from None
