"""The catalog: write transactions over its engine, and the typed parts it is read by.

Invariant (the catalog is the truth, LMDB a write-through mirror): every write goes
through `Catalog.transaction()`. It holds the engine's write transaction from the
first statement until COMMIT (SQLite: its write lock, BEGIN IMMEDIATE); inside that
window it bumps `meta.stamp`, hands the changed rows to the mirror, which commits them
to LMDB with the same stamp, and only then commits the catalog. So the two stores
carry the same stamp exactly when both hold the same transactions; a crash anywhere
in between leaves different stamps, and the next start rebuilds the mirror.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from markfs.catalog.engines import Engine, open_engine
from markfs.columns import integer
from markfs.errors import FsError
from markfs.model import ChangeSet, Kind, Node

if TYPE_CHECKING:
    from markfs.catalog.sessions import Session

log = logging.getLogger(__name__)

NODE_COLUMNS = (
    "id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink, generation, "
    "source_id, remote_path, target, etag, atime_ns, rdev, meta_kept"
)


NODE_COLUMNS_OF_N = ", ".join(f"n.{column.strip()}" for column in NODE_COLUMNS.split(","))
COLLECT_CHUNK = 500  # node ids per statement that reads changed rows back


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

    def node(self, node_id: int) -> Node | None: ...

    def child(self, parent: int, name: bytes) -> Node | None: ...

    def mark_stale(self) -> None: ...


class Txn:
    """One open write transaction; node functions record what they touch here.

    A touched node's row is read back at the end (`collect`) unless the transaction
    knows it already (`rows`): an INSERT's RETURNING, or an update of a row it knew
    (on a server, a round trip saved either way)."""

    def __init__(self, engine: Engine, before: Mirror | None = None) -> None:
        self.engine = engine
        self.conn = engine.conn
        self.touched: set[int] = set()
        self.gone_nodes: set[int] = set()
        self.gone_dentries: list[tuple[int, bytes]] = []
        # writes with no answer to wait for, sent with the COMMIT (one round trip)
        self.at_commit: list[tuple[str, tuple[Any, ...]]] = []
        self.rows: dict[int, Node] = {}  # touched nodes' rows as they stand now
        # the tree as it was at BEGIN, where known without a statement (on a shared
        # catalog, the mirror: brought up to the catalog's stamp at BEGIN, under the lock
        # every writer takes, so exact until COMMIT but for this transaction's own writes)
        self._before = before
        self.wrote = False  # (a transaction that wrote nothing commits nothing)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:  # rows are untyped
        self.wrote = True
        return self.conn.execute(sql, params)

    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An INSERT of one row into a table with an `id` column: the new row's id
        (RETURNING, as SQLite and PostgreSQL both say it; the rows read to the end, so
        no statement is left open at COMMIT)."""
        self.wrote = True
        rows = self.conn.execute(sql + " RETURNING id", params).fetchall()
        return integer(rows[0][0])

    def insert_node(self, sql: str, params: tuple[Any, ...]) -> Node:
        """An INSERT of one node: its row as stored (RETURNING: never read back)."""
        self.wrote = True
        rows = self.conn.execute(sql + f" RETURNING {NODE_COLUMNS}", params).fetchall()
        node = row_to_node(tuple(rows[0]))
        self.known(node)
        return node

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write with no answer to wait for (a server gets it with the next statement
        or the COMMIT)."""
        self.wrote = True
        self.engine.later(sql, params)

    def changed(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """An UPDATE, DELETE or INSERT: how many rows it changed (an INSERT ... ON
        CONFLICT DO NOTHING: 0 where the row was there already)."""
        self.wrote = True
        return self.engine.changed(sql, params)

    def row(self, node_id: int) -> Node | None:
        """A node's row as this transaction has it, where known without a statement."""
        if node_id in self.rows:
            return self.rows[node_id]
        if node_id in self.touched or node_id in self.gone_nodes or self._before is None:
            return None
        return self._before.node(node_id)

    def primary(self, parent: int, name: bytes) -> Node | None:
        """The node whose own name (not a hard link's) this is, where known without a
        statement: before this transaction wrote anything (None: not known here)."""
        if self.wrote or self._before is None:
            return None
        node = self._before.child(parent, name)
        return node if node is not None and (node.parent, node.name) == (parent, name) else None

    def known(self, node: Node) -> None:
        """A node this transaction changed, and its row as it stands now."""
        self.touched.add(node.id)
        self.rows[node.id] = node

    def touch(self, node_id: int) -> None:
        """A node this transaction changed by a statement: its row is read back."""
        self.touched.add(node_id)
        self.rows.pop(node_id, None)

    def drop_dentry(self, parent: int, name: bytes) -> None:
        self.gone_dentries.append((parent, name))

    def drop_node(self, node_id: int) -> None:
        self.gone_nodes.add(node_id)
        self.touched.discard(node_id)
        self.rows.pop(node_id, None)

    def collect(self) -> ChangeSet:
        """The touched nodes' rows and every name of each, read back in one statement per
        `COLLECT_CHUNK` nodes (on a server each statement is a round trip)."""
        changes = ChangeSet(gone_nodes=sorted(self.gone_nodes),
                            gone_dentries=list(self.gone_dentries))
        for node_id in sorted(self.rows):
            node = self.rows[node_id]
            changes.nodes.append(node)
            if node.id != node.parent:  # (its hard links' names did not change)
                changes.dentries.append((node.parent, node.name, node.id))
        touched = sorted(self.touched.difference(self.rows))
        for start in range(0, len(touched), COLLECT_CHUNK):
            chunk = touched[start:start + COLLECT_CHUNK]
            self._collect(chunk, changes)
        return changes

    def _collect(self, ids: list[int], changes: ChangeSet) -> None:
        found: set[int] = set()
        for *row, link_parent, link_name in self.conn.execute(
                f"SELECT {NODE_COLUMNS_OF_N}, h.parent, h.name FROM nodes n LEFT JOIN "
                f"hardlinks h ON h.node_id = n.id WHERE n.id IN ({', '.join('?' * len(ids))}) "
                "ORDER BY n.id", tuple(ids)):
            node_id = integer(row[0])
            if node_id not in found:
                found.add(node_id)
                node = row_to_node(tuple(row))
                changes.nodes.append(node)
                if node.id != node.parent:
                    changes.dentries.append((node.parent, node.name, node.id))
            if link_parent is not None:
                changes.dentries.append((integer(link_parent), bytes(link_name), node_id))
        changes.gone_nodes.extend(i for i in ids if i not in found)


