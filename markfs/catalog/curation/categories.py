"""The `categories` and `category_members` tables: a user-defined tree over the files."""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


@dataclass(frozen=True)
class CategoryRow:
    id: int
    parent: int | None  # None: top level
    name: str
    node_id: int  # its folder under /categories


_COLUMNS = "id, parent, name, node_id"


def find(conn: Connection | Txn, parent: int | None, name: str) -> CategoryRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM categories "
                       "WHERE parent IS NOT DISTINCT FROM ? AND name = ?",
                       (parent, name)).fetchone()
    return None if row is None else CategoryRow(*row)


def by_folder(conn: Connection, node_id: int) -> CategoryRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM categories WHERE node_id = ?",
                       (node_id,)).fetchone()
    return None if row is None else CategoryRow(*row)


def all_categories(conn: Connection) -> list[CategoryRow]:
    return [CategoryRow(*r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM categories ORDER BY id")]


def insert(txn: Txn, parent: int | None, name: str, node_id: int) -> int:
    return txn.insert("INSERT INTO categories (parent, name, node_id) VALUES (?, ?, ?)",
                      (parent, name, node_id))


def delete(txn: Txn, category_id: int) -> None:
    """The category, its sub-categories and their assignments (never the files)."""
    txn.execute("DELETE FROM categories WHERE id = ?", (category_id,))


def members(conn: Connection, category_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT node_id FROM category_members WHERE category_id = ? ORDER BY node_id",
        (category_id,))]


def categories_of(conn: Connection, node_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT category_id FROM category_members WHERE node_id = ?", (node_id,))]


def assign(txn: Txn, category_id: int, node_id: int) -> bool:
    return txn.changed("INSERT INTO category_members VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (category_id, node_id)) > 0


def unassign(txn: Txn, category_id: int, node_id: int) -> bool:
    return txn.changed("DELETE FROM category_members WHERE category_id = ? AND node_id = ?",
                       (category_id, node_id)) > 0


def set_folder(txn: Txn, category_id: int, node_id: int) -> None:
    txn.execute("UPDATE categories SET node_id = ? WHERE id = ?", (node_id, category_id))


def dangling_members(conn: Connection | Txn) -> int:
    """Assignments of nodes that are gone (a salvaged catalog can have them)."""
    row = conn.execute("SELECT count(*) FROM category_members WHERE node_id NOT IN "
                       "(SELECT id FROM nodes)").fetchone()
    return int(row[0]) if row else 0


def drop_dangling_members(txn: Txn) -> None:
    txn.execute("DELETE FROM category_members WHERE node_id NOT IN (SELECT id FROM nodes)")

class Categories:
    """Categories and their assignments, read on the catalog's connection (writes: this
    module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, parent: int | None, name: str) -> CategoryRow | None:
        return find(self._conn, parent, name)

    def by_folder(self, node_id: int) -> CategoryRow | None:
        return by_folder(self._conn, node_id)

    def all_categories(self) -> list[CategoryRow]:
        return all_categories(self._conn)

    def members(self, category_id: int) -> list[int]:
        return members(self._conn, category_id)

    def categories_of(self, node_id: int) -> list[int]:
        return categories_of(self._conn, node_id)

    def dangling_members(self) -> int:
        return dangling_members(self._conn)
