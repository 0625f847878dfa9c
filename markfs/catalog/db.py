"""The catalog connection: opening, migrations, and write transactions.

Invariant (SQLite is the truth, LMDB a write-through mirror): every write goes
through `Catalog.transaction()`. It holds SQLite's write lock (BEGIN IMMEDIATE)
from the first statement until COMMIT; inside that window it bumps
`meta.stamp`, hands the changed rows to the mirror, which commits them to LMDB
with the same stamp, and only then commits SQLite. So the two stores carry the
same stamp exactly when both hold the same transactions; a crash anywhere in
between leaves different stamps, and the next start rebuilds the mirror.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import apsw

from markfs.catalog.schema import MIGRATIONS
from markfs.columns import integer
from markfs.errors import CatalogDamaged
from markfs.model import ChangeSet, Kind, Node

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
SCRUB_MIGRATION = 12  # the migration after which stored passwords are removed
# what SQLite raises on a damaged file, whenever a query first touches the damage
DAMAGE_ERRORS: tuple[type[Exception], ...] = (apsw.CorruptError, apsw.NotADBError)

NODE_COLUMNS = (
    "id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink, generation, "
    "source_id, remote_path, target, etag, atime_ns, rdev, meta_kept"
)


def row_to_node(row: tuple[Any, ...]) -> Node:
    (nid, parent, name, kind, mode, uid, gid, size, mtime, ctime, nlink, gen, src, remote,
     target, etag, atime, rdev, kept) = row
    return Node(
        id=nid, parent=parent, name=bytes(name), kind=Kind(kind), mode=mode, uid=uid,
        gid=gid, size=size, mtime_ns=mtime, ctime_ns=ctime, nlink=nlink, generation=gen,
        source_id=src, remote_path=None if remote is None else bytes(remote),
        target=None if target is None else bytes(target),
        etag=None if etag is None else bytes(etag), atime_ns=atime, rdev=rdev,
        meta_kept=kept,
    )


class Mirror(Protocol):
    """A copy of the node tree kept in step with the catalog (the LMDB hot cache)."""

    def apply(self, changes: ChangeSet, stamp: int) -> None: ...

    def mark_stale(self) -> None: ...


class Txn:
    """One open write transaction; node functions record what they touch here."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.touched: set[int] = set()
        self.gone_nodes: set[int] = set()
        self.gone_dentries: list[tuple[int, bytes]] = []

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:  # rows are untyped
        return self.conn.execute(sql, params)

    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An INSERT of one row into a table with an `id` column: the new row's id
        (RETURNING, as SQLite and PostgreSQL both say it; the rows read to the end, so
        no statement is left open at COMMIT)."""
        rows = self.conn.execute(sql + " RETURNING id", params).fetchall()
        return integer(rows[0][0])

    def changed(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An UPDATE, DELETE or INSERT: how many rows it changed (an INSERT ... ON
        CONFLICT DO NOTHING: 0 where the row was there already)."""
        self.conn.execute(sql, params)
        return int(self.conn.changes())

    def touch(self, node_id: int) -> None:
        self.touched.add(node_id)

    def drop_dentry(self, parent: int, name: bytes) -> None:
        self.gone_dentries.append((parent, name))

    def drop_node(self, node_id: int) -> None:
        self.gone_nodes.add(node_id)
        self.touched.discard(node_id)

    def collect(self) -> ChangeSet:
        changes = ChangeSet(gone_nodes=sorted(self.gone_nodes),
                            gone_dentries=list(self.gone_dentries))
        for node_id in sorted(self.touched):
            row = self.conn.execute(
                f"SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?", (node_id,)).fetchone()
            if row is None:
                changes.gone_nodes.append(node_id)
                continue
            node = row_to_node(row)
            changes.nodes.append(node)
            if node.id != node.parent:
                changes.dentries.append((node.parent, node.name, node.id))
            for parent, name in self.conn.execute(
                    "SELECT parent, name FROM hardlinks WHERE node_id = ?", (node_id,)):
                changes.dentries.append((parent, bytes(name), node_id))
        return changes