class Catalog:
    """The catalog of one data directory, on its engine (an SQLite file by default)."""

    def __init__(self, location: Path | str, mirror: Mirror | None = None) -> None:
        self.engine: Engine = open_engine(location)
        self.mirror = mirror
        # rebuilds the mirror from the catalog (set by its owner); `mirror_behind` holds
        # it while the mirror has a transaction whose COMMIT failed
        self.rebuild_mirror: Callable[[], object] = lambda: None
        self.mirror_behind: Callable[[], object] | None = None
        # on a shared catalog (several hosts): `follow(stamp)` brings the mirror up to the
        # catalog's stamp at the start of each write transaction (set by its owner);
        # `committed(stamp)` is told of each commit (the owner tells the other hosts)
        self.follow: Callable[[int], object] | None = None
        self.committed: Callable[[int], object] | None = None
        self.last_committed = 0  # the stamp of this process's last commit (0: none yet)
        # on a shared catalog: whether this host must not write now (its session may have
        # lapsed: another host may take it for dead); checked before BEGIN and COMMIT
        self.fenced: Callable[[], bool] = lambda: False
        self._open: tuple[int, Txn] | None = None  # (thread, the transaction it has open)
        self._generation: int | None = None
        self.engine.migrate()
        self.conn = self.engine.conn
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
        self.search = search.search_of(self.engine.name, self.conn)

    def close(self) -> None:
        with self.engine.guard:  # (a call abandoned at its deadline may be mid-statement:
            self.engine.close()  # closed under it, libpq aborts; closed before, it raises)

    def meta(self, key: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def stamp(self) -> int:
        return self.meta("stamp")

    @property
    def generation(self) -> int:
        """(Fixed when the catalog is made: read once.)"""
        if self._generation is None:
            self._generation = self.meta("generation")
        return self._generation

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
        with self.engine.guard:  # (another thread's transaction first ends)
            yield from self._transaction()

    def _transaction(self) -> Iterator[Txn]:
        if self.mirror_behind is not None:
            self._catch_up_mirror()
        self._refuse_if_fenced()
        engine = self.engine
        taken = engine.begin()
        txn = Txn(engine, self._rows_before(taken))
        self._open = (threading.get_ident(), txn)
        try:
            if self.follow is not None and taken is not None:
                self.follow(taken - 1)
            yield txn
            if not txn.wrote:  # (nothing to commit: the lock let go, the stamp unspent)
                self._open = None
                engine.rollback()
                return
            self._refuse_if_fenced()
            stamp = taken if taken is not None else integer(txn.execute(
                "INSERT INTO meta (key, value) VALUES ('stamp', 1) ON CONFLICT (key) "
                "DO UPDATE SET value = meta.value + 1 RETURNING value").fetchall()[0][0])
            if self.mirror is not None or engine.shared:
                changes = txn.collect()
                if engine.shared:
                    from markfs.catalog import changelog  # (it imports this module)

                    txn.at_commit.extend(changelog.statements(stamp, changes))
                if self.mirror is not None:
                    self.mirror.apply(changes, stamp)
        except BaseException as exc:
            self._open = None
            engine.rollback()
            raise _translated(engine, exc) from None
        self._open = None
        try:
            engine.commit(txn.at_commit)
        except BaseException as exc:
            # The mirror already holds this transaction: make the next start rebuild it,
            # and this process before its next transaction (a full disk: the mirror
            # must not go on showing what the catalog rolled back).
            if self.mirror is not None:
                self.mirror_behind = self.rebuild_mirror
                with contextlib.suppress(Exception):  # (the disk may be full for this too)
                    self.mirror.mark_stale()
            raise _translated(engine, exc) from None
        self.last_committed = stamp
        if self.committed is not None and engine.shared:
            self.committed(stamp)

    def _rows_before(self, taken: int | None) -> Mirror | None:
        """Where a write transaction reads the tree as it was at BEGIN without a statement:
        on a shared catalog the mirror (`follow` brings it to the stamp before `taken`
        under the stamp row's lock: exact until COMMIT); on SQLite nowhere (µs)."""
        return self.mirror if taken is not None and self.decides_inside else None

    @property
    def decides_inside(self) -> bool:
        """Whether a writer reads what it decides on inside its transaction (`child_now`):
        on a shared catalog, where the mirror is exact only there and a statement is a
        round trip; on SQLite a check before the transaction spares its write lock."""
        return self.engine.shared and self.follow is not None and self.mirror is not None

    def child_now(self, parent: int, name: bytes) -> Node | None:
        """What a name of a folder is in the catalog now, for a writer deciding what to
        write: inside a write transaction of this thread that wrote nothing yet, on a
        shared catalog, the mirror's answer (exact there: `_rows_before`); otherwise
        the catalog's."""
        joined = self._open
        if (self.decides_inside and self.mirror is not None and joined is not None
                and joined[0] == threading.get_ident() and not joined[1].wrote):
            return self.mirror.child(parent, name)
        return self.nodes.find_child(parent, name)

    def sessions(self) -> list[Session]:
        """The daemons of the hosts sharing this catalog (a catalog of one host: none)."""
        from markfs.catalog.sessions import every

        return every(self.conn, self.engine.clock) if self.engine.shared else []

    def _refuse_if_fenced(self) -> None:
        if self.fenced():
            raise FsError(errno.EIO, "this host's session in the shared catalog lapsed: "
                          "writes fail until it registers again")

    def changes_since(self, after: int, newest: int) -> ChangeSet | None:
        """Inside a write transaction (`follow`): what other hosts committed after `after`
        up to `newest` (None: the log was trimmed past it)."""
        from markfs.catalog import changelog

        joined = self._open
        assert joined is not None, "changes_since reads inside the writer's transaction"
        return changelog.read_since(joined[1], after, newest)

    def _catch_up_mirror(self) -> None:
        """The mirror holds a transaction the catalog did not commit: rebuilt now."""
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
        with self.engine.guard:
            self.engine.hold()
            try:
                yield
            finally:
                self.engine.rollback()

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the whole catalog as one self-contained SQLite file."""
        self.engine.copy_to(path)

    def checkpoint(self) -> None:
        """Make committed transactions durable (fsync path)."""
        self.engine.checkpoint()

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """What the engine's own check finds (`quick`: pages and records, not indexes)."""
        return self.engine.integrity_problems(quick)


def _translated(engine: Engine, exc: BaseException) -> BaseException:
    """What a writer sees of a failed transaction (a full disk: ENOSPC)."""
    return engine.translate_error(exc) or exc


