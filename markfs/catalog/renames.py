"""The `renames` table: folder renames on copy-then-delete stores, until they are whole."""

from __future__ import annotations

import time

import apsw

from markfs.catalog.db import Txn


def begin(txn: Txn, source_id: int, old_path: bytes, new_path: bytes) -> int:
    txn.execute("INSERT INTO renames (source_id, old_path, new_path, started_ns) "
                "VALUES (?, ?, ?, ?)", (source_id, old_path, new_path, time.time_ns()))
    return int(txn.conn.last_insert_rowid())


def finish(txn: Txn, rename_id: int) -> None:
    txn.execute("DELETE FROM renames WHERE id = ?", (rename_id,))


def unfinished(conn: apsw.Connection) -> list[tuple[int, int, bytes, bytes]]:
    """(id, source id, old path, new path) of renames a crash interrupted, oldest first."""
    return [(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]))  # type: ignore[arg-type, call-overload]
            for r in conn.execute(
                "SELECT id, source_id, old_path, new_path FROM renames ORDER BY id")]
