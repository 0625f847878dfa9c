"""One write transaction of the catalog (`Txn`) and the rows it reads and writes.

Node functions (`catalog/nodes.py` and the other parts) write through a `Txn` and
record there what they touched; `Catalog.transaction` (`catalog/db.py`) opens it,
reads back the touched rows at its end (`collect`) and hands them to the mirror.
"""

from __future__ import annotations

from typing import Any, Protocol

from markfs.catalog.engines import Engine
from markfs.columns import integer
from markfs.model import ChangeSet, Kind, Node

NODE_COLUMNS = (
    "id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink, generation, "
    "source_id, remote_path, target, etag, atime_ns, rdev, meta_kept"
)


NODE_COLUMNS_OF_N = ", ".join(f"n.{column.strip()}" for column in NODE_COLUMNS.split(","))
COLLECT_CHUNK = 500  # node ids per statement that reads changed rows back


def row_to_node(row: tuple[Any, ...]) -> Node:
    (nid, parent, name, kind, mode, uid, gid, size, mtime, ctime, nlink, gen, src, remote,
     target, etag, atime, rdev, kept) = row
    return Node(
        id=nid, parent=parent, name=bytes(name), kind=Kind(kind), mode=mode, uid=uid,
        gid=gid, size=size, mtime_ns=mtime, ctime_ns=ctime, nlink=nlink, generation=gen,
        source_id=src, remote_path=None if remote is None else bytes(remote),
        target=None if target is None else bytes(target),
        etag=None if etag is None else bytes(etag), atime_ns=atime, rdev=rdev,
        meta_kept=kept,
    )


class Mirror(Protocol):
    """A copy of the node tree kept in step with the catalog (the LMDB hot cache)."""

    def apply(self, changes: ChangeSet, stamp: int) -> None: ...

    def node(self, node_id: int) -> Node | None: ...

    def child(self, parent: int, name: bytes) -> Node | None: ...

    def mark_stale(self) -> None: ...


