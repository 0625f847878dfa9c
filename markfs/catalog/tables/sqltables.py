"""The `sql_tables` and `sql_columns` tables: what scans found in SQL sources."""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn
from markfs.columns import integer, maybe_integer


@dataclass(frozen=True)
class TableRow:
    id: int
    source_id: int
    source: str
    schema: str
    name: str
    kind: str
    rows: int | None
    rows_exact: bool
    change_token: str
    managed: bool
    deprecated: bool
    columns: int
    size_bytes: int | None = None


def known_tokens(conn: Connection, source_id: int) -> dict[tuple[str, str], tuple[int, str]]:
    """(schema, table) -> (id, change token) of what the source had at the last scan."""
    return {(str(s), str(t)): (integer(i), str(tok)) for i, s, t, tok in conn.execute(
        "SELECT id, schema_name, table_name, change_token FROM sql_tables WHERE source_id = ?",
        (source_id,))}


def scan_hint(conn: Connection, source_id: int) -> str | None:
    row = conn.execute("SELECT scan_hint FROM sources WHERE id = ?", (source_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def set_scan_hint(txn: Txn, source_id: int, hint: str | None) -> None:
    txn.execute("UPDATE sources SET scan_hint = ? WHERE id = ?", (hint, source_id))


def upsert(txn: Txn, source_id: int, schema: str, name: str, kind: str, rows: int | None,
           rows_exact: bool, token: str, now_ns: int, size: int | None = None) -> int:
    txn.execute(
        "INSERT INTO sql_tables (source_id, schema_name, table_name, kind, row_count, "
        "rows_exact, change_token, scanned_ns, size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (source_id, schema_name, table_name) DO UPDATE SET kind = excluded.kind, "
        "row_count = excluded.row_count, rows_exact = excluded.rows_exact, "
        "change_token = excluded.change_token, scanned_ns = excluded.scanned_ns, "
        "size_bytes = excluded.size_bytes, deprecated_ns = NULL",
        (source_id, schema, name, kind, rows, int(rows_exact), token, now_ns, size))
    row = txn.execute("SELECT id FROM sql_tables WHERE source_id = ? AND schema_name = ? "
                      "AND table_name = ?", (source_id, schema, name)).fetchone()
    return int(row[0])


def touch(txn: Txn, table_id: int, now_ns: int) -> None:
    txn.execute("UPDATE sql_tables SET scanned_ns = ?, deprecated_ns = NULL WHERE id = ?",
                (now_ns, table_id))


def replace_columns(txn: Txn, table_id: int,
                    columns: list[tuple[int, str, str, bool, bool, str | None]]) -> None:
    """Columns as (position, name, type, nullable, primary key, comment)."""
    txn.execute("DELETE FROM sql_columns WHERE table_id = ?", (table_id,))
    for position, name, ctype, nullable, pk, comment in columns:
        txn.execute("INSERT INTO sql_columns (table_id, position, name, type, nullable, "
                    "primary_key, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (table_id, position, name, ctype, int(nullable), int(pk), comment))


def deprecate_missing(txn: Txn, source_id: int, seen: set[int], now_ns: int) -> int:
    """Mark tables the scan did not find (they stay in the catalog); returns how many."""
    rows = txn.execute("SELECT id FROM sql_tables WHERE source_id = ? AND deprecated_ns IS NULL",
                       (source_id,)).fetchall()
    gone = [int(r[0]) for r in rows if int(r[0]) not in seen]
    for table_id in gone:
        txn.execute("UPDATE sql_tables SET deprecated_ns = ? WHERE id = ?", (now_ns, table_id))
    return len(gone)


def list_tables(conn: Connection, source_id: int | None = None,
                table_id: int | None = None) -> list[TableRow]:
    where, params = "", ()  # type: tuple[str, tuple[int, ...]]
    if source_id is not None:
        where, params = "WHERE t.source_id = ?", (source_id,)
    elif table_id is not None:
        where, params = "WHERE t.id = ?", (table_id,)
    return [TableRow(integer(i), integer(sid), str(src), str(schema), str(name), str(kind),
                     maybe_integer(rows), bool(exact), str(token),
                     bool(managed), deprecated is not None, integer(ncols),
                     maybe_integer(size))
            for i, sid, src, schema, name, kind, rows, exact, token, managed, deprecated, ncols,
            size in conn.execute(
                "SELECT t.id, t.source_id, s.name, t.schema_name, t.table_name, t.kind, "
                "t.row_count, t.rows_exact, t.change_token, t.managed, t.deprecated_ns, "
                "(SELECT count(*) FROM sql_columns c WHERE c.table_id = t.id), t.size_bytes "
                f"FROM sql_tables t JOIN sources s ON s.id = t.source_id {where} "
                "ORDER BY s.name, t.schema_name, t.table_name", params)]


def find_table(conn: Connection, source_id: int, schema: str, name: str) -> int | None:
    row = conn.execute("SELECT id FROM sql_tables WHERE source_id = ? AND schema_name = ? "
                       "AND table_name = ?", (source_id, schema, name)).fetchone()
    return None if row is None else integer(row[0])


def get_table(conn: Connection, table_id: int) -> TableRow | None:
    found = list_tables(conn, table_id=table_id)
    return found[0] if found else None


def columns_of(conn: Connection, table_id: int) -> list[tuple[int, str, str, bool, bool,
                                                                 str | None]]:
    """(position, name, type, nullable, primary key, comment) in column order."""
    return [(integer(p), str(n), str(t), bool(nl), bool(pk), None if c is None else str(c))
            for p, n, t, nl, pk, c in conn.execute(
                "SELECT position, name, type, nullable, primary_key, comment FROM sql_columns "
                "WHERE table_id = ? ORDER BY position", (table_id,))]

class SqlTables:
    """Tables and columns of SQL sources, read on the catalog's connection (writes: this
    module's functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def known_tokens(self, source_id: int) -> dict[tuple[str, str], tuple[int, str]]:
        return known_tokens(self._conn, source_id)

    def scan_hint(self, source_id: int) -> str | None:
        return scan_hint(self._conn, source_id)

    def list_tables(self, source_id: int | None = None,
                    table_id: int | None = None) -> list[TableRow]:
        return list_tables(self._conn, source_id, table_id)

    def find_table(self, source_id: int, schema: str, name: str) -> int | None:
        return find_table(self._conn, source_id, schema, name)

    def get_table(self, table_id: int) -> TableRow | None:
        return get_table(self._conn, table_id)

    def columns_of(self, table_id: int) -> list[tuple[int, str, str, bool, bool,
                                                                 str | None]]:
        return columns_of(self._conn, table_id)
