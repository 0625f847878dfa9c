"""`postgresql://user@host:port/db` sources, read through psycopg (v3)."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from markfs.sources.base import ColumnInfo, TableInfo

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

    def check(self) -> str:
        version = self.conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}, {len(self.tables())} tables and views"
