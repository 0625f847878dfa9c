"""The SQLite engine: the catalog as one APSW file in the data directory (the default).

Write transactions are `BEGIN IMMEDIATE`: the write lock is taken at the first
statement, so two processes of one data dir (a mount and a CLI command) queue for
BUSY_TIMEOUT_MS instead of failing half-way. WAL with synchronous=NORMAL: a commit
survives a crash of the process; `checkpoint` (fsync) makes it survive the machine's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import apsw

from markfs.catalog.schema import MIGRATIONS
from markfs.columns import integer
from markfs.errors import CatalogDamaged, UserError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
SCRUB_MIGRATION = 12  # the migration after which stored passwords are removed
# what SQLite raises on a damaged file, whenever a query first touches the damage
DAMAGE_ERRORS: tuple[type[Exception], ...] = (apsw.CorruptError, apsw.NotADBError)


class SqliteEngine:
    name = "sqlite"
    shared = False
    clock = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = apsw.Connection(str(path))
        self.guard = threading.RLock()  # (held by a write transaction: one thread's at once)
        try:
            self.conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
        except DAMAGE_ERRORS as exc:
            self.conn.close()
            raise damaged(path, exc) from None

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def migrate(self) -> None:
        try:
            self._migrate()
        except DAMAGE_ERRORS as exc:
            self.conn.close()
            raise damaged(self.path, exc) from None

    def _migrate(self) -> None:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        version = _version(self.conn) if has_meta else 0
        refuse_newer(version, str(self.path))
        if version == len(MIGRATIONS):
            return
        # Foreign keys off while the schema changes (SQLite's procedure for rebuilding a
        # table: a DROP TABLE would otherwise cascade into the tables that refer to it).
        self.conn.execute("PRAGMA foreign_keys = OFF")
        self._scrubbed = False
        try:
            self._run_migrations(version)
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")
        if self._scrubbed:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("PRAGMA secure_delete = OFF")

    def _run_migrations(self, version: int) -> None:
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.conn:
                self.conn.execute(sql)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (number,))
                if number == 1:
                    self.conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('stamp', 0), ('generation', ?)",
                        (new_generation(),))
                if number == SCRUB_MIGRATION:
                    self._scrub_passwords()
                problems = self.conn.execute("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"migration {number} broke references: {problems[:3]}")
            log.info("catalog migrated to schema %d", number)

    def _scrub_passwords(self) -> None:
        """Database passwords older versions stored in source URLs, removed. SQLite's
        secure_delete zeroes the old row's bytes; the WAL that held them is emptied
        after this migration's commit (`_migrate`)."""
        from markfs.catalog.sources import scrub_stored_passwords  # (it imports db)

        self.conn.execute("PRAGMA secure_delete = ON")
        self._scrubbed = scrub_stored_passwords(self.conn)

    def begin(self) -> int | None:
        self.conn.execute("BEGIN IMMEDIATE")
        return None

    def begin_locking(self, folders: list[int]) -> int:
        """(One writer at a time here: the whole file's lock covers every folder.)"""
        self.conn.execute("BEGIN IMMEDIATE")
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        return int(row[0]) if row else 0

    def hold(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def node_id_ahead(self) -> int | None:
        return None

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql, params)  # (a statement costs µs here: nothing to save)

    def commit(self, first: list[tuple[str, tuple[Any, ...]]]) -> None:
        for sql, params in first:
            self.conn.execute(sql, params)
        self.conn.execute("COMMIT")

    def commit_stamping(self, first: list[tuple[str, tuple[Any, ...]]],
                        logged: list[tuple[str, tuple[Any, ...]]]) -> int:
        for sql, params in first:
            self.conn.execute(sql, params)
        stamp = self.conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'stamp' RETURNING value").fetchall()
        self.commit(logged)
        return integer(stamp[0][0])

    def rollback(self) -> None:
        with contextlib.suppress(apsw.SQLError):  # (SQLite may have rolled back itself)
            self.conn.execute("ROLLBACK")

    def changed(self, sql: str, params: tuple[Any, ...]) -> int:
        self.conn.execute(sql, params)
        return int(self.conn.changes())

    def translate_error(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, apsw.FullError):
            return OSError(errno.ENOSPC, "the disk of the data directory is full")
        return None

    def announce(self, stamp: int) -> None:
        """No other host reads this file."""

    def copy_to(self, path: Path) -> None:
        """SQLite's online backup API while other connections keep writing (one step:
        the copy is of one moment, under a read transaction)."""
        dest = apsw.Connection(str(path))
        try:
            with dest.backup("main", self.conn, "main") as copy:
                copy.step(-1)
            dest.execute("PRAGMA journal_mode = DELETE")  # no -wal file beside the copy
        finally:
            dest.close()

    def reading(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def writing(self) -> AbstractContextManager[object]:
        return self.guard

    def checkpoint(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """What SQLite's own check finds (`quick`: pages and records, not indexes)."""
        try:
            rows = [str(r[0]) for r in self.conn.execute(
                "PRAGMA quick_check" if quick else "PRAGMA integrity_check")]
        except DAMAGE_ERRORS as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        self.conn.close()


def _version(conn: apsw.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def new_generation() -> int:
    """A catalog's random generation: seeds every node's (NFS handles of a re-created
    catalog must not match old ones)."""
    return secrets.randbelow(2**31 - 1) + 1


def refuse_newer(version: int, where: str) -> None:
    if version > len(MIGRATIONS):
        raise UserError(f"the catalog {where} has schema {version}, newer than this markfs "
                        f"knows ({len(MIGRATIONS)}): upgrade markfs on this host")


def damaged(path: Path, exc: Exception) -> CatalogDamaged:
    return CatalogDamaged(f"the catalog {path} is damaged ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); "
                          "run: markfs fsck --repair (it salvages what SQLite can read)")
