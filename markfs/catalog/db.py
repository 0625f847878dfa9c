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
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from markfs.catalog import changelog, hashes, nodes, sources, xattrs
from markfs.catalog.curation import categories, tags, views
from markfs.catalog.engines import Engine, open_engine
from markfs.catalog.journals import pieces, renames, uploads
from markfs.catalog.sessions import Session, every
from markfs.catalog.tables import filescans, jobs, managed, search, sqltables
from markfs.catalog.txn import Mirror, Txn
from markfs.columns import integer
from markfs.errors import FsError, first_line
from markfs.model import ChangeSet, Node

log = logging.getLogger(__name__)
T = TypeVar("T")

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
        # `committed(stamp)` is told of each commit (the owner tells the other hosts);
        # `landed(changes, stamp)` takes the rows of a commit whose stamp came with it
        # (`_locking`) into the mirror (set by its owner: others may have committed
        # stamps between its locks and its COMMIT)
        self.follow: Callable[[int], object] | None = None
        self.committed: Callable[[int], object] | None = None
        self.landed: Callable[[ChangeSet, int], object] = lambda changes, stamp: None
        self.last_committed = 0  # the stamp of this process's last commit (0: none yet)
        # on a shared catalog: whether this host must not write now (its session may have
        # lapsed: another host may take it for dead); checked before BEGIN and COMMIT
        self.fenced: Callable[[], bool] = lambda: False
        self._taken_fenced = threading.local()  # `on`: this thread's work was (`refusing`)
        self._opened = threading.local()  # `txn`: the transaction this thread has open
        # held while the mirror is written on a shared catalog (several threads commit
        # at once there, and the change feed applies from the loop: `FollowingHosts`)
        self.mirror_lock = threading.RLock()
        self._generation: int | None = None
        self.engine.migrate()
        self.conn = self.engine.conn
        # the typed parts the layers above read and write through
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
    def transaction(self, folders: Iterable[int] = ()) -> Iterator[Txn]:
        """A write transaction whose node changes reach the mirror (on SQLite before
        COMMIT, in the same window; on a shared catalog with `folders` right after it).

        `folders`: the folders whose names — and whose entries' rows — it changes, and
        no others. On a shared catalog it then holds only their locks (`_locking`) and
        runs beside other hosts' writes elsewhere; without them it holds the whole
        catalog, as SQLite's one writer does.

        Opened inside another one of the same thread, it joins that one (whose
        `folders` must cover it): the writes of one request made by separate functions
        commit once (a transaction costs ~45 µs of BEGIN, stamp, mirror and COMMIT; a
        statement inside one, 2 µs). An error inside rolls the whole outer transaction
        back. The outer block never awaits (a `with`, not an `async with`): no other
        task's writes can slip in."""
        joined = self._open_here()
        if joined is not None:
            yield joined
            return
        locked = sorted(set(folders))
        if not (locked and self.decides_inside):
            with self.engine.guard:  # (another thread's transaction first ends)
                yield from self._transaction()
            return
        committed: list[tuple[int, ChangeSet]] = []
        with self.engine.writing():  # (beside this host's writes to other folders)
            yield from self._locking(locked, committed)
        for stamp, changes in committed:  # (its connection given back: trims hold all)
            self._after_commit(stamp, changes)

    def _open_here(self) -> Txn | None:
        """The write transaction this thread has open, if any."""
        txn: Txn | None = getattr(self._opened, "txn", None)
        return txn

    def _transaction(self) -> Iterator[Txn]:
        self._ready_to_write()
        engine = self.engine
        taken = _begun(engine, engine.begin)
        txn = Txn(engine, self._rows_before(taken))
        with self._open_as(txn):
            if self.follow is not None and taken is not None:
                self.follow(taken - 1)
            yield txn
            if txn.wrote:
                self._refuse_if_fenced()
                stamp = taken if taken is not None else integer(txn.execute(
                    "INSERT INTO meta (key, value) VALUES ('stamp', 1) ON CONFLICT (key) "
                    "DO UPDATE SET value = meta.value + 1 RETURNING value").fetchall()[0][0])
                if self.mirror is not None or engine.shared:
                    changes = txn.collect()
                    if engine.shared:
                        txn.at_commit.extend(changelog.statements(stamp, changes))
                    if self.mirror is not None:
                        with self.mirror_lock:
                            self.mirror.apply(changes, stamp)
        if not txn.wrote:  # (nothing to commit: the lock let go, the stamp unspent)
            engine.rollback()
            return
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

    def _locking(self, folders: list[int],
                 committed: list[tuple[int, ChangeSet]]) -> Iterator[Txn]:
        """A shared catalog's transaction holding only `folders` (`Engine.begin_locking`):
        the mirror caught up to what was committed when they were locked — exact there
        until COMMIT (`Txn.exact`) — and its stamp taken with the COMMIT, after which its
        rows reach the mirror (`committed`, for `_after_commit`)."""
        self._ready_to_write()
        engine = self.engine
        newest = _begun(engine, lambda: engine.begin_locking(folders))
        txn = Txn(engine, self.mirror, locked=frozenset(folders))
        with self._open_as(txn):
            if self.follow is not None:
                self.follow(newest)
            yield txn
            if txn.wrote:
                self._refuse_if_fenced()
                changes = txn.collect()
        if not txn.wrote:
            engine.rollback()
            return
        try:
            stamp = engine.commit_stamping(txn.at_commit, changelog.statements(None, changes))
        except BaseException as exc:
            raise _translated(engine, exc) from None  # (the mirror has none of it)
        committed.append((stamp, changes))

    @contextmanager
    def _open_as(self, txn: Txn) -> Iterator[None]:
        """`txn` is this thread's open transaction for the block (others of this thread
        join it); an error in the block rolls it back."""
        self._opened.txn = txn
        try:
            yield
        except BaseException as exc:
            self._opened.txn = None
            self.engine.rollback()
            raise _translated(self.engine, exc) from None
        self._opened.txn = None

    def _after_commit(self, stamp: int, changes: ChangeSet) -> None:
        self.last_committed = stamp
        try:
            self.landed(changes, stamp)
        except Exception as exc:  # (committed: the mirror is rebuilt before the next write)
            log.warning("the hot cache missed a commit (%s): rebuilding it", first_line(exc))
            self.mirror_behind = self.rebuild_mirror
            with contextlib.suppress(Exception):
                if self.mirror is not None:
                    self.mirror.mark_stale()
        trims = changelog.trim_due(stamp)
        if trims:
            with self.transaction() as txn:
                for sql, params in trims:
                    txn.execute(sql, params)
        if self.committed is not None:
            self.committed(stamp)

    def _ready_to_write(self) -> None:
        if self.mirror_behind is not None:
            self._catch_up_mirror()
        self._refuse_if_fenced()

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
        joined = self._open_here()
        if (self.decides_inside and self.mirror is not None and joined is not None
                and not joined.wrote and joined.exact(parent)):
            return self.mirror.child(parent, name)
        return self.nodes.find_child(parent, name)

    def sessions(self) -> list[Session]:
        """The daemons of the hosts sharing this catalog (a catalog of one host: none)."""
        return every(self.conn, self.engine.clock) if self.engine.shared else []

    def refusing(self, work: Callable[[], T]) -> T:
        """Run `work` with every write transaction in it refused as fenced: work this host
        took while it was fenced (a request read from the kernel before the session was
        renewed) fails, whenever it reaches the catalog."""
        self._taken_fenced.on = True
        try:
            return work()
        finally:
            self._taken_fenced.on = False

    def _refuse_if_fenced(self) -> None:
        if self.fenced() or getattr(self._taken_fenced, "on", False):
            raise FsError(errno.EIO, "this host's session in the shared catalog lapsed: "
                          "writes fail until it registers again")

    def changes_since(self, after: int, newest: int,
                      mine: Collection[int] = ()) -> ChangeSet | None:
        """Inside a write transaction (`follow`): what other hosts committed after `after`
        up to `newest` (None: the log was trimmed past it)."""
        assert self._open_here() is not None, "changes_since reads inside a transaction"
        return changelog.read_since(self.conn, after, newest, mine)  # (`wrote` unset)

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

    def reading(self) -> AbstractContextManager[None]:
        """This thread's reads outside a transaction of its own go apart from the writer's
        connection until the block ends (`Engine.reading`)."""
        return self.engine.reading()

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the whole catalog as one self-contained SQLite file."""
        self.engine.copy_to(path)

    def checkpoint(self) -> None:
        """Make committed transactions durable (fsync path)."""
        self.engine.checkpoint()

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """What the engine's own check finds (`quick`: pages and records, not indexes)."""
        return self.engine.integrity_problems(quick)


def _begun(engine: Engine, begin: Callable[[], T]) -> T:
    try:
        return begin()
    except BaseException as exc:  # (a lock wait the server ended: a conflict)
        raise _translated(engine, exc) from None


def _translated(engine: Engine, exc: BaseException) -> BaseException:
    """What a writer sees of a failed transaction (a full disk: ENOSPC)."""
    return engine.translate_error(exc) or exc


