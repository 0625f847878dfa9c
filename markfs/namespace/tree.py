"""The node tree as the layers above see it: the catalog (truth) with its LMDB mirror.

Reads of single nodes and names come from the mirror; listings and all writes
go to the catalog, whose transactions write the mirror through. Opening a
tree checks the shared stamp and rebuilds the mirror if a crash left them apart.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from markfs import runtime
from markfs.cache.hot import HotCache
from markfs.catalog import nodes as node_rows
from markfs.catalog.db import Catalog
from markfs.catalog.journals import pieces, uploads
from markfs.catalog.txn import Txn
from markfs.config import DataDir
from markfs.errors import UserError
from markfs.model import ROOT_ID, ChangeSet, Kind, Node
from markfs.namespace.hosts.following import FollowingHosts

log = logging.getLogger(__name__)

# The fixed folders of the mount, with the ids they always have (the one place that
# says them; ROOT_ID is the model's, as the catalog's root too).
SOURCES_ID, TABLES_ID, VIEWS_ID, TAGS_ID, CATEGORIES_ID, CONTROL_DIR_ID = 2, 3, 4, 5, 6, 7
STATUS_FILE_ID = 8
LAYOUT: list[tuple[int, int, bytes, int]] = [
    (ROOT_ID, ROOT_ID, b"", stat.S_IFDIR | 0o755),
    (SOURCES_ID, ROOT_ID, b"sources", stat.S_IFDIR | 0o755),
    (TABLES_ID, ROOT_ID, b"tables", stat.S_IFDIR | 0o755),
    (VIEWS_ID, ROOT_ID, b"views", stat.S_IFDIR | 0o755),
    (TAGS_ID, ROOT_ID, b"tags", stat.S_IFDIR | 0o755),
    (CATEGORIES_ID, ROOT_ID, b"categories", stat.S_IFDIR | 0o755),
    (CONTROL_DIR_ID, ROOT_ID, b".markfs", stat.S_IFDIR | 0o555),
]
EVERYTHING = 1 << 62  # a limit of `Tree.children` that takes every child
STATUS_FILE_NAME = b"status.json"
METRICS_FILE_NAME = b"metrics"  # /.markfs/metrics: an id of its own (it came after id 8)


def folder_name(name: str) -> bytes:
    """A schema or table name as one path component: '/', '%' and dot-names escaped."""
    escaped = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if escaped in (".", ".."):
        escaped = escaped.replace(".", "%2E")
    raw = escaped.encode()
    if len(raw) > 255:
        raise UserError(f"name too long for a folder: {name[:40]!r}...")
    return raw


def table_folder_path(source: str, schema: str, table: str) -> str:
    """Where a managed table's files appear, as a mount path."""
    return "/".join(("/tables", source, *(folder_name(n).decode() for n in (schema, table))))


# what a data directory may hold before its catalog exists (a config written first,
# or what an interrupted init left)
OWN_NAMES = frozenset({"markfs.toml", "hot.lmdb", "hot.lmdb-lock", "catalog.db-wal",
                       "catalog.db-shm", "catalog.db-journal", "logs", "run", "cache",
                       "staging", "backups", "catalog.url", "host.id"})


def _make_own_folder(data_dir: DataDir) -> None:
    """A new data directory is private (catalogs, caches and staged copies); an existing
    folder keeps its mode, and one that holds anything but a data directory is not
    taken over."""
    root = data_dir.root
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)
        root.chmod(0o700)  # (mkdir's mode passes through the umask)
    elif not data_dir.exists() and any(p.name not in OWN_NAMES for p in root.iterdir()):
        raise UserError(f"{root} is not a markfs data directory and not empty: "
                        "give a new or empty folder")


NOTED_AT_MOST = 20_000  # nodes and names; past this a command's changes go by the TTLs


