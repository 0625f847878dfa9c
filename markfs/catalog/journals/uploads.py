"""The `uploads` table: the journal of files waiting to be written back to their source."""

from __future__ import annotations

import time
from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn
from markfs.columns import blob, integer, maybe_integer, maybe_text, text


@dataclass(frozen=True)
class Upload:
    id: int
    node_id: int
    source_id: int
    remote_path: bytes
    staging: str
    size: int
    queued_ns: int
    attempts: int
    last_error: str | None
    owner: str | None = None
    parked_ns: int | None = None


_COLUMNS = ("id, node_id, source_id, remote_path, staging, size, queued_ns, attempts, "
            "last_error, owner, parked_ns")


def _row(row: tuple[object, ...]) -> Upload:
    (uid, node_id, source_id, remote, staging, size, queued, attempts, error, owner,
     parked) = row
    return Upload(integer(uid), integer(node_id), integer(source_id), blob(remote),
                  text(staging), integer(size), integer(queued), integer(attempts),
                  maybe_text(error), maybe_text(owner), maybe_integer(parked))


class Uploads:
    """The journal of files waiting to be written back to their source: read on the
    catalog's connection, written inside a transaction (`txn`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def enqueue(self, txn: Txn, node_id: int, source_id: int, remote_path: bytes,
                staging: str, size: int, owner: str) -> int:
        return txn.insert(
            "INSERT INTO uploads (node_id, source_id, remote_path, staging, size, queued_ns, "
            "owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (node_id, source_id, remote_path, staging, size, time.time_ns(), owner))

    def pending(self, owner: str | None = None) -> list[Upload]:
        """Rows still to send (not parked): all of them, or those of one daemon."""
        if owner is None:
            return [_row(r) for r in self._conn.execute(
                f"SELECT {_COLUMNS} FROM uploads WHERE parked_ns IS NULL ORDER BY id")]
        return [_row(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE parked_ns IS NULL AND owner = ? ORDER BY id",
            (owner,))]

    def count_of_source(self, source_id: int) -> int:
        """Journal rows of a source, waiting or parked: files not on it yet."""
        row = self._conn.execute("SELECT count(*) FROM uploads WHERE source_id = ?",
                           (source_id,)).fetchone()
        return int(row[0]) if row else 0

    def every_row(self) -> list[Upload]:
        return [_row(r) for r in self._conn.execute(f"SELECT {_COLUMNS} FROM uploads ORDER BY id")]

    def parked(self) -> list[Upload]:
        return [_row(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE parked_ns IS NOT NULL ORDER BY id")]

    def by_host(self) -> dict[str, tuple[int, int]]:
        """(number, bytes) of rows still to send per host of a shared catalog ('' for rows
        whose owner names none: a catalog of one host)."""
        found: dict[str, tuple[int, int]] = {}
        for owner, size in self._conn.execute(
                "SELECT owner, size FROM uploads WHERE parked_ns IS NULL"):
            host = str(owner or "").partition("@")[2]
            count, total = found.get(host, (0, 0))
            found[host] = (count + 1, total + integer(size))
        return found

    def owners(self) -> set[str | None]:
        """Every daemon that owns a row still to send (None: rows no daemon owns)."""
        return {None if r[0] is None else str(r[0]) for r in self._conn.execute(
            "SELECT DISTINCT owner FROM uploads WHERE parked_ns IS NULL")}

    def adopt(self, txn: Txn, owner: str, previous: str | None) -> list[int]:
        """Take over the rows of a daemon that is gone; returns their ids."""
        where = "owner IS NULL" if previous is None else "owner = ?"
        args: tuple[object, ...] = () if previous is None else (previous,)
        ids = [int(r[0]) for r in txn.execute(
            f"SELECT id FROM uploads WHERE {where} AND parked_ns IS NULL", args).fetchall()]
        txn.execute(f"UPDATE uploads SET owner = ? WHERE {where} AND parked_ns IS NULL",
                    (owner, *args))
        return ids

    def park(self, txn: Txn, upload_id: int, reason: str) -> None:
        txn.execute("UPDATE uploads SET parked_ns = ?, last_error = ? WHERE id = ?",
                    (time.time_ns(), reason[:500], upload_id))

    def get(self, upload_id: int) -> Upload | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM uploads WHERE id = ?",
                                 (upload_id,)).fetchone()
        return None if row is None else _row(row)

    def for_node(self, node_id: int, owner: str) -> list[Upload]:
        """One daemon's rows of a file still to send, oldest first."""
        return [_row(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE node_id = ? AND owner = ? "
            "AND parked_ns IS NULL ORDER BY id", (node_id, owner))]

    def count(self, owner: str | None = None) -> tuple[int, int]:
        """(number, bytes) of uploads still to do (not parked): all, or one daemon's."""
        sql = ("SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM uploads "
               "WHERE parked_ns IS NULL")
        row = (self._conn.execute(sql).fetchone() if owner is None
               else self._conn.execute(sql + " AND owner = ?", (owner,)).fetchone())
        return (integer(row[0]), integer(row[1])) if row else (0, 0)

    def done(self, txn: Txn, upload_id: int) -> None:
        txn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def failed(self, txn: Txn, upload_id: int, error: str) -> None:
        txn.execute("UPDATE uploads SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                    (error[:500], upload_id))

    def retarget(self, txn: Txn, node_id: int, remote_path: bytes) -> None:
        """The file was renamed: its pending uploads go to the new path."""
        txn.later("UPDATE uploads SET remote_path = ? WHERE node_id = ?", (remote_path, node_id))

    def retarget_tree(self, txn: Txn, source_id: int, old: bytes, new: bytes) -> None:
        """A folder was renamed: pending uploads below it follow."""
        rows = txn.execute(
            "SELECT id, remote_path FROM uploads WHERE source_id = ? AND remote_path >= ? "
            "AND remote_path < ?", (source_id, old + b"/", old + b"0")).fetchall()
        for upload_id, path in rows:
            txn.execute("UPDATE uploads SET remote_path = ? WHERE id = ?",
                        (new + bytes(path)[len(old):], upload_id))

    def drop_for_node(self, txn: Txn, node_id: int) -> list[str]:
        """Forget a file's pending uploads (it was deleted); returns their staged files."""
        staged = [str(r[0]) for r in txn.execute(
            "SELECT staging FROM uploads WHERE node_id = ?", (node_id,)).fetchall()]
        txn.execute("DELETE FROM uploads WHERE node_id = ?", (node_id,))
        return staged
