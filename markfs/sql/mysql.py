"""`mysql://user@host:port/db` sources (MySQL and MariaDB), read through PyMySQL.

Rows stream through an unbuffered server-side cursor (`SSCursor`), `batch_rows`
at a time, so a table of any size renders in bounded memory. PyMySQL is pure
Python: the compiled MySQL connectors either need client headers at install
time or, as wheels, a newer OpenSSL than Debian 12 has; see docs/architecture.md.
Passwords come from MYSQL_PWD or ~/.my.cnf, never from the URL.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from markfs.errors import SourceError
from markfs.sql.base import ColumnInfo, MysqlLocation, TableInfo

SYSTEM_SCHEMAS = ("information_schema", "mysql", "performance_schema", "sys")

SETTLE_S = 2.0  # update times are whole seconds: younger ones may still move
_TABLES = """
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH,
       AUTO_INCREMENT,
       CREATE_TIME, UPDATE_TIME,
       (SELECT GROUP_CONCAT(CONCAT(c.COLUMN_NAME, ':', c.COLUMN_TYPE)
                            ORDER BY c.ORDINAL_POSITION SEPARATOR ',')
          FROM information_schema.COLUMNS c
         WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME)
  FROM information_schema.TABLES t
 WHERE {where}
 ORDER BY TABLE_SCHEMA, TABLE_NAME
"""

_COLUMNS = """
SELECT ORDINAL_POSITION - 1, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES',
       COLUMN_KEY = 'PRI', COLUMN_COMMENT
  FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
 ORDER BY ORDINAL_POSITION