class _NotingMirror:
    """The hot cache as the catalog's mirror; while `changes` is a list (a command that
    tells running mounts what it changed: `changefeed`), each commit's changes are
    noted in it too, up to `NOTED_AT_MOST` (then the list is emptied and `overflowed`
    set: a scan of a million files must not hold them all). A daemon never notes."""

    def __init__(self, hot: HotCache) -> None:
        self.hot = hot
        self.changes: list[ChangeSet] | None = None
        self.noted = 0
        self.overflowed = False

    def apply(self, changes: ChangeSet, stamp: int) -> None:
        self.hot.apply(changes, stamp)
        if self.changes is None:
            return
        if not self.overflowed:
            self.noted += len(changes.nodes) + len(changes.dentries) + len(
                changes.gone_nodes) + len(changes.gone_dentries)
            self.overflowed = self.noted > NOTED_AT_MOST
        if self.overflowed:
            self.changes.clear()  # (something committed: still told, names aside)
            self.changes.append(ChangeSet())
        else:
            self.changes.append(changes)

    def node(self, node_id: int) -> Node | None:
        return self.hot.node(node_id)

    def child(self, parent: int, name: bytes) -> Node | None:
        child_id = self.hot.child(parent, name)
        return None if child_id is None else self.hot.node(child_id)

    def mark_stale(self) -> None:
        self.hot.mark_stale()


