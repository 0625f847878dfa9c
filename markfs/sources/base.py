"""What every SQL source can tell about itself (blocking: run in worker threads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TableInfo:
    """One table or view as a level-1 scan sees it."""

    schema: str
    name: str
    kind: str  # "table" | "view"
    rows: int | None  # row count (exact for SQLite)
    rows_exact: bool
    change_token: str  # differs whenever the scan must read the table again


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    primary_key: bool
    comment: str | None
    position: int


class SqlSource(Protocol):
    def tables(self) -> list[TableInfo]: ...

    def columns(self, schema: str, table: str) -> list[ColumnInfo]: ...

    def check(self) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SqliteLocation:
    """Where a sqlite:// source lives."""

    path: str


@dataclass(frozen=True)
class PostgresLocation:
    """Where a postgresql:// source lives (libpq connection string; no password kept)."""

    conninfo: str
