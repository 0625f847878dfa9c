"""The `tags` and `tag_folders` tables: tags of nodes, and the folder of each tag."""

from __future__ import annotations

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


def tags_of(conn: Connection, node_id: int) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT tag FROM tags WHERE node_id = ? ORDER BY tag", (node_id,))]


def nodes_tagged(conn: Connection, tag: str) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT node_id FROM tags WHERE tag = ? ORDER BY node_id", (tag,))]


def all_tags(conn: Connection) -> list[tuple[str, int]]:
    """(tag, number of nodes with it), by tag."""
    return [(t, n) for t, n in conn.execute(
        "SELECT tag, count(*) FROM tags GROUP BY tag ORDER BY tag")]


def add_tag(txn: Txn, node_id: int, tag: str) -> bool:
    return txn.changed("INSERT INTO tags VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (node_id, tag)) > 0


def remove_tag(txn: Txn, node_id: int, tag: str) -> bool:
    return txn.changed("DELETE FROM tags WHERE node_id = ? AND tag = ?", (node_id, tag)) > 0


def folder_of(conn: Connection | Txn, tag: str) -> int | None:
    row = conn.execute("SELECT node_id FROM tag_folders WHERE tag = ?", (tag,)).fetchone()
    return None if row is None else int(row[0])


def tag_of_folder(conn: Connection, node_id: int) -> str | None:
    row = conn.execute("SELECT tag FROM tag_folders WHERE node_id = ?", (node_id,)).fetchone()
    return None if row is None else str(row[0])


def set_folder(txn: Txn, tag: str, node_id: int) -> None:
    txn.execute("INSERT INTO tag_folders VALUES (?, ?)", (tag, node_id))


def unused_folders(txn: Txn) -> list[tuple[str, int]]:
    """Folders of tags no node has any more."""
    return [(t, n) for t, n in txn.execute(
        "SELECT tag, node_id FROM tag_folders WHERE tag NOT IN (SELECT tag FROM tags)")]


def drop_folder(txn: Txn, tag: str) -> None:
    txn.execute("DELETE FROM tag_folders WHERE tag = ?", (tag,))


def all_folders(conn: Connection) -> list[tuple[str, int]]:
    return [(t, n) for t, n in conn.execute("SELECT tag, node_id FROM tag_folders")]


def dangling(conn: Connection | Txn) -> int:
    """Tags of nodes that are gone (a salvaged catalog can have them)."""
    row = conn.execute("SELECT count(*) FROM tags WHERE node_id NOT IN "
                       "(SELECT id FROM nodes)").fetchone()
    return int(row[0]) if row else 0


def drop_dangling(txn: Txn) -> None:
    txn.execute("DELETE FROM tags WHERE node_id NOT IN (SELECT id FROM nodes)")

class Tags:
    """Tags and their folders, read on the catalog's connection (writes: this module's
    functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def tags_of(self, node_id: int) -> list[str]:
        return tags_of(self._conn, node_id)

    def nodes_tagged(self, tag: str) -> list[int]:
        return nodes_tagged(self._conn, tag)

    def all_tags(self) -> list[tuple[str, int]]:
        return all_tags(self._conn)

    def folder_of(self, tag: str) -> int | None:
        return folder_of(self._conn, tag)

    def tag_of_folder(self, node_id: int) -> str | None:
        return tag_of_folder(self._conn, node_id)

    def all_folders(self) -> list[tuple[str, int]]:
        return all_folders(self._conn)

    def dangling(self) -> int:
        return dangling(self._conn)
