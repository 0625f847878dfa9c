"""`postgresql://user@host:port/db` sources, read through psycopg (v3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa

from markfs.sources.base import ColumnInfo, TableInfo
from markfs.sources.sqlite import quote

# ADBC's PostgreSQL driver reads with COPY ... (FORMAT binary) straight into Arrow
# buffers: several times faster than fetching rows through psycopg, and its batches
# arrive as the server sends them, so memory stays bounded by this hint.
_BATCH_BYTES = 16 * 1024 * 1024

_TABLES = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0), c.relfilenode,
       (SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ','
                          ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
           AND NOT a.attisdropped)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p', 'v', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
 ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attnum - 1, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(a.attnum = ANY (i.indkey), false), col_description(c.oid, a.attnum)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
 WHERE n.nspname = %s AND c.relname = %s
 ORDER BY a.attnum
"""


class PostgresSource:
    def __init__(self, conninfo: str, timeout: float = 10.0) -> None:
        self.conn: Any = psycopg.connect(conninfo, connect_timeout=int(timeout),
                                         autocommit=True)
        self.conninfo = conninfo

    def close(self) -> None:
        self.conn.close()

    def tables(self) -> list[TableInfo]:
        out = []
        for schema, name, kind, tuples, changes, filenode, columns in self.conn.execute(
                _TABLES).fetchall():
            token = hashlib.sha1(f"{filenode}\0{changes}\0{columns}".encode()).hexdigest()
            rows = None if tuples is None or tuples < 0 else int(tuples)
            out.append(TableInfo(schema, name, "view" if kind == "v" else "table", rows,
                                 False, token))
        return out

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        return [ColumnInfo(name=name, type=ctype, nullable=bool(nullable),
                           primary_key=bool(pk), comment=comment, position=int(position))
                for position, name, ctype, nullable, pk, comment
                in self.conn.execute(_COLUMNS, (schema, table)).fetchall()]

    def read_table(self, schema: str, table: str, columns: list[ColumnInfo],
                   batch_rows: int = 65_536) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import adbc_driver_postgresql.dbapi as adbc

        names = ", ".join(quote(c.name) for c in columns)
        conn = adbc.connect(self.conninfo)
        cursor = conn.cursor()
        cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_BYTES)})
        cursor.execute(f"SELECT {names} FROM {quote(schema)}.{quote(table)}")
        reader = cursor.fetch_record_batch()
        return reader.schema, _batches(reader, batch_rows, conn)

    def check(self) -> str:
        version = self.conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}, {len(self.tables())} tables and views"


def _batches(reader: pa.RecordBatchReader, batch_rows: int, conn: Any) -> Iterator[pa.RecordBatch]:
    """The reader's batches cut to at most `batch_rows` rows; closes the connection after."""
    try:
        for batch in reader:
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)
    finally:
        reader.close()
        conn.close()
