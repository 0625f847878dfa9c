"""The `renames` table: folder renames on copy-then-delete stores, until they are whole."""

from __future__ import annotations

import time

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


def begin(txn: Txn, source_id: int, old_path: bytes, new_path: bytes) -> int:
    return txn.insert("INSERT INTO renames (source_id, old_path, new_path, started_ns) "
                      "VALUES (?, ?, ?, ?)", (source_id, old_path, new_path, time.time_ns()))


def finish(txn: Txn, rename_id: int) -> None:
    txn.execute("DELETE FROM renames WHERE id = ?", (rename_id,))


def unfinished(conn: Connection) -> list[tuple[int, int, bytes, bytes]]:
    """(id, source id, old path, new path) of renames a crash interrupted, oldest first."""
    return [(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]))  # type: ignore[arg-type, call-overload]
            for r in conn.execute(
                "SELECT id, source_id, old_path, new_path FROM renames ORDER BY id")]

class Renames:
    """Renames begun on a source and not yet finished, read on the catalog's connection
    (writes: this module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def unfinished(self) -> list[tuple[int, int, bytes, bytes]]:
        return unfinished(self._conn)
