"""`prefix_stats` and `structured_files`: what scans found in file sources."""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn
from markfs.columns import integer, maybe_integer


@dataclass(frozen=True)
class FoundFile:
    """A structured file as a level-1 scan lists it."""

    path: str
    identity: str
    size: int
    format: str


@dataclass(frozen=True)
class StructuredFile:
    id: int
    path: str
    identity: str
    size: int
    format: str
    rows: int | None
    rows_exact: bool
    schema_json: str | None
    error: str | None
    deprecated: bool
    scanned: bool  # statistics are of the current identity


def replace_prefixes(txn: Txn, source_id: int, prefixes: dict[str, tuple[int, int]],
                     now_ns: int) -> None:
    txn.execute("DELETE FROM prefix_stats WHERE source_id = ?", (source_id,))
    for prefix, (objects, size) in sorted(prefixes.items()):
        txn.execute("INSERT INTO prefix_stats (source_id, prefix, objects, bytes, scanned_ns) "
                    "VALUES (?, ?, ?, ?, ?)", (source_id, prefix, objects, size, now_ns))


def prefixes(conn: Connection, source_id: int) -> list[tuple[str, int, int]]:
    return [(str(p), integer(o), integer(b)) for p, o, b in conn.execute(
        "SELECT prefix, objects, bytes FROM prefix_stats WHERE source_id = ? ORDER BY prefix",
        (source_id,))]


def record_found(txn: Txn, source_id: int, found: list[FoundFile], now_ns: int) -> int:
    """Upsert what the scan listed; mark the rest deprecated. Returns how many were."""
    for f in found:
        txn.execute(
            "INSERT INTO structured_files (source_id, path, identity, size, format, seen_ns) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source_id, path) DO UPDATE SET "
            "identity = excluded.identity, size = excluded.size, format = excluded.format, "
            "seen_ns = excluded.seen_ns, deprecated_ns = NULL",
            (source_id, f.path, f.identity, f.size, f.format, now_ns))
    return txn.changed("UPDATE structured_files SET deprecated_ns = ? WHERE source_id = ? "
                       "AND seen_ns < ? AND deprecated_ns IS NULL", (now_ns, source_id, now_ns))


def save_facts(txn: Txn, file_id: int, identity: str, rows: int | None, exact: bool,
               schema_json: str | None, stats_json: str | None, error: str | None) -> None:
    txn.execute("UPDATE structured_files SET scanned_identity = ?, row_count = ?, "
                "rows_exact = ?, schema_json = ?, stats_json = ?, error = ? WHERE id = ?",
                (identity, rows, int(exact), schema_json, stats_json, error, file_id))


def list_files(conn: Connection, source_id: int) -> list[StructuredFile]:
    return [StructuredFile(integer(i), str(p), str(ident), integer(size), str(fmt),
                           maybe_integer(rows), bool(exact),
                           None if sj is None else str(sj), None if err is None else str(err),
                           dep is not None, scanned == ident)
            for i, p, ident, size, fmt, rows, exact, sj, err, dep, scanned in conn.execute(
                "SELECT id, path, identity, size, format, row_count, rows_exact, schema_json, "
                "error, deprecated_ns, scanned_identity FROM structured_files "
                "WHERE source_id = ? ORDER BY path", (source_id,))]

class FileScans:
    """Structured files found by scans of file sources, read on the catalog's connection
    (writes: this module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def prefixes(self, source_id: int) -> list[tuple[str, int, int]]:
        return prefixes(self._conn, source_id)

    def list_files(self, source_id: int) -> list[StructuredFile]:
        return list_files(self._conn, source_id)