class Tree(FollowingHosts):
    """Catalog and hot cache of one data directory, kept in step (on a shared catalog,
    with the other hosts' writes too: `FollowingHosts`)."""

    def __init__(self, catalog: Catalog, hot: HotCache) -> None:
        self.catalog = catalog
        self.hot = hot
        self.noting: _NotingMirror | None = None
        self.follow_hosts()

    def note_changes(self) -> list[ChangeSet]:
        """From now on, what each commit changed is added to the list returned."""
        noted: list[ChangeSet] = []
        if self.noting is not None:
            self.noting.changes = noted
        return noted

    @classmethod
    def open(cls, data_dir: DataDir, create: bool = False, walk: bool = False) -> Tree:
        """`walk`: check the hot cache's whole file before it is mapped (mount, fsck)."""
        if not data_dir.exists() and not create:
            raise UserError(f"no markfs catalog in {data_dir.root} (run: markfs init)")
        _make_own_folder(data_dir)
        hot = HotCache(data_dir.hot, walk=walk)
        try:
            mirror = _NotingMirror(hot)
            tree = cls(Catalog(data_dir.catalog_location, mirror=mirror), hot)
            tree.noting = mirror
            tree.catalog.rebuild_mirror = tree.rebuild_mirror
            if tree.catalog.engine.shared:
                tree.catalog.follow = tree.catch_up
                tree.catalog.landed = tree.landed
                runtime.on_host(data_dir.host_id)
        except BaseException:
            hot.close()
            raise
        if create:
            tree.ensure_layout()
        if not tree.mirror_in_sync():
            tree.rebuild_mirror(only_if_stale=True)
        return tree

    def close(self) -> None:
        """(A command's writes to a shared catalog are announced to the other hosts as it
        ends; a daemon announces each as it commits, `fs/feed.py`.)"""
        catalog = self.catalog
        if catalog.engine.shared and catalog.last_committed and catalog.committed is None:
            catalog.engine.announce(catalog.last_committed)
        catalog.close()
        self.hot.close()

    def mirror_in_sync(self) -> bool:
        return self.hot.stamp() == self.catalog.stamp

    def rebuild_mirror(self, only_if_stale: bool = False) -> bool:
        """Rewrite the LMDB mirror from SQLite; returns whether it did."""
        catalog = self.catalog
        with self.catalog.locked():  # a writer mid-way would look like a crash otherwise
            if only_if_stale and self.mirror_in_sync():
                return False
            log.warning("rebuilding the hot cache from the catalog")
            self.hot.rebuild(catalog.nodes.iter_nodes(), catalog.nodes.iter_hardlinks(),
                             self.catalog.stamp)
            return True

    def ensure_layout(self) -> list[int]:
        """Create the fixed folders and the control files where missing (a new catalog,
        one salvaged without them, or one made before a control file existed); the ids
        made."""
        catalog, now, gen = self.catalog, time.time_ns(), self.catalog.generation
        wanted = [(node_id, parent, name, node_rows.NewNode(Kind.LAYOUT, mode, 0, 0, 0, now, now,
                                                    nlink=2))
                  for node_id, parent, name, mode in LAYOUT]
        wanted.append((STATUS_FILE_ID, CONTROL_DIR_ID, STATUS_FILE_NAME, node_rows.NewNode(
            Kind.CONTROL, stat.S_IFREG | 0o444, 0, 0, 0, now, now)))
        missing = [w for w in wanted if catalog.nodes.get_node(w[0]) is None]
        metrics = catalog.nodes.find_child(CONTROL_DIR_ID, METRICS_FILE_NAME)
        if not missing and metrics is not None:
            return []
        made = [m[0] for m in missing]
        with self.catalog.transaction() as txn:
            for node_id, parent, name, new in missing:
                node_rows.insert_node(txn, parent, name, new, generation=gen, node_id=node_id)
            if metrics is None:
                made.append(node_rows.insert_node(
                    txn, CONTROL_DIR_ID, METRICS_FILE_NAME,
                    node_rows.NewNode(Kind.CONTROL, stat.S_IFREG | 0o444, 0, 0, 0, now, now),
                    generation=gen))
        return made

    # -- reads ---------------------------------------------------------------

    def node(self, node_id: int) -> Node | None:
        return self.hot.node(node_id)

    def child(self, parent: int, name: bytes) -> Node | None:
        child_id = self.hot.child(parent, name)
        return None if child_id is None else self.hot.node(child_id)

    def children(self, parent: int, after: int, limit: int) -> list[tuple[int, bytes, Node]]:
        return self.catalog.nodes.list_children(parent, after, limit)

    def lineage(self, node_id: int) -> Iterator[Node]:
        """The node, then each folder it is in, up to (not with) the root: the one walk
        up the tree."""
        node = self.node(node_id)
        while node is not None and node.id != node.parent:
            yield node
            node = self.node(node.parent)

    def child_map(self, parent: int) -> dict[bytes, Node]:
        """Every name of a folder with its node."""
        return self.catalog.nodes.child_names(parent)

    def count_nodes(self) -> int:
        return self.catalog.nodes.count_nodes()

    def pending_uploads(self, owner: str | None = None) -> tuple[int, int]:
        """(number, bytes) of files waiting to be written back to their sources: all,
        or those one daemon sends (parked rows are not waiting)."""
        return self.catalog.uploads.count(owner)

    def parked_uploads(self) -> list[uploads.Upload]:
        return self.catalog.uploads.parked()

    def unfinished_piece_uploads(self) -> list[pieces.PieceUpload]:
        """Uploads in pieces begun and not finished or aborted (a running daemon's, or
        left by a crash for the next start to abort)."""
        return self.catalog.piece_uploads.every_row()

    def recorded_digest(self, source_id: int, remote_path: bytes, identity: bytes) -> str | None:
        """The whole-file digest recorded for a source file with this content identity."""
        return self.catalog.content_hashes.recorded(source_id, remote_path, identity)

    def record_read_digest(self, opened: Node, digest: str) -> None:
        """A file read whole from its source through one handle: its digest is recorded
        if the node still has the content identity it had when the handle was opened."""
        current = self.node(opened.id)
        if (current is None or current.source_id is None or current.remote_path is None
                or current.identity != opened.identity or current.size != opened.size):
            return
        if self.recorded_digest(current.source_id, current.remote_path,
                                current.identity) == digest:
            return  # read before: no write for a file read again
        with self.transaction() as txn:
            self.catalog.content_hashes.record(txn, current.source_id, current.remote_path,
                                               current.identity, current.size, digest)

    def node_at(self, source_id: int, remote_path: bytes) -> Node | None:
        """The node of a path of a source, if the catalog has one."""
        return self.catalog.nodes.node_by_remote(source_id, remote_path)

    def resolve(self, path: str) -> Node:
        """The node at a '/'-separated path below the mount root (for --root)."""
        node = self.node(ROOT_ID)
        assert node is not None
        for part in (p for p in path.split("/") if p):
            child = self.child(node.id, part.encode())
            if child is None:
                raise UserError(f"no such path in the mount: /{path.strip('/')}")
            node = child
        return node

    # -- writes --------------------------------------------------------------

    @contextmanager
    def transaction(self, folders: Iterable[int] = ()) -> Iterator[Txn]:
        """(`folders`: `Catalog.transaction`'s.)"""
        with self.catalog.transaction(folders) as txn:
            yield txn

    def write(self, change: Callable[..., object], *args: object) -> None:
        """One change — a catalog function of `(txn, *args)` — in a transaction of its own
        (a unit of work to hand to the catalog's runner)."""
        with self.transaction() as txn:
            change(txn, *args)

    @property
    def generation(self) -> int:
        return self.catalog.generation
