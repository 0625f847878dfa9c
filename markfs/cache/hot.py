"""The LMDB hot-path cache: inode -> node and (parent, name) -> inode.

A mirror of the catalog's node tree, written through by every catalog
transaction (see `markfs.catalog.db`) and rebuilt from SQLite whenever its
stamp differs from the catalog's. Lookups and getattr are answered from here
without touching SQLite. It holds nothing SQLite does not.

Durability: the environment is opened without per-commit fsync; a machine
crash can lose its last commits, which the stamp check then detects.
`sync()` flushes it on the fsync path.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from markfs.cache.lmdbfile import discard, header_damage, open_environment, walk_damage
from markfs.model import ChangeSet, Node, pack_node, unpack_node

log = logging.getLogger(__name__)
_ID = struct.Struct(">Q")  # big-endian so keys of one parent sort together
_STAMP = struct.Struct("<q")
_STALE = -1


def _dentry_key(parent: int, name: bytes) -> bytes:
    return _ID.pack(parent) + name


class HotCache:
    """The LMDB environment of one data directory."""

    def __init__(self, path: Path, map_size: int = 1 << 32, walk: bool = False) -> None:
        """`walk`: read the whole file in a child process first (mount start, fsck);
        otherwise only its header is checked. A damaged file is never mapped: it is
        deleted and the empty cache, stamp-less, is rebuilt from the catalog."""
        self.damage = walk_damage(path) if walk else header_damage(path)
        if self.damage is not None:
            log.warning("hot cache: %s; rebuilding it from the catalog", self.damage)
            discard(path)
        self.env = open_environment(path, max_dbs=4, map_size=map_size, sync=False,
                                    metasync=False, readahead=False)
        self._inodes = self.env.open_db(b"inodes")
        self._dentries = self.env.open_db(b"dentries")
        self._meta = self.env.open_db(b"meta")
        # transactions this process applied: a reader holding a node looks it up again
        # only after this moved (nodes change in the daemon's own transactions)
        self.applied = 0

    def close(self) -> None:
        self.env.close()

    def node(self, node_id: int) -> Node | None:
        with self.env.begin(db=self._inodes) as txn:
            buf = txn.get(_ID.pack(node_id))
        return None if buf is None else unpack_node(buf)

    def child(self, parent: int, name: bytes) -> int | None:
        with self.env.begin(db=self._dentries) as txn:
            buf = txn.get(_dentry_key(parent, name))
        return None if buf is None else int(_ID.unpack(buf)[0])

    def stamp(self) -> int | None:
        with self.env.begin(db=self._meta) as txn:
            buf = txn.get(b"stamp")
        return None if buf is None else int(_STAMP.unpack(buf)[0])

    def apply(self, changes: ChangeSet, stamp: int) -> None:
        self.applied += 1
        with self.env.begin(write=True) as txn:
            for parent, name in changes.gone_dentries:
                txn.delete(_dentry_key(parent, name), db=self._dentries)
            for node_id in changes.gone_nodes:
                txn.delete(_ID.pack(node_id), db=self._inodes)
            for node in changes.nodes:
                txn.put(_ID.pack(node.id), pack_node(node), db=self._inodes)
            for parent, name, node_id in changes.dentries:
                txn.put(_dentry_key(parent, name), _ID.pack(node_id), db=self._dentries)
            txn.put(b"stamp", _STAMP.pack(stamp), db=self._meta)

    def mark_stale(self) -> None:
        with self.env.begin(write=True, db=self._meta) as txn:
            txn.put(b"stamp", _STAMP.pack(_STALE))

    def rebuild(self, nodes: Iterable[Node], links: Iterable[tuple[int, bytes, int]],
                stamp: int) -> None:
        """Replace the whole mirror with the given catalog content, in one transaction."""
        self.applied += 1
        with self.env.begin(write=True) as txn:
            txn.drop(self._inodes, delete=False)
            txn.drop(self._dentries, delete=False)
            for node in nodes:
                txn.put(_ID.pack(node.id), pack_node(node), db=self._inodes)
                if node.id != node.parent:
                    txn.put(_dentry_key(node.parent, node.name), _ID.pack(node.id),
                            db=self._dentries)
            for parent, name, node_id in links:
                txn.put(_dentry_key(parent, name), _ID.pack(node_id), db=self._dentries)
            txn.put(b"stamp", _STAMP.pack(stamp), db=self._meta)

    def iter_nodes(self) -> Iterator[Node]:
        with self.env.begin(db=self._inodes) as txn:
            for _key, buf in txn.cursor():
                yield unpack_node(buf)

    def iter_dentries(self) -> Iterator[tuple[int, bytes, int]]:
        with self.env.begin(db=self._dentries) as txn:
            for key, buf in txn.cursor():
                yield int(_ID.unpack(key[:8])[0]), bytes(key[8:]), int(_ID.unpack(buf)[0])

    def sync(self) -> None:
        self.env.sync(True)
