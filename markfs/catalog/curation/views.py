"""The `views`, `view_rules` and `view_pins` tables: what each view gathers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


@dataclass(frozen=True)
class ViewRow:
    id: int
    name: str
    node_id: int  # the view's folder under /views
    landing_source_id: int | None  # where files created in the view go (None: nowhere)
    landing_path: str  # folder inside the landing source


@dataclass(frozen=True)
class Rule:
    source_id: int
    glob: str


_COLUMNS = "id, name, node_id, landing_source_id, coalesce(landing_path, '')"


def _row(row: tuple[int, str, int, int | None, str]) -> ViewRow:
    return ViewRow(*row)


def all_views(conn: Connection) -> list[ViewRow]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM views ORDER BY name")]


def get_view(conn: Connection, name: str) -> ViewRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM views WHERE name = ?", (name,)).fetchone()
    return None if row is None else _row(row)


def view_of_folder(conn: Connection, node_id: int) -> ViewRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM views WHERE node_id = ?", (node_id,)).fetchone()
    return None if row is None else _row(row)


def rules_of(conn: Connection, view_id: int) -> list[Rule]:
    return [Rule(s, g) for s, g in conn.execute(
        "SELECT source_id, glob FROM view_rules WHERE view_id = ? ORDER BY position",
        (view_id,))]


def pins_of(conn: Connection, view_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT node_id FROM view_pins WHERE view_id = ? ORDER BY node_id", (view_id,))]


def insert_view(txn: Txn, name: str, node_id: int, landing: tuple[int, str] | None,
                rules: list[Rule]) -> int:
    source_id, path = landing if landing is not None else (None, None)
    view_id = txn.insert("INSERT INTO views (name, node_id, landing_source_id, landing_path, "
                         "created_ns) VALUES (?, ?, ?, ?, ?)",
                         (name, node_id, source_id, path, time.time_ns()))
    for position, rule in enumerate(rules):
        txn.execute("INSERT INTO view_rules VALUES (?, ?, ?, ?)",
                    (view_id, position, rule.source_id, rule.glob))
    return view_id


def delete_view(txn: Txn, view_id: int) -> None:
    txn.execute("DELETE FROM views WHERE id = ?", (view_id,))


def pin(txn: Txn, view_id: int, node_id: int) -> bool:
    return txn.changed("INSERT INTO view_pins VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (view_id, node_id)) > 0


def unpin(txn: Txn, view_id: int, node_id: int) -> bool:
    return txn.changed("DELETE FROM view_pins WHERE view_id = ? AND node_id = ?",
                       (view_id, node_id)) > 0


def set_folder(txn: Txn, view_id: int, node_id: int) -> None:
    txn.execute("UPDATE views SET node_id = ? WHERE id = ?", (node_id, view_id))


def dangling_pins(conn: Connection | Txn) -> int:
    """Pins of nodes that are gone (a salvaged catalog can have them)."""
    row = conn.execute("SELECT count(*) FROM view_pins WHERE node_id NOT IN "
                       "(SELECT id FROM nodes)").fetchone()
    return int(row[0]) if row else 0


def drop_dangling_pins(txn: Txn) -> None:
    txn.execute("DELETE FROM view_pins WHERE node_id NOT IN (SELECT id FROM nodes)")

class Views:
    """Views, their rules and pins, read on the catalog's connection (writes: this module's
    functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def all_views(self) -> list[ViewRow]:
        return all_views(self._conn)

    def get_view(self, name: str) -> ViewRow | None:
        return get_view(self._conn, name)

    def view_of_folder(self, node_id: int) -> ViewRow | None:
        return view_of_folder(self._conn, node_id)

    def rules_of(self, view_id: int) -> list[Rule]:
        return rules_of(self._conn, view_id)

    def pins_of(self, view_id: int) -> list[int]:
        return pins_of(self._conn, view_id)

    def dangling_pins(self) -> int:
        return dangling_pins(self._conn)
