"""Node tree queries and changes: every SQL statement about `nodes` and `hardlinks`.

Reads take the connection; writes take a `Txn` and record each node and name
they change, so the mirror sees the transaction whole.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from markfs.catalog.engines import Connection
from markfs.catalog.txn import NODE_COLUMNS, NODE_COLUMNS_OF_N, Txn, row_to_node
from markfs.model import Kind, Node

# readdir cookies: primary names use their node id, extra (hard link) names
# this offset plus the hardlinks row id, so both sequences stay monotonic.
LINK_COOKIE_BASE = 1 << 48


@dataclass(frozen=True)
class NewNode:
    """Attributes of a node to insert; the catalog assigns id and generation."""

    kind: Kind
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    source_id: int | None = None
    remote_path: bytes | None = None
    target: bytes | None = None
    etag: bytes | None = None
    atime_ns: int | None = None  # None: the source keeps no access time (shown as mtime)
    rdev: int = 0  # device number of a device node
    meta_kept: int | None = None  # which of mode/uid/gid came from the source's metadata

    def as_row(self, node_id: int, parent: int, name: bytes, generation: int) -> Node:
        """The node's row once inserted with this id, name and generation."""
        return Node(node_id, parent, name, self.kind, self.mode, self.uid, self.gid,
                    self.size, self.mtime_ns, self.ctime_ns, self.nlink, generation,
                    self.source_id, self.remote_path, self.target, self.etag, self.atime_ns,
                    self.rdev, self.meta_kept)


def get_node(conn: Connection, node_id: int) -> Node | None:
    row = conn.execute(f"SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?", (node_id,)).fetchone()
    return None if row is None else row_to_node(row)


def node_and_stamp(conn: Connection, node_id: int) -> tuple[Node | None, int]:
    """A node's row and the catalog's stamp it was read at (one statement: one snapshot)."""
    row = conn.execute(f"SELECT {NODE_COLUMNS}, (SELECT value FROM meta WHERE key = 'stamp') "
                       "FROM nodes WHERE id = ?", (node_id,)).fetchone()
    return (None, 0) if row is None else (row_to_node(tuple(row[:-1])), int(row[-1]))


def find_child(conn: Connection, parent: int, name: bytes) -> Node | None:
    """The node a name in a directory refers to, through a hard link or not (one
    statement: on a server, one round trip)."""
    row = conn.execute(
        f"SELECT {NODE_COLUMNS} FROM nodes WHERE parent = ? AND name = ? AND id != parent "
        f"UNION ALL SELECT {NODE_COLUMNS_OF_N} FROM hardlinks h JOIN nodes n "
        "ON n.id = h.node_id WHERE h.parent = ? AND h.name = ? LIMIT 1",
        (parent, name, parent, name)).fetchone()
    return None if row is None else row_to_node(row)


def list_children(
    conn: Connection, parent: int, after: int, limit: int
) -> list[tuple[int, bytes, Node]]:
    """Up to `limit` (cookie, name, node) entries of a directory after `after`, stably."""
    out: list[tuple[int, bytes, Node]] = []
    if after < LINK_COOKIE_BASE:
        for row in conn.execute(
                f"SELECT {NODE_COLUMNS} FROM nodes WHERE parent = ? AND id > ? AND id != parent "
                "ORDER BY id LIMIT ?", (parent, after, limit)):
            node = row_to_node(row)
            out.append((node.id, node.name, node))
        if len(out) == limit:
            return out
        after = LINK_COOKIE_BASE
    for link_id, name, node_id in conn.execute(
            "SELECT id, name, node_id FROM hardlinks WHERE parent = ? AND id > ? "
            "ORDER BY id LIMIT ?", (parent, after - LINK_COOKIE_BASE, limit - len(out))):
        linked = get_node(conn, node_id)
        if linked is not None:
            out.append((LINK_COOKIE_BASE + link_id, bytes(name), linked))
    return out


