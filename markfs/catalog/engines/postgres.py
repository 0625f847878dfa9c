"""The PostgreSQL engine: the catalog in a database several hosts can share (psycopg 3).

The catalog's SQL is written with `?` placeholders; `PgConnection` hands it to
psycopg with `%s` (a literal `%` doubled), translated once per statement text. The
connection is in autocommit: a write transaction is the engine's own BEGIN … COMMIT
(READ COMMITTED), and a read outside one sees what is committed.

Writers meet at two kinds of lock (`WRITERS_LOCK`, an advisory lock, and rows):
- a transaction that says which folders it changes (`begin_locking`: a create, mkdir,
  removal, rename, link, setattr) holds the advisory lock *shared* and those folders'
  rows (`FOR UPDATE`, in inode order, so two never wait for each other in a circle);
  it takes its stamp at COMMIT (`commit_stamping`: the `stamp` row updated in the
  COMMIT's own round trip) — writers of different folders, of any host, run at once
  and queue only for that last statement;
- any other transaction (`begin`: a listing's reconcile, a scan, the journal, a tag)
  holds it *exclusive* and bumps the stamp at BEGIN, as SQLite's one writer does.
Either way the stamp row is locked from its UPDATE to COMMIT, so stamps commit in order
(the change log's promise), and every invariant of SQLite's one writer holds for what
a transaction's locks cover. A deadlock or serialization failure (40P01, 40001) that
a lock taken out of that order can still cause is `CatalogConflict`: rolled back
whole, and run again by the catalog's runner.

The URL never carries a password: libpq reads `~/.pgpass` or `PGPASSWORD`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from markfs.catalog.engines import pgschema
from markfs.catalog.engines.pgfeed import CHANNEL, CONNECT_TIMEOUT_S, KEEPALIVE
from markfs.catalog.engines.pgreaders import ReadPool
from markfs.catalog.engines.sqlite import new_generation, refuse_newer
from markfs.catalog.schema import MIGRATIONS
from markfs.errors import CatalogConflict, FsError, UserError, first_line
from markfs.urlsecrets import has_password

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6D61726B  # the advisory lock one host holds while it migrates
WRITERS_LOCK = 0x6D667772  # every write transaction's first lock (module docstring)
# node ids one round trip takes from the sequence ahead of their INSERTs (a block lives
# in one process; what it leaves unused at exit are gaps in the inode numbers)
NODE_IDS_AHEAD = 64
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|[?%]")


@lru_cache(maxsize=4096)  # the catalog's statement texts: a few hundred
def pyformat(sql: str) -> str:
    """`sql` with `?` as `%s` and `%` as `%%`, outside quotes and comments."""
    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        return "%s" if token == "?" else "%%" if token == "%" else token
    return _TOKEN.sub(swap, sql)


class PgConnection:
    """A psycopg connection the catalog's parts read through like an APSW one.

    A connection the server dropped (a restart, a cut network) is made anew at the next
    statement outside a transaction; a statement that finds it gone fails with EIO (a
    transaction it was in is lost whole: nothing of it committed).

    Writes with no answer to wait for (`defer`) are held and sent with the next
    statement, in its round trip: that statement, like every later one, sees them.

    It serves one thread at a time (`guard`): a statement holds it for its length, a
    write transaction (`Catalog.transaction`) from BEGIN to its end — so a thread's
    statement never lands inside another thread's transaction."""

    def __init__(self, conn: psycopg.Connection[Any],
                 reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
                 reads_only: bool = False) -> None:
        self.raw = conn
        self._reconnect = reconnect
        # a read pool's: a statement that finds it gone is sent once more on a new one
        # (a read changes nothing), so the first read after a server restart succeeds
        self._reads_only = reads_only
        self.in_transaction = False
        self.owner: int | None = None  # the thread whose transaction is open, if any
        self.deferred: list[bytes] = []  # bound statements not sent yet (in a transaction)
        self.guard = threading.RLock()
        # where a statement of this thread goes instead (a read pool's: `pgreaders`)
        self.route: Callable[[], PgConnection | None] = lambda: None

    def close(self) -> None:
        self.raw.close()

    def bind(self, sql: str, params: tuple[Any, ...]) -> bytes:
        """A statement with its parameters bound here (psycopg's client-side binding)."""
        return psycopg.ClientCursor(self.raw).mogrify(pyformat(sql), params).encode()

    def defer(self, sql: str, params: tuple[Any, ...]) -> None:
        self.deferred.append(self.bind(sql, params))

    def take_deferred(self) -> list[bytes]:
        taken, self.deferred = self.deferred, []
        return taken

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        reader = self.route()
        if reader is not None:
            return reader.execute(sql, params)
        with self.guard:
            return self._execute(sql, params)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        if self.deferred:  # (sent first, in the same round trip)
            held = self.take_deferred()
            cursor = self._execute_script(b"; ".join([*held, self.bind(sql, params)]))
            for _ in held:
                cursor.nextset()
            return cursor
        if self.raw.broken and self._reconnect is not None and not self.in_transaction:
            self._renew()
        try:
            return self.raw.execute(pyformat(sql), params)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            if not self.raw.broken:
                raise
            if self._reads_only and self._reconnect is not None and not self.in_transaction:
                self._renew()
                return self.raw.execute(pyformat(sql), params)  # type: ignore[arg-type]
            raise FsError(errno.EIO, f"the catalog's server is gone: {first_line(exc)}"
                          ) from None

    def execute_script(self, script: str | bytes) -> psycopg.Cursor[Any]:
        """Statements without parameters, several in one round trip (the simple query
        protocol); the cursor is at the first one's result (`nextset` for the next)."""
        with self.guard:
            return self._execute_script(script)

    def _execute_script(self, script: str | bytes) -> psycopg.Cursor[Any]:
        if self.raw.broken and self._reconnect is not None and not self.in_transaction:
            self._renew()
        try:
            return self.raw.execute(script if isinstance(script, bytes) else script.encode())
        except psycopg.OperationalError as exc:
            if not self.raw.broken:
                raise
            raise FsError(errno.EIO, f"the catalog's server is gone: {first_line(exc)}"
                          ) from None

    def _renew(self) -> None:
        assert self._reconnect is not None
        try:
            fresh = self._reconnect()
        except psycopg.Error as exc:
            raise FsError(errno.EIO, f"the catalog's server does not answer: "
                          f"{first_line(exc)}") from None
        old, self.raw = self.raw, fresh
        with contextlib.suppress(psycopg.Error):
            old.close()
        log.warning("reconnected to the catalog")


