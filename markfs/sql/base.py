"""What every SQL source can tell about itself (blocking: run in worker threads)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:  # pyarrow takes ~0.4 s to import: only what reads tables pays for it
    import pyarrow as pa


class ReadAgain(Exception):
    """A table read stopped part-way for a reason the next read of it avoids (the
    source switched to a slower, exact path): start the read over, once."""


T = TypeVar("T")


def reading_again_once(read: Callable[[], T]) -> T:
    """Run a whole table read; if the source says `ReadAgain`, run it once more."""
    try:
        return read()
    except ReadAgain:
        return read()


@dataclass(frozen=True)
class TableInfo:
    """One table or view as a level-1 scan sees it."""

    schema: str
    name: str
    kind: str  # "table" | "view"
    rows: int | None  # row count (exact for SQLite)
    rows_exact: bool
    change_token: str  # differs whenever the scan must read the table again
    size_bytes: int | None = None  # storage the table and its indexes take, if known


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    primary_key: bool
    comment: str | None
    position: int


class SqlSource(Protocol):
    def tables(self, known: Mapping[tuple[str, str], str] | None = None,
               hint: str | None = None) -> list[TableInfo]:
        """Every table and view. `known` maps (schema, table) to its token at the last
        scan and `hint` is what `scan_hint` said then: a source may answer from them
        when it can tell that nothing has changed since."""
        ...

    def scan_hint(self) -> str | None:
        """After `tables()`: what to hand the next scan as its `hint` (None: nothing)."""
        ...

    def columns(self, schema: str, table: str) -> list[ColumnInfo]: ...

    def read_table(self, schema: str, table: str, columns: list[ColumnInfo],
                   batch_rows: int = 65_536) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The whole table as Arrow record batches of at most `batch_rows` rows, in
        bounded memory; the schema is known before the first batch."""
        ...

    def check(self) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SqliteLocation:
    """Where a sqlite:// source lives."""

    path: str


@dataclass(frozen=True)
class PostgresLocation:
    """Where a postgresql:// source lives (libpq connection string, every value quoted;
    no password kept)."""

    conninfo: str
    label: str  # user@host:port/db, for messages (never the connection string)


@dataclass(frozen=True)
class MysqlLocation:
    """Where a mysql:// source lives (MySQL or MariaDB; no password kept)."""

    host: str
    port: int
    user: str
    database: str | None  # None: every non-system database