"""


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def connect(location: MysqlLocation, timeout: float = 10.0, streaming: bool = False) -> Any:
    import pymysql
    import pymysql.cursors

    options: dict[str, Any] = {}
    if "MYSQL_PWD" in os.environ:
        options["password"] = os.environ["MYSQL_PWD"]
    elif (Path.home() / ".my.cnf").exists():
        options["read_default_file"] = str(Path.home() / ".my.cnf")
    return pymysql.connect(
        host=location.host, port=location.port, user=location.user,
        database=location.database, connect_timeout=int(timeout), read_timeout=300,
        charset="utf8mb4", autocommit=True, binary_prefix=False,
        cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
        **options)


class MysqlSource:
    def __init__(self, location: MysqlLocation) -> None:
        self.location = location
        self.database = connect(location)

    def close(self) -> None:
        self.database.close()

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self.database.cursor() as cursor:
            cursor.execute(sql, params or None)  # (None: no %-formatting of names)
            return list(cursor.fetchall())

    def tables(self, known: Mapping[tuple[str, str], str] | None = None,
               hint: str | None = None) -> list[TableInfo]:
        """(`known` and `hint` are not used: every scan asks the server.)"""
        params: tuple[str, ...] = SYSTEM_SCHEMAS
        where = "TABLE_SCHEMA NOT IN (%s, %s, %s, %s)"
        if self.location.database is not None:
            where, params = "TABLE_SCHEMA = %s", (self.location.database,)
        rows, now = self._settled_tables(_TABLES.format(where=where), params)
        tokens = {(str(r[0]), str(r[1])): self._token(r, now) for r in rows if r[2] != "VIEW"}
        everything = hashlib.sha1("".join(sorted(tokens.values())).encode()).hexdigest()
        out = []
        for schema, name, kind, count, size, index, _auto, _created, _updated, columns in rows:
            token = tokens.get((str(schema), str(name))) or hashlib.sha1(  # a view: with
                f"{columns}\0{everything}".encode()).hexdigest()      # any table it reads
            out.append(TableInfo(str(schema), str(name),
                                 "view" if kind == "VIEW" else "table",
                                 None if count is None else int(count), False, token,
                                 None if size is None else int(size) + int(index or 0)))
        return out

    def _settled_tables(self, sql: str, params: tuple[str, ...]
                        ) -> tuple[list[tuple[Any, ...]], Any]:
        """The tables, read once no update time is within the last SETTLE_S seconds of
        the server's clock (waiting that out once): update times are whole seconds, so
        a change in the same second as a read would otherwise go unseen."""
        for attempt in (1, 2):
            now = self._query("SELECT NOW()")[0][0]
            rows = self._query(sql, params)
            youngest = min(((now - r[8]).total_seconds() for r in rows if r[8] is not None),
                           default=SETTLE_S)
            if youngest >= SETTLE_S or attempt == 2:
                return rows, now
            time.sleep(SETTLE_S - youngest)
        raise AssertionError("unreachable")

    def _token(self, row: tuple[Any, ...], now: Any) -> str:
        """InnoDB keeps no change counter. Its update time (whole seconds, kept in memory),
        row estimate, data size, next auto-increment value and column list change with
        the table. A table updated within SETTLE_S of this read even after waiting (a
        busy one) has CHECKSUM TABLE (a read of every row) in its token too."""
        schema, name, _kind, count, size, _index, auto, created, updated, columns = row
        parts = [created, updated, count, size, auto, columns]
        if updated is not None and (now - updated).total_seconds() < SETTLE_S:
            parts += self._query(f"CHECKSUM TABLE {quote(schema)}.{quote(name)}")[0][1:]
        return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()

    def scan_hint(self) -> str | None:
        return None

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        return [ColumnInfo(name=str(name), type=str(ctype), nullable=bool(nullable),
                           primary_key=bool(pk), comment=str(comment) or None,
                           position=int(position))
                for position, name, ctype, nullable, pk, comment
                in self._query(_COLUMNS, (schema, table))]

    def read_table(self, schema: str, table: str, columns: list[ColumnInfo],
                   batch_rows: int = 65_536) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        arrow = pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable)
                           for c in columns])
        names = ", ".join(quote(c.name) for c in columns)
        return arrow, self._stream(f"SELECT {names} FROM {quote(schema)}.{quote(table)}",
                                   arrow, batch_rows)

    def _stream(self, sql: str, schema: pa.Schema,
                batch_rows: int) -> Iterator[pa.RecordBatch]:
        import pymysql

        conn = connect(self.location, streaming=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                while rows := list(itertools.islice(cursor, batch_rows)):
                    yield _batch(rows, schema)
        except pymysql.Error as exc:
            raise SourceError.of("MySQL stopped answering mid-read", exc) from None
        finally:
            conn.close()

    def check(self) -> str:
        version = self._query("SELECT VERSION()")[0][0]
        return f"MySQL/MariaDB {version}, {len(self.tables())} tables and views"


_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


def arrow_type(column_type: str) -> pa.DataType:
    """MySQL's COLUMN_TYPE (e.g. 'int(11) unsigned', 'decimal(12,2)') as an Arrow type."""
    t = column_type.lower()
    base = t.split("(")[0].split(" ")[0]
    if base in ("tinyint", "smallint", "mediumint", "int", "integer", "year"):
        return pa.int64()
    if base == "bigint":
        return pa.uint64() if "unsigned" in t else pa.int64()
    if base in ("float", "double", "real"):
        return pa.float64()
    if base in ("decimal", "numeric"):
        found = _DECIMAL.match(t.replace(" ", ""))
        precision, scale = (int(found[1]), int(found[2])) if found else (10, 0)
        return pa.decimal128(precision, scale) if precision <= 38 else pa.string()
    if base == "date":
        return pa.date32()
    if base in ("datetime", "timestamp"):
        return pa.timestamp("us")
    if base in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"):
        return pa.binary()
    return pa.string()  # char, varchar, text, enum, set, json, time: as the server prints them


def _batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for values, field in zip(zip(*rows, strict=True), schema, strict=True):
        if pa.types.is_string(field.type):
            values = tuple(v if v is None or isinstance(v, str) else str(v) for v in values)
        columns.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