class Txn:
    """One open write transaction; node functions record what they touch here.

    A touched node's row is read back at the end (`collect`) unless the transaction
    knows it already (`rows`): an INSERT's RETURNING, or an update of a row it knew
    (on a server, a round trip saved either way)."""

    def __init__(self, engine: Engine, before: Mirror | None = None,
                 locked: frozenset[int] | None = None) -> None:
        self.engine = engine
        self.conn = engine.conn
        self.touched: set[int] = set()
        self.gone_nodes: set[int] = set()
        self.gone_dentries: list[tuple[int, bytes]] = []
        # writes with no answer to wait for, sent with the COMMIT (one round trip)
        self.at_commit: list[tuple[str, tuple[Any, ...]]] = []
        self.rows: dict[int, Node] = {}  # touched nodes' rows as they stand now
        # the tree as it was at BEGIN, where known without a statement (on a shared
        # catalog, the mirror: brought up to the catalog's stamp at BEGIN, under the
        # locks this transaction holds, so exact there until COMMIT but for its own
        # writes): in the folders `locked` only, or everywhere (None: the whole catalog's)
        self._before = before
        self._locked = locked
        self.wrote = False  # (a transaction that wrote nothing commits nothing)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:  # rows are untyped
        self.wrote = True
        return self.conn.execute(sql, params)

    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An INSERT of one row into a table with an `id` column: the new row's id
        (RETURNING, as SQLite and PostgreSQL both say it; the rows read to the end, so
        no statement is left open at COMMIT)."""
        self.wrote = True
        rows = self.conn.execute(sql + " RETURNING id", params).fetchall()
        return integer(rows[0][0])

    def insert_node(self, sql: str, params: tuple[Any, ...]) -> Node:
        """An INSERT of one node: its row as stored (RETURNING: never read back)."""
        self.wrote = True
        rows = self.conn.execute(sql + f" RETURNING {NODE_COLUMNS}", params).fetchall()
        node = row_to_node(tuple(rows[0]))
        self.known(node)
        return node

    def add_node(self, sql: str, params: tuple[Any, ...], node: Node) -> None:
        """An INSERT of one node whose whole row is known (its id taken ahead): held, as
        `later`, and the row known."""
        self.later(sql, params)
        self.known(node)

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write with no answer to wait for (a server gets it with the next statement
        or the COMMIT)."""
        self.wrote = True
        self.engine.later(sql, params)

    def changed(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An UPDATE, DELETE or INSERT: how many rows it changed (an INSERT ... ON
        CONFLICT DO NOTHING: 0 where the row was there already)."""
        self.wrote = True
        return self.engine.changed(sql, params)

    def exact(self, folder: int) -> bool:
        """Whether the tree as at BEGIN is known here, without a statement, for `folder`'s
        names and the rows of what they name (its lock held, or the whole catalog's)."""
        return self._before is not None and (self._locked is None or folder in self._locked)

    def row(self, node_id: int) -> Node | None:
        """A node's row as this transaction has it, where known without a statement."""
        if node_id in self.rows:
            return self.rows[node_id]
        if node_id in self.touched or node_id in self.gone_nodes or self._before is None:
            return None
        node = self._before.node(node_id)
        if node is None or self._locked is None or node_id in self._locked:
            return node
        # (a file with hard links is changed through folders this one may not hold)
        return node if self.exact(node.parent) and (node.is_dir or node.nlink <= 1) else None

    def primary(self, parent: int, name: bytes) -> Node | None:
        """The node whose own name (not a hard link's) this is, where known without a
        statement: before this transaction wrote anything (None: not known here)."""
        if self.wrote or self._before is None or not self.exact(parent):
            return None
        node = self._before.child(parent, name)
        return node if node is not None and (node.parent, node.name) == (parent, name) else None

    def node_id_ahead(self, parent: int, name: bytes) -> int | None:
        """An id for a new node named so, taken ahead (its INSERT then held: `add_node`)
        where the name is known free without a statement — the tree as at BEGIN has
        none and this transaction wrote nothing yet; None: the INSERT numbers it."""
        if (self.wrote or self._before is None or not self.exact(parent)
                or self._before.child(parent, name) is not None):
            return None
        return self.engine.node_id_ahead()

    @property
    def holds_everything(self) -> bool:
        """Whether this transaction holds the whole catalog (not only some folders): what
        removes a folder with what is below it needs."""
        return self._locked is None

    def known(self, node: Node) -> None:
        """A node this transaction changed, and its row as it stands now."""
        self.touched.add(node.id)
        self.rows[node.id] = node

    def touch(self, node_id: int) -> None:
        """A node this transaction changed by a statement: its row is read back."""
        self.touched.add(node_id)
        self.rows.pop(node_id, None)

    def drop_dentry(self, parent: int, name: bytes) -> None:
        self.gone_dentries.append((parent, name))

    def drop_node(self, node_id: int) -> None:
        self.gone_nodes.add(node_id)
        self.touched.discard(node_id)
        self.rows.pop(node_id, None)

    def collect(self) -> ChangeSet:
        """The touched nodes' rows and every name of each, read back in one statement per
        `COLLECT_CHUNK` nodes (on a server each statement is a round trip)."""
        changes = ChangeSet(gone_nodes=sorted(self.gone_nodes),
                            gone_dentries=list(self.gone_dentries))
        for node_id in sorted(self.rows):
            node = self.rows[node_id]
            changes.nodes.append(node)
            if node.id != node.parent:  # (its hard links' names did not change)
                changes.dentries.append((node.parent, node.name, node.id))
        touched = sorted(self.touched.difference(self.rows))
        for start in range(0, len(touched), COLLECT_CHUNK):
            chunk = touched[start:start + COLLECT_CHUNK]
            self._collect(chunk, changes)
        return changes

    def _collect(self, ids: list[int], changes: ChangeSet) -> None:
        found: set[int] = set()
        for *row, link_parent, link_name in self.conn.execute(
                f"SELECT {NODE_COLUMNS_OF_N}, h.parent, h.name FROM nodes n LEFT JOIN "
                f"hardlinks h ON h.node_id = n.id WHERE n.id IN ({', '.join('?' * len(ids))}) "
                "ORDER BY n.id", tuple(ids)):
            node_id = integer(row[0])
            if node_id not in found:
                found.add(node_id)
                node = row_to_node(tuple(row))
                changes.nodes.append(node)
                if node.id != node.parent:
                    changes.dentries.append((node.parent, node.name, node.id))
            if link_parent is not None:
                changes.dentries.append((integer(link_parent), bytes(link_name), node_id))
        changes.gone_nodes.extend(i for i in ids if i not in found)