_BUMP = b"UPDATE meta SET value = value + 1 WHERE key = 'stamp' RETURNING value"


def _last_value(cursor: psycopg.Cursor[Any], skip: int) -> int:
    """The one value of the result `skip` results after the cursor's first."""
    for _ in range(skip):
        cursor.nextset()
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def check_url(url: str) -> str:
    """A catalog URL as markfs takes it: PostgreSQL, a database named, no password."""
    if has_password(url):
        raise UserError("the catalog URL carries a password: give it in ~/.pgpass or "
                        "PGPASSWORD instead, never in the URL")
    parts = urlsplit(url)
    odd = any(c.isspace() or not c.isprintable() for c in url)
    if odd or not parts.hostname or not parts.path.strip("/"):
        raise UserError(f"not a catalog URL: {url} (postgresql://USER@HOST:PORT/DATABASE)")
    return url


class PostgresEngine:
    name = "postgresql"
    shared = True
    clock = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self._idle_ms = 0  # `hold_locks_at_most` (0: the server's default, no bound)
        try:
            raw = self._connect()
        except psycopg.Error as exc:
            raise UserError(f"cannot reach the catalog {self.describe()}: "
                            f"{first_line(exc)}") from None
        self.conn = PgConnection(raw, self._connect)
        self.guard = self.conn.guard
        self.readers = ReadPool(lambda: self.connection_apart("read", reads_only=True))
        self.conn.route = self._route
        self._node_ids: list[int] = []  # taken from the sequence, not used yet (descending)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name="markfs", options=self._options(),
                               **KEEPALIVE)

    def _options(self) -> str:
        return f"-c idle_in_transaction_session_timeout={self._idle_ms}" if self._idle_ms else ""

    def hold_locks_at_most(self, seconds: float) -> None:
        """A transaction of this process idle longer than `seconds` — its host stopped or
        cut off inside it — is ended by the server, and the locks it held are let go:
        every host's writes may queue on them (the writers' lock, a folder's row), and
        must not wait for a host that stopped holding them. (Its transaction fails; it
        writes again once back.)"""
        self._idle_ms = max(1, int(seconds * 1000))
        with self.guard:
            self.conn.execute_script(
                f"SET idle_in_transaction_session_timeout = {self._idle_ms}")

    def describe(self) -> str:
        return self.url

    def reading(self) -> AbstractContextManager[None]:
        return self.readers.reading()

    def _route(self) -> PgConnection | None:
        """A statement of a thread inside `reading()` goes to its pool connection, unless
        it is inside that thread's own transaction (which reads what it wrote)."""
        reader = self.readers.current()
        if reader is None or self.conn.owner == threading.get_ident():
            return None
        return reader

    def connection_apart(self, purpose: str, reads_only: bool = False) -> PgConnection:
        """A connection of its own (autocommit) for one task of this host — its session,
        its announcements: never queued behind the catalog's writes."""
        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name=f"markfs {purpose}", **KEEPALIVE)
        return PgConnection(connect(), connect, reads_only)

    def migrate(self) -> None:
        with self.raw.transaction():
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            found = self.raw.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if not (found and found[0]):
                self._create()
                return
            row = self.raw.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            refuse_newer(version, self.url)
            for number in range(max(version, pgschema.BASELINE) + 1, len(MIGRATIONS) + 1):
                self.raw.execute(pgschema.migration(number).encode())
                self.raw.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                                 (number,))
                log.info("catalog migrated to schema %d", number)

    def _create(self) -> None:
        for sql in pgschema.baseline():
            self.raw.execute(sql.encode())  # (bytes: not a template, `%` is itself)
        self.raw.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', %s), ('stamp', 0), "
            "('generation', %s)", (len(MIGRATIONS), new_generation()))
        self.raw.execute(f"ALTER TABLE nodes ALTER COLUMN id RESTART WITH "
                         f"{pgschema.FIRST_FREE_NODE_ID}")
        log.info("catalog created at schema %d in %s", len(MIGRATIONS), self.url)

    @property
    def raw(self) -> psycopg.Connection[Any]:
        return self.conn.raw

    def begin(self) -> int | None:
        """BEGIN, the writers' lock exclusive and the stamp bumped, in one round trip: the
        stamp row's lock is held to COMMIT (stamps commit in order)."""
        return _last_value(self._begin(
            f"BEGIN; SELECT pg_advisory_xact_lock({WRITERS_LOCK}); "
            "UPDATE meta SET value = value + 1 WHERE key = 'stamp' RETURNING value"), 2)

    def begin_locking(self, folders: list[int]) -> int:
        """BEGIN, the writers' lock shared and the rows of `folders` locked in inode order,
        in one round trip; the stamp committed when the locks were held (every change to
        those folders is at or below it)."""
        ids = ", ".join(str(int(folder)) for folder in sorted(set(folders)))
        return _last_value(self._begin(
            f"BEGIN; SELECT pg_advisory_xact_lock_shared({WRITERS_LOCK}); "
            f"SELECT id FROM nodes WHERE id IN ({ids}) ORDER BY id FOR UPDATE; "
            "SELECT value FROM meta WHERE key = 'stamp'"), 3)

    def hold(self) -> None:
        self._begin(f"BEGIN; SELECT pg_advisory_xact_lock({WRITERS_LOCK})")

    def _begin(self, script: str) -> psycopg.Cursor[Any]:
        """A transaction begun by `script` (its results); one that failed there (a lock
        wait the server ended) is rolled back."""
        try:
            cursor = self.conn.execute_script(script)
        except BaseException:
            self._end_failed()
            raise
        self.conn.in_transaction, self.conn.owner = True, threading.get_ident()
        return cursor

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.defer(sql, params)

    def node_id_ahead(self) -> int:
        if not self._node_ids:
            self._node_ids = sorted((int(row[0]) for row in self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence('nodes', 'id')) FROM "
                "generate_series(1, ?)", (NODE_IDS_AHEAD,))), reverse=True)
        return self._node_ids.pop()

    def commit(self, first: list[tuple[str, tuple[Any, ...]]]) -> None:
        """What was deferred, then `first`, sent with the COMMIT."""
        self._commit_script([*self.conn.take_deferred(), *self._bound(first), b"COMMIT"])

    def commit_stamping(self, first: list[tuple[str, tuple[Any, ...]]],
                        logged: list[tuple[str, tuple[Any, ...]]]) -> int:
        """What was deferred and `first`, the stamp bumped, `logged` (which reads it), and
        COMMIT, in one round trip: the transaction's stamp."""
        held = [*self.conn.take_deferred(), *self._bound(first)]
        cursor = self._commit_script([*held, _BUMP, *self._bound(logged), b"COMMIT"])
        return _last_value(cursor, len(held))

    def _bound(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[bytes]:
        return [self.conn.bind(sql, params) for sql, params in statements]

    def _commit_script(self, script: list[bytes]) -> psycopg.Cursor[Any]:
        self.conn.in_transaction, self.conn.owner = False, None
        try:
            return self.conn.execute_script(b"; ".join(script))
        except BaseException:
            self._end_failed()
            raise

    def _end_failed(self) -> None:
        """A COMMIT whose script failed (a held write refused) leaves the server's
        transaction aborted: rolled back, or every later statement would fail too."""
        if not self.raw.broken and (
                self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE):
            with contextlib.suppress(psycopg.Error):
                self.raw.execute("ROLLBACK")

    def rollback(self) -> None:
        self.conn.in_transaction, self.conn.owner = False, None
        self.conn.deferred.clear()
        if not self.raw.broken:
            self.raw.execute("ROLLBACK")

    def changed(self, sql: str, params: tuple[Any, ...]) -> int:
        return int(self.conn.execute(sql, params).rowcount)

    def translate_error(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, psycopg.errors.DiskFull):
            return OSError(errno.ENOSPC, "the catalog's database server has no space left")
        if isinstance(exc, (psycopg.errors.DeadlockDetected,
                            psycopg.errors.SerializationFailure)):
            return CatalogConflict(f"the catalog's server ended a write to let another go "
                                   f"on: {first_line(exc)}")
        if isinstance(exc, psycopg.errors.UniqueViolation):
            # another host made the same name (or row) first: this host's cache had not
            # heard of it yet when it checked
            return FsError(errno.EEXIST, "made by another host at the same time")
        return None

    def announce(self, stamp: int) -> None:
        try:
            self.raw.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(stamp)))
        except psycopg.Error as exc:  # the others then see it by their poll, within 1 s
            log.warning("could not announce stamp %d: %s", stamp, first_line(exc))

    def copy_to(self, path: Path) -> None:
        raise UserError(f"the catalog is in PostgreSQL ({self.url}): back it up with "
                        "pg_dump; markfs backup copies SQLite catalogs")

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL's COMMIT is durable (its WAL is fsynced)."""

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """PostgreSQL checks its own pages; here: that the server answers."""
        try:
            self.raw.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            return [f"the catalog's server does not answer: {first_line(exc)}"]
        return []

    def close(self) -> None:
        self.readers.close()
        self.raw.close()
