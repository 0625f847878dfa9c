"""`postgresql://user@host:port/db` sources, read through psycopg (v3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pyarrow as pa

from markfs.errors import SourceError
from markfs.sql.base import ColumnInfo, TableInfo
from markfs.sql.sqlite import quote

# ADBC's PostgreSQL driver reads with COPY ... (FORMAT binary) straight into Arrow
# buffers: several times faster than fetching rows through psycopg, and its batches
# arrive as the server sends them, so memory stays bounded by this hint.
_BATCH_BYTES = 16 * 1024 * 1024

_TABLES = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint, pg_total_relation_size(c.oid),
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
        self.database: Any = psycopg.connect(conninfo, connect_timeout=int(timeout),
                                         autocommit=True)
        self.conninfo = conninfo

    def close(self) -> None:
        self.database.close()

    def tables(self, known: Mapping[tuple[str, str], str] | None = None,
               hint: str | None = None) -> list[TableInfo]:
        """(`known` and `hint` are not used: every scan asks the server.)"""
        out = []
        for schema, name, kind, tuples, size, changes, filenode, columns in self.database.execute(
                _TABLES).fetchall():
            token = hashlib.sha1(f"{filenode}\0{changes}\0{columns}".encode()).hexdigest()
            rows = None if tuples is None or tuples < 0 else int(tuples)
            out.append(TableInfo(schema, name, "view" if kind == "v" else "table", rows,
                                 False, token, None if kind == "v" else int(size)))
        return out

    def scan_hint(self) -> str | None:
        return None

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        return [ColumnInfo(name=name, type=ctype, nullable=bool(nullable),
                           primary_key=bool(pk), comment=comment, position=int(position))
                for position, name, ctype, nullable, pk, comment
                in self.database.execute(_COLUMNS, (schema, table)).fetchall()]

    def read_table(self, schema: str, table: str, columns: list[ColumnInfo],
                   batch_rows: int = 65_536) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import adbc_driver_postgresql.dbapi as adbc

        names = ", ".join(quote(c.name) for c in columns)
        try:
            conn = adbc.connect(self.conninfo)
            cursor = conn.cursor()
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_BYTES)})
            cursor.execute(f"SELECT {names} FROM {quote(schema)}.{quote(table)}")
            reader = cursor.fetch_record_batch()
        except adbc.Error as exc:
            raise SourceError.of(f"cannot read {schema}.{table} from PostgreSQL", exc) from None
        return _plain_schema(reader.schema), _batches(reader, batch_rows, (cursor, conn))

    def check(self) -> str:
        version = self.database.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}, {len(self.tables())} tables and views"


def _batches(reader: pa.RecordBatchReader, batch_rows: int,
             owners: tuple[Any, Any]) -> Iterator[pa.RecordBatch]:
    """The reader's batches cut to at most `batch_rows` rows. The cursor and connection
    (`owners`) must live as long as the reader: closing either ends its stream."""
    import adbc_driver_manager

    try:
        for batch in reader:
            plain = _plain_batch(batch)
            for start in range(0, plain.num_rows, batch_rows):
                yield plain.slice(start, batch_rows)
    except adbc_driver_manager.Error as exc:
        raise SourceError.of("PostgreSQL stopped answering mid-read", exc) from None
    finally:
        reader.close()
        for owner in owners:
            owner.close()


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Types the driver marks as PostgreSQL-specific (numeric, json, ...) arrive as Arrow
    extension types over text: keep the text, which every writer understands."""
    return pa.schema([f.with_type(f.type.storage_type)
                      if isinstance(f.type, pa.BaseExtensionType) else f for f in schema])


def _plain_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(isinstance(f.type, pa.BaseExtensionType) for f in batch.schema):
        return batch
    columns = [c.storage if isinstance(c.type, pa.BaseExtensionType) else c
               for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=_plain_schema(batch.schema))
