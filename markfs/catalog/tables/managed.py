"""Managed tables: `table_files` (their snapshot files), `column_stats`, deep-scan results."""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn
from markfs.columns import integer


@dataclass(frozen=True)
class TableFile:
    """One file of a managed table's current snapshot, with what its xattrs show."""

    node_id: int
    table_id: int
    file_name: str
    digest: str
    size: int
    rows: int
    change_token: str  # as rendered
    rendered_ns: int
    source: str
    schema: str
    table: str
    current_token: str  # the table's token at its last scan

    @property
    def stale(self) -> bool:
        return self.change_token != self.current_token


@dataclass(frozen=True)
class StaleTable:
    table_id: int
    source: str
    schema: str
    table: str


_FILE_SELECT = (
    "SELECT f.node_id, f.table_id, f.file_name, f.digest, f.size, f.row_count, "
    "f.change_token, f.rendered_ns, s.name, t.schema_name, t.table_name, t.change_token "
    "FROM table_files f JOIN sql_tables t ON t.id = f.table_id "
    "JOIN sources s ON s.id = t.source_id ")


def _file(row: tuple[object, ...]) -> TableFile:
    (node_id, table_id, name, digest, size, rows, token, ns, src, schema, table, cur) = row
    return TableFile(integer(node_id), integer(table_id), str(name), str(digest), integer(size),
                     integer(rows), str(token), integer(ns), str(src), str(schema), str(table),
                     str(cur))


def file_by_node(conn: Connection, node_id: int) -> TableFile | None:
    row = conn.execute(_FILE_SELECT + "WHERE f.node_id = ?", (node_id,)).fetchone()
    return None if row is None else _file(row)


def current_files(conn: Connection) -> list[TableFile]:
    """The current (not retired) files of every table (for fsck)."""
    return [_file(r) for r in conn.execute(_FILE_SELECT + "WHERE f.retired_ns IS NULL "
                                           "ORDER BY f.node_id")]


def add_file(txn: Txn, node_id: int, table_id: int, name: str, digest: str, size: int,
             rows: int, token: str, rendered_ns: int) -> None:
    txn.execute("INSERT INTO table_files (node_id, table_id, file_name, digest, size, "
                "row_count, change_token, rendered_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (node_id, table_id, name, digest, size, rows, token, rendered_ns))


def retire_files(txn: Txn, table_id: int, now_ns: int) -> list[int]:
    """Mark a table's current files retired; returns their node ids (for the caller to
    move out of the table folder)."""
    ids = [int(r[0]) for r in txn.execute(
        "SELECT node_id FROM table_files WHERE table_id = ? AND retired_ns IS NULL",
        (table_id,)).fetchall()]
    txn.execute("UPDATE table_files SET retired_ns = ? WHERE table_id = ? "
                "AND retired_ns IS NULL", (now_ns, table_id))
    return ids


def purge_retired(txn: Txn, before_ns: int) -> list[int]:
    """Forget files retired before `before_ns`; returns their node ids (to delete)."""
    ids = [int(r[0]) for r in txn.execute(
        "SELECT node_id FROM table_files WHERE retired_ns < ?", (before_ns,)).fetchall()]
    txn.execute("DELETE FROM table_files WHERE retired_ns < ?", (before_ns,))
    return ids


def referenced_digests(conn: Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT DISTINCT digest FROM table_files")}


def set_managed(txn: Txn, table_id: int, managed: bool) -> None:
    txn.execute("UPDATE sql_tables SET managed = ? WHERE id = ?", (int(managed), table_id))


def stale_tables(conn: Connection) -> list[StaleTable]:
    """Managed tables whose snapshot was rendered at another change token than the last
    scan recorded (or which have no snapshot at all)."""
    return [StaleTable(integer(i), str(src), str(schema), str(name))
            for i, src, schema, name in conn.execute(
                "SELECT t.id, s.name, t.schema_name, t.table_name FROM sql_tables t "
                "JOIN sources s ON s.id = t.source_id WHERE t.managed = 1 AND NOT EXISTS "
                "(SELECT 1 FROM table_files f WHERE f.table_id = t.id AND f.retired_ns IS NULL"
                " AND f.change_token = t.change_token) ORDER BY s.name, t.schema_name, "
                "t.table_name")]


def stats_tokens(conn: Connection, source_id: int) -> dict[int, str | None]:
    """Table id -> the change token its statistics were computed at (None: never)."""
    return {integer(i): None if tok is None else str(tok) for i, tok in conn.execute(
        "SELECT id, stats_token FROM sql_tables WHERE source_id = ?", (source_id,))}


def save_stats(txn: Txn, table_id: int, token: str, rows: int, sample_json: str,
               when_ns: int,
               columns: list[tuple[int, int, int, bool, str | None, str | None, int | None,
                                   int | None, float | None]]) -> None:
    """Deep-scan results; columns as (position, nulls, distinct, exact, min, max,
    min length, max length, average length)."""
    txn.execute("UPDATE sql_tables SET stats_ns = ?, stats_rows = ?, sample_json = ?, "
                "stats_token = ? WHERE id = ?", (when_ns, rows, sample_json, token, table_id))
    txn.execute("DELETE FROM column_stats WHERE table_id = ?", (table_id,))
    for pos, nulls, distinct, exact, low, high, len_min, len_max, len_avg in columns:
        txn.execute("INSERT INTO column_stats (table_id, position, null_count, distinct_count, "
                    "distinct_exact, min_value, max_value, min_length, max_length, avg_length)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (table_id, pos, nulls, distinct, int(exact), low, high, len_min, len_max,
                     len_avg))


def column_stats(conn: Connection, table_id: int) -> list[tuple[object, ...]]:
    """(column name, nulls, distinct, exact, min, max) per column, in order."""
    return [tuple(r) for r in conn.execute(
        "SELECT c.name, s.null_count, s.distinct_count, s.distinct_exact, s.min_value, "
        "s.max_value FROM column_stats s JOIN sql_columns c ON c.table_id = s.table_id "
        "AND c.position = s.position WHERE s.table_id = ? ORDER BY s.position", (table_id,))]

class ManagedFiles:
    """Managed tables' snapshot files and column statistics, read on the catalog's
    connection (writes: this module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def file_by_node(self, node_id: int) -> TableFile | None:
        return file_by_node(self._conn, node_id)

    def current_files(self) -> list[TableFile]:
        return current_files(self._conn)

    def referenced_digests(self) -> set[str]:
        return referenced_digests(self._conn)

    def stale_tables(self) -> list[StaleTable]:
        return stale_tables(self._conn)

    def stats_tokens(self, source_id: int) -> dict[int, str | None]:
        return stats_tokens(self._conn, source_id)

    def column_stats(self, table_id: int) -> list[tuple[object, ...]]:
        return column_stats(self._conn, table_id)
