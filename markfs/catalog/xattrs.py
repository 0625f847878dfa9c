"""The `xattrs` table: extended attributes set through the mount."""

from __future__ import annotations

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


def get_xattr(conn: Connection, node_id: int, name: bytes) -> bytes | None:
    row = conn.execute("SELECT value FROM xattrs WHERE node_id = ? AND name = ?",
                       (node_id, name)).fetchone()
    return None if row is None else bytes(row[0])


def list_xattrs(conn: Connection, node_id: int) -> list[bytes]:
    return [bytes(r[0]) for r in conn.execute(
        "SELECT name FROM xattrs WHERE node_id = ? ORDER BY name", (node_id,))]


def set_xattr(txn: Txn, node_id: int, name: bytes, value: bytes) -> None:
    txn.execute("INSERT INTO xattrs (node_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (node_id, name) DO UPDATE SET value = excluded.value",
                (node_id, name, value))


def remove_xattr(txn: Txn, node_id: int, name: bytes) -> bool:
    return txn.changed("DELETE FROM xattrs WHERE node_id = ? AND name = ?",
                       (node_id, name)) > 0

class Xattrs:
    """Extended attributes of nodes, read on the catalog's connection (writes: this
    module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_xattr(self, node_id: int, name: bytes) -> bytes | None:
        return get_xattr(self._conn, node_id, name)

    def list_xattrs(self, node_id: int) -> list[bytes]:
        return list_xattrs(self._conn, node_id)