def child_names(conn: Connection, parent: int) -> dict[bytes, Node]:
    """All names of a directory with their nodes (for reconciling a listing)."""
    names = {
        bytes(row[2]): row_to_node(row)
        for row in conn.execute(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE parent = ? AND id != parent", (parent,))
    }
    for name, node_id in conn.execute(
            "SELECT name, node_id FROM hardlinks WHERE parent = ?", (parent,)):
        node = get_node(conn, node_id)
        if node is not None:
            names[bytes(name)] = node
    return names


def node_by_remote(conn: Connection, source_id: int, remote_path: bytes) -> Node | None:
    row = conn.execute(
        f"SELECT {NODE_COLUMNS} FROM nodes WHERE source_id = ? AND remote_path = ?",
        (source_id, remote_path)).fetchone()
    return None if row is None else row_to_node(row)


def iter_nodes(conn: Connection) -> Iterator[Node]:
    for row in conn.execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY id"):
        yield row_to_node(row)


def iter_hardlinks(conn: Connection) -> Iterator[tuple[int, bytes, int]]:
    for parent, name, node_id in conn.execute("SELECT parent, name, node_id FROM hardlinks"):
        yield parent, bytes(name), node_id


def count_nodes(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) FROM nodes").fetchone()
    return int(row[0]) if row else 0


def orphan_ids(conn: Connection) -> list[int]:
    """Nodes whose parent row does not exist."""
    return [r[0] for r in conn.execute(
        "SELECT n.id FROM nodes n LEFT JOIN nodes p ON p.id = n.parent WHERE p.id IS NULL")]


def insert_node(txn: Txn, parent: int, name: bytes, new: NewNode, *,
                generation: int, node_id: int | None = None) -> int:
    """A new node: its id (given; taken ahead from the catalog's sequence where the name
    is known to be free; else numbered by the INSERT, which returns its row and, where
    another host made the name first, fails at once: EEXIST)."""
    values = (parent, name, new.kind.value, new.mode, new.uid, new.gid, new.size,
              new.mtime_ns, new.ctime_ns, new.nlink, generation, new.source_id,
              new.remote_path, new.target, new.etag, new.atime_ns, new.rdev, new.meta_kept)
    ahead = node_id if node_id is not None else txn.node_id_ahead(parent, name)
    if ahead is None:
        return txn.insert_node(f"INSERT INTO nodes ({_INSERTED}) VALUES ({_MARKS})",
                               values).id
    # every column is known: the row is this transaction's without an answer (a server
    # gets the INSERT with the next statement or the COMMIT)
    txn.add_node(f"INSERT INTO nodes (id, {_INSERTED}) VALUES (?, {_MARKS})",
                 (ahead, *values), new.as_row(ahead, parent, name, generation))
    return ahead


_INSERTED = ("parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink, generation, "
             "source_id, remote_path, target, etag, atime_ns, rdev, meta_kept")
_MARKS = ", ".join("?" * 18)


_ATTR_FIELDS = frozenset(
    {"mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "nlink", "target",
     "etag", "atime_ns", "rdev", "meta_kept"})


def update_node(txn: Txn, node_id: int, **fields: int | bytes | None) -> None:
    """Set attribute columns of one node."""
    if not fields:
        return
    unknown = set(fields) - _ATTR_FIELDS
    if unknown:
        raise ValueError(f"not an attribute column: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql, params = f"UPDATE nodes SET {assignments} WHERE id = ?", (*fields.values(), node_id)
    before = txn.row(node_id)
    if before is None:
        txn.execute(sql, params)
        txn.touch(node_id)
        return
    txn.later(sql, params)  # (its row known: nothing to wait for, nothing to read back)
    txn.known(before.with_(**fields))


def subtree_ids(conn: Connection | Txn, root: int) -> list[int]:
    """The ids of a node and all nodes below it, deepest first."""
    rows = conn.execute(
        "WITH RECURSIVE below(id, depth) AS (SELECT CAST(? AS BIGINT), 0 UNION ALL "
        "SELECT n.id, b.depth + 1 FROM nodes n JOIN below b ON n.parent = b.id "
        "WHERE n.id != n.parent) SELECT id FROM below ORDER BY depth DESC", (root,))
    return [r[0] for r in rows]


def delete_subtree(txn: Txn, node_id: int) -> None:
    """Remove a node with everything below it and every name that points into it."""
    for nid in subtree_ids(txn, node_id):
        row: Any = txn.execute("SELECT parent, name FROM nodes WHERE id = ?", (nid,)).fetchone()
        if row is None:
            continue
        for parent, name in txn.execute(
                "SELECT parent, name FROM hardlinks WHERE node_id = ?", (nid,)).fetchall():
            txn.drop_dentry(parent, bytes(name))
        for parent, name in txn.execute(
                "SELECT parent, name FROM hardlinks WHERE parent = ?", (nid,)).fetchall():
            txn.execute("DELETE FROM hardlinks WHERE parent = ? AND name = ?", (parent, name))
        txn.execute("DELETE FROM nodes WHERE id = ?", (nid,))
        txn.drop_dentry(row[0], bytes(row[1]))
        txn.drop_node(nid)


def remove_name(txn: Txn, parent: int, name: bytes) -> int | None:
    """Remove one name; the node goes with its last name. Returns the id if it went."""
    known = txn.primary(parent, name)
    if known is not None and not known.is_dir:
        return _remove_file_name(txn, known.id, parent, name)
    link = txn.execute("SELECT node_id FROM hardlinks WHERE parent = ? AND name = ?",
                       (parent, name)).fetchone()
    if link is not None:
        txn.execute("DELETE FROM hardlinks WHERE parent = ? AND name = ?", (parent, name))
        txn.drop_dentry(parent, name)
        txn.touch(link[0])
        return None
    row = txn.execute("SELECT id, mode FROM nodes WHERE parent = ? AND name = ? AND id != parent",
                      (parent, name)).fetchone()
    if row is None:
        return None
    if not stat.S_ISDIR(row[1]):
        return _remove_file_name(txn, int(row[0]), parent, name)
    delete_subtree(txn, int(row[0]))
    return int(row[0])


def _remove_file_name(txn: Txn, node_id: int, parent: int, name: bytes) -> int | None:
    """Remove the own name of a file (not a folder): the file goes unless a hard link
    survives, which then becomes its own name (the inode stays)."""
    heir: Any = txn.execute("SELECT id, parent, name, remote_path FROM hardlinks WHERE node_id = ? "
                            "ORDER BY id LIMIT 1", (node_id,)).fetchone()
    txn.drop_dentry(parent, name)
    if heir is None:
        txn.later("DELETE FROM nodes WHERE id = ?", (node_id,))
        txn.drop_node(node_id)
        return node_id
    txn.execute("DELETE FROM hardlinks WHERE id = ?", (heir[0],))
    txn.execute("UPDATE nodes SET parent = ?, name = ?, remote_path = ? WHERE id = ?",
                (heir[1], heir[2], heir[3], node_id))
    txn.touch(node_id)
    return None


def add_hardlink(txn: Txn, node_id: int, parent: int, name: bytes, remote_path: bytes) -> None:
    txn.execute("INSERT INTO hardlinks (parent, name, node_id, remote_path) VALUES (?, ?, ?, ?)",
                (parent, name, node_id, remote_path))
    txn.touch(node_id)


def move_name(txn: Txn, parent: int, name: bytes, new_parent: int, new_name: bytes,
              new_remote: bytes | None) -> None:
    """Rename one name (the target name must be free); paths below a directory follow."""
    known = txn.primary(parent, name)
    if known is not None:
        _move_known(txn, known, new_parent, new_name, new_remote)
        return
    link: Any = txn.execute("SELECT id, node_id FROM hardlinks WHERE parent = ? AND name = ?",
                            (parent, name)).fetchone()
    if link is not None:
        txn.execute("UPDATE hardlinks SET parent = ?, name = ?, remote_path = ? WHERE id = ?",
                    (new_parent, new_name, new_remote, link[0]))
        txn.drop_dentry(parent, name)
        txn.touch(link[1])
        return
    row: Any = txn.execute(
        "SELECT id, source_id, remote_path, mode FROM nodes WHERE parent = ? AND name = ? "
        "AND id != parent", (parent, name)).fetchone()
    if row is None:
        raise KeyError(name)
    node_id, source_id, old_remote, mode = row
    txn.execute("UPDATE nodes SET parent = ?, name = ?, remote_path = ? WHERE id = ?",
                (new_parent, new_name, new_remote, node_id))
    txn.drop_dentry(parent, name)
    txn.touch(node_id)
    if stat.S_ISDIR(mode) and old_remote is not None and new_remote is not None:
        _rebase_paths(txn, source_id, bytes(old_remote), new_remote)


def _move_known(txn: Txn, node: Node, new_parent: int, new_name: bytes,
                new_remote: bytes | None) -> None:
    """`move_name` of a node whose own name the transaction knows: no statement waited
    for but a folder's paths below."""
    txn.later("UPDATE nodes SET parent = ?, name = ?, remote_path = ? WHERE id = ?",
              (new_parent, new_name, new_remote, node.id))
    txn.drop_dentry(node.parent, node.name)
    txn.known(node.with_(parent=new_parent, name=new_name, remote_path=new_remote))
    if node.is_dir and node.source_id is not None and node.remote_path is not None \
            and new_remote is not None:
        _rebase_paths(txn, node.source_id, node.remote_path, new_remote)


def _rebase_paths(txn: Txn, source_id: int, old: bytes, new: bytes) -> None:
    """Rewrite remote paths below a moved directory: old/... becomes new/...

    Done row by row in Python: SQL's `||` would turn the BLOB paths into TEXT.
    """
    low, high = old + b"/", old + b"0"  # b"0" sorts right after b"/"
    cut = len(old)
    rows = txn.execute(
        "SELECT id, remote_path FROM nodes WHERE source_id = ? AND remote_path >= ? "
        "AND remote_path < ?", (source_id, low, high)).fetchall()
    for node_id, path in rows:
        txn.execute("UPDATE nodes SET remote_path = ? WHERE id = ?",
                    (new + bytes(path)[cut:], node_id))
        txn.touch(node_id)
    links = txn.execute(
        "SELECT h.id, h.remote_path FROM hardlinks h JOIN nodes n ON n.id = h.node_id "
        "WHERE n.source_id = ? AND h.remote_path >= ? AND h.remote_path < ?",
        (source_id, low, high)).fetchall()
    for link_id, path in links:
        txn.execute("UPDATE hardlinks SET remote_path = ? WHERE id = ?",
                    (new + bytes(path)[cut:], link_id))

class Nodes:
    """The node tree's rows, read on the catalog's connection (writes: this module's
    functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_node(self, node_id: int) -> Node | None:
        return get_node(self._conn, node_id)

    def find_child(self, parent: int, name: bytes) -> Node | None:
        return find_child(self._conn, parent, name)

    def node_and_stamp(self, node_id: int) -> tuple[Node | None, int]:
        return node_and_stamp(self._conn, node_id)

    def list_children(self, parent: int, after: int, limit: int) -> list[tuple[int, bytes, Node]]:
        return list_children(self._conn, parent, after, limit)

    def child_names(self, parent: int) -> dict[bytes, Node]:
        return child_names(self._conn, parent)

    def node_by_remote(self, source_id: int, remote_path: bytes) -> Node | None:
        return node_by_remote(self._conn, source_id, remote_path)

    def iter_nodes(self) -> Iterator[Node]:
        return iter_nodes(self._conn)

    def iter_hardlinks(self) -> Iterator[tuple[int, bytes, int]]:
        return iter_hardlinks(self._conn)

    def count_nodes(self) -> int:
        return count_nodes(self._conn)

    def orphan_ids(self) -> list[int]:
        return orphan_ids(self._conn)

    def subtree_ids(self, root: int) -> list[int]:
        return subtree_ids(self._conn, root)
