"""The catalog's engines: the database a catalog lives in, behind one small interface.

`Catalog` (db.py) and the typed parts of the catalog speak plain SQL through an
engine's `conn` (`?` placeholders, `RETURNING`, `ON CONFLICT`, recursive CTEs: SQL that
SQLite and PostgreSQL both run); what differs lives in an engine:

- `sqlite`: the embedded default, one file in the data directory (APSW). Its
  migrations are the schema's one description (schema.py).
- `postgres`: a PostgreSQL database several hosts share (psycopg 3). Its schema is
  derived from the same migrations (`pgschema`), its inode numbers come from a
  sequence, its full-text search is PostgreSQL's own.

An engine owns its connection, its transactions' first and last statement, its
migrations, its locks, its errors (disk full, a conflict to run again) and what only its file or
server can do (copy, checkpoint, integrity check).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol


class Rows(Protocol):
    """What a statement gives back: its rows as tuples."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Guard(Protocol):
    """A re-entrant lock (`threading.RLock`)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None: ...


class Connection(Protocol):
    """A connection the catalog's parts read through (`?` placeholders)."""

    def execute(self, sql: str, params: tuple[Any, ...] = ..., /) -> Any: ...


class Engine(Protocol):
    """One catalog database: its connection and what differs between engines."""

    name: str  # 'sqlite' | 'postgresql'
    shared: bool  # several hosts may write it: the change log is written and followed
    clock: str  # SQL: the database's time in µs since the epoch (sessions: its clock only)

    @property
    def conn(self) -> Connection: ...

    @property
    def guard(self) -> Guard:
        """Held by whoever uses the connection: a write transaction from BEGIN to its end
        (and, on a server, a statement for its length) — one thread's at a time."""

    def describe(self) -> str:
        """Where the catalog lives, as `markfs status` prints it (never a secret)."""

    def migrate(self) -> None:
        """Bring the schema to this markfs's version (CatalogError if it is newer)."""

    def begin(self) -> int | None:
        """Start a write transaction holding the whole catalog's write lock (SQLite's; the
        writers' lock exclusive and the stamp row in PostgreSQL). A shared engine takes
        the transaction's stamp here and returns it; None: the catalog bumps it before
        COMMIT."""

    def begin_locking(self, folders: list[int]) -> int:
        """Start a write transaction that changes names and nodes of `folders` only,
        holding their locks (a server: those folders' rows, in inode order, beside other
        such transactions; SQLite: its one write lock); the stamp committed then. Its
        own stamp is taken at COMMIT (`commit_stamping`)."""

    def hold(self) -> None:
        """Start a transaction holding the write lock, to write nothing (rolled back)."""

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write inside a transaction with no answer to wait for: a server gets it with
        the next statement or the COMMIT, in that round trip; SQLite runs it now."""

    def node_id_ahead(self) -> int | None:
        """An id for a new node taken from the nodes' sequence before its INSERT, so the
        INSERT has no answer to wait for (a server: a block of ids in one round trip,
        kept by this process; an id never used is a gap, never reused); None: the INSERT
        numbers the node (SQLite: µs)."""

    def commit(self, first: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run the writes `first` (nothing to wait for: a server gets them with the
        COMMIT, in one round trip), then COMMIT."""

    def commit_stamping(self, first: list[tuple[str, tuple[Any, ...]]],
                        logged: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Run `first`, bump the stamp, run `logged` (which may read it: the change log),
        COMMIT (a server: in one round trip); the transaction's stamp."""

    def rollback(self) -> None: ...

    def changed(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run a write; how many rows it changed."""

    def translate_error(self, exc: BaseException) -> BaseException | None:
        """What a writer should see instead of `exc` (a full disk: ENOSPC), or None."""

    def announce(self, stamp: int) -> None:
        """Tell the other hosts of a shared catalog that it is at `stamp` now."""

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the whole catalog as one SQLite file (backups)."""

    def reading(self) -> AbstractContextManager[None]:
        """Inside it, this thread's reads outside a transaction of its own go to a
        connection apart from the writer's (a server's read pool, `pgpools`: they
        never queue behind a write); SQLite: nothing changes (its reads do not wait)."""

    def writing(self) -> AbstractContextManager[object]:
        """Inside it, this thread's transaction that holds only some folders runs on a
        connection of its own (a server's writer pool, `pgpools`: beside this host's
        other writes); SQLite: its one writer's turn (`guard`)."""

    def checkpoint(self) -> None:
        """Make committed transactions durable (SQLite's WAL into its file)."""

    def integrity_problems(self, quick: bool = False) -> list[str]: ...

    def close(self) -> None: ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_engine(location: str | Path) -> Engine:
    """The engine of a catalog at `location`: a PostgreSQL URL or an SQLite file."""
    if is_postgres_url(location):
        from markfs.catalog.engines.postgres import PostgresEngine

        return PostgresEngine(str(location))
    from markfs.catalog.engines.sqlite import SqliteEngine

    return SqliteEngine(Path(location))