class Catalog:
    """The APSW SQLite catalog of one data directory."""

    def __init__(self, path: Path, mirror: Mirror | None = None) -> None:
        self.path = path
        self.mirror = mirror
        # rebuilds the mirror from SQLite (set by its owner); `mirror_behind` holds it
        # while the mirror has a transaction whose COMMIT failed
        self.rebuild_mirror: Callable[[], object] = lambda: None
        self.mirror_behind: Callable[[], object] | None = None
        self._open: tuple[int, Txn] | None = None  # (thread, the transaction it has open)
        self.conn = apsw.Connection(str(path))
        try:
            self.conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except DAMAGE_ERRORS as exc:
            self.conn.close()
            raise damaged(path, exc) from None
        # the typed parts the layers above read and write through (imported here: each
        # part's module imports this one for `Txn`)
        from markfs.catalog import hashes, nodes, sources, xattrs
        from markfs.catalog.curation import categories, tags, views
        from markfs.catalog.journals import pieces, renames, uploads
        from markfs.catalog.tables import filescans, jobs, managed, search, sqltables

        self.nodes = nodes.Nodes(self.conn)
        self.xattrs = xattrs.Xattrs(self.conn)
        self.sources = sources.Sources(self.conn)
        self.renames = renames.Renames(self.conn)
        self.uploads = uploads.Uploads(self.conn)
        self.piece_uploads = pieces.PieceUploads(self.conn)
        self.content_hashes = hashes.ContentHashes(self.conn)
        self.views = views.Views(self.conn)
        self.tags = tags.Tags(self.conn)
        self.categories = categories.Categories(self.conn)
        self.tables = sqltables.SqlTables(self.conn)
        self.managed = managed.ManagedFiles(self.conn)
        self.file_scans = filescans.FileScans(self.conn)
        self.jobs = jobs.Jobs(self.conn)
        self.search = search.Search(self.conn)

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        version = self.meta("schema_version") if has_meta else 0
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
                        (secrets.randbelow(2**31 - 1) + 1,))
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
        from markfs.catalog.sources import scrub_stored_passwords  # (it imports this module)

        self.conn.execute("PRAGMA secure_delete = ON")
        self._scrubbed = scrub_stored_passwords(self.conn)

    def meta(self, key: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def stamp(self) -> int:
        return self.meta("stamp")

    @property
    def generation(self) -> int:
        return self.meta("generation")

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """A write transaction whose node changes reach the mirror before COMMIT.

        Opened inside another one of the same thread, it joins that one: the writes of
        one request made by separate functions commit once (a transaction costs ~45 µs
        of BEGIN, stamp, mirror and COMMIT; a statement inside one, 2 µs). An error
        inside rolls the whole outer transaction back. The outer block never awaits
        (a `with`, not an `async with`): no other task's writes can slip in."""
        joined = self._open
        if joined is not None and joined[0] == threading.get_ident():
            yield joined[1]
            return
        if self.mirror_behind is not None:
            self._catch_up_mirror()
        self.conn.execute("BEGIN IMMEDIATE")
        txn = Txn(self.conn)
        self._open = (threading.get_ident(), txn)
        try:
            yield txn
            stamp = self.meta("stamp") + 1
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'stamp'", (stamp,))
            if self.mirror is not None:
                self.mirror.apply(txn.collect(), stamp)
        except BaseException as exc:
            self._open = None
            with contextlib.suppress(apsw.SQLError):  # (SQLite may have rolled back itself)
                self.conn.execute("ROLLBACK")
            if isinstance(exc, apsw.FullError):
                raise _disk_full() from None
            raise
        self._open = None
        try:
            self.conn.execute("COMMIT")
        except BaseException as exc:
            # The mirror already holds this transaction: make the next start rebuild it,
            # and this process before its next transaction (a full disk: the mirror
            # must not go on showing what SQLite rolled back).
            if self.mirror is not None:
                self.mirror_behind = self.rebuild_mirror
                with contextlib.suppress(Exception):  # (the disk may be full for this too)
                    self.mirror.mark_stale()
            if isinstance(exc, apsw.FullError):
                raise _disk_full() from None
            raise

    def _catch_up_mirror(self) -> None:
        """The mirror holds a transaction SQLite did not commit: rebuilt from SQLite now."""
        rebuild, self.mirror_behind = self.mirror_behind, None
        assert rebuild is not None
        try:
            rebuild()
        except BaseException:
            self.mirror_behind = rebuild
            raise

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the write lock without writing: no writer is between its two stores."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            self.conn.execute("ROLLBACK")

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the whole catalog as one self-contained file, taken with
        SQLite's online backup API while other connections keep writing (one step: the
        copy is of one moment, under a read transaction)."""
        dest = apsw.Connection(str(path))
        try:
            with dest.backup("main", self.conn, "main") as copy:
                copy.step(-1)
            dest.execute("PRAGMA journal_mode = DELETE")  # no -wal file beside the copy
        finally:
            dest.close()

    def checkpoint(self) -> None:
        """Make committed transactions durable in the main database file (fsync path)."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """What SQLite's own check finds (`quick`: pages and records, not indexes)."""
        try:
            rows = [str(r[0]) for r in self.conn.execute(
                "PRAGMA quick_check" if quick else "PRAGMA integrity_check")]
        except DAMAGE_ERRORS as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else rows


def _disk_full() -> OSError:
    """SQLite's "database or disk is full" as the errno a writer gets (ENOSPC)."""
    return OSError(errno.ENOSPC, "the disk of the data directory is full")


def damaged(path: Path, exc: Exception) -> CatalogDamaged:
    return CatalogDamaged(f"the catalog {path} is damaged ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); "
                          "run: markfs fsck --repair (it salvages what SQLite can read)")
