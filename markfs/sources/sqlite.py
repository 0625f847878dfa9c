"""`sqlite:///path.db` sources, read through apsw in read-only mode."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw

from markfs.sources.base import ColumnInfo, TableInfo

SCHEMA = "main"


def quote(identifier: str) -> str:
    """An SQL identifier, quoted so that any name (quotes, spaces, case) is exact."""
    return '"' + identifier.replace('"', '""') + '"'


class SqliteSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY
                                    | apsw.SQLITE_OPEN_URI)
        self.conn.set_busy_timeout(5000)

    def close(self) -> None:
        self.conn.close()

    def tables(self) -> list[TableInfo]:
        rows = self.conn.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_schema "
            "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name").fetchall()
        return [self._info(str(kind), str(name), str(sql)) for kind, name, sql in rows]

    def _info(self, kind: str, name: str, sql: str) -> TableInfo:
        count_row = self.conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
        count = int(count_row[0]) if count_row else 0  # type: ignore[arg-type]
        last = ""
        if kind == "table" and "WITHOUT ROWID" not in sql.upper():
            row = self.conn.execute(f"SELECT max(rowid) FROM {quote(name)}").fetchone()
            last = str(row[0]) if row else ""
        token = hashlib.sha1(f"{sql}\0{count}\0{last}".encode()).hexdigest()
        return TableInfo(SCHEMA, name, kind, count, True, token)

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        rows = self.conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return [ColumnInfo(name=str(name), type=str(ctype or ""), nullable=not notnull,
                           primary_key=bool(pk), comment=None, position=int(cid))  # type: ignore[arg-type]
                for cid, name, ctype, notnull, _default, pk in rows]

    def check(self) -> str:
        tables = self.tables()
        return f"{self.path}: SQLite database, {len(tables)} tables and views"
