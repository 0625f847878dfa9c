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
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from markfs.catalog.engines import pgschema
from markfs.catalog.engines.pgconnection import PgConnection
from markfs.catalog.engines.pgfeed import CHANNEL, CONNECT_TIMEOUT_S, KEEPALIVE
from markfs.catalog.engines.pgpools import READERS, WRITERS, ConnectionPool
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
        self.readers = ConnectionPool(
            lambda: self.connection_apart("read", reads_only=True), READERS)
        self.writers = ConnectionPool(  # (bounded as the catalog's own connection)
            lambda: self.connection_apart("write", bounded=True), WRITERS)
        self.conn.route = self._route
        self._node_ids: list[int] = []  # taken from the sequence, not used yet (descending)
        self._node_ids_lock = threading.Lock()  # (writers of several threads take them)

    def _connect(self, purpose: str = "", bounded: bool = True) -> psycopg.Connection[Any]:
        """A new connection (autocommit; `bounded`: in how long it may idle inside a
        transaction, `hold_locks_at_most`). Nothing is prepared on the server: the
        scripts carry their values (`PgConnection.bind`), so no two texts repeat, and
        psycopg's count of them would cost a write its CPU for nothing."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name=f"markfs {purpose}".strip(),
                               options=self._options() if bounded else "",
                               prepare_threshold=None, **KEEPALIVE)

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
        self.writers.drop_idle()  # (made again with it)

    def describe(self) -> str:
        return self.url

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self.readers.using():
            yield

    def writing(self) -> AbstractContextManager[object]:
        """A folder-holding transaction of this thread: on a connection of its own."""
        return self.writers.using()

    def _route(self) -> PgConnection | None:
        """A statement of a thread inside `writing()` goes to its writer; inside
        `reading()` to its reader, unless it is inside that thread's own transaction on
        the catalog's connection (which reads what it wrote)."""
        writer = self.writers.current()
        if writer is not None:
            return writer
        reader = self.readers.current()
        if reader is None or self.conn.owner == threading.get_ident():
            return None
        return reader

    def _writer(self) -> PgConnection:
        """The connection of this thread's transaction."""
        return self.writers.current() or self.conn

    def connection_apart(self, purpose: str, reads_only: bool = False,
                         bounded: bool = False) -> PgConnection:
        """A connection of its own (autocommit) for one task of this host — its session,
        its announcements, a pool's: never queued behind the catalog's writes."""
        def connect() -> psycopg.Connection[Any]:
            return self._connect(purpose, bounded)
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
        conn = self._writer()
        try:
            cursor = conn.execute_script(script, begins=True)
        except BaseException:
            self._end_failed()
            raise
        conn.in_transaction, conn.owner = True, threading.get_ident()
        return cursor

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        self._writer().defer(sql, params)

    def node_id_ahead(self) -> int:
        with self._node_ids_lock:
            if not self._node_ids:
                self._node_ids = sorted((int(row[0]) for row in self._writer().execute(
                    "SELECT nextval(pg_get_serial_sequence('nodes', 'id')) FROM "
                    "generate_series(1, ?)", (NODE_IDS_AHEAD,))), reverse=True)
            return self._node_ids.pop()

    def commit(self, first: list[tuple[str, tuple[Any, ...]]]) -> None:
        """What was deferred, then `first`, sent with the COMMIT."""
        self._commit_script([*self._writer().take_deferred(), *self._bound(first), b"COMMIT"])

    def commit_stamping(self, first: list[tuple[str, tuple[Any, ...]]],
                        logged: list[tuple[str, tuple[Any, ...]]]) -> int:
        """What was deferred and `first`, the stamp bumped, `logged` (which reads it), and
        COMMIT, in one round trip: the transaction's stamp."""
        held = [*self._writer().take_deferred(), *self._bound(first)]
        cursor = self._commit_script([*held, _BUMP, *self._bound(logged), b"COMMIT"])
        return _last_value(cursor, len(held))

    def _bound(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[bytes]:
        conn = self._writer()
        return [conn.bind(sql, params) for sql, params in statements]

    def _commit_script(self, script: list[bytes]) -> psycopg.Cursor[Any]:
        conn = self._writer()
        conn.in_transaction, conn.owner = False, None
        try:
            return conn.execute_script(b"; ".join(script))
        except BaseException:
            self._end_failed()
            raise

    def _end_failed(self) -> None:
        """A COMMIT whose script failed (a held write refused) leaves the server's
        transaction aborted: rolled back, or every later statement would fail too."""
        raw = self._writer().raw
        if not raw.broken and raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                raw.execute("ROLLBACK")

    def rollback(self) -> None:
        conn = self._writer()
        conn.in_transaction, conn.owner = False, None
        conn.deferred.clear()
        if not conn.raw.broken:
            conn.raw.execute("ROLLBACK")

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
        self.writers.close()
        self.raw.close()
