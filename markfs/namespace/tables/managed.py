"""Managed tables: bringing a table under /tables, refreshing its snapshot, letting it go.

`/tables/<source>/<schema>/<table>/` holds the six files of the table's current
snapshot. Taking a snapshot renders every file into the snapshot store first
(nothing is listed before its exact size is known), then one catalog
transaction swaps the names over to new nodes. The old nodes go away with that
transaction, but a handle open on one keeps its descriptor on the old blob, so
it reads the old bytes to the end; the kernel, seeing new inode numbers, never
mixes pages of the two. Blobs no snapshot names any more are deleted afterwards.
Everything here blocks (source reads, renders): the daemon calls it from a
worker thread, the CLI directly.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from markfs.cache.snapshots import SnapshotStore
from markfs.catalog import nodes as node_rows
from markfs.catalog.tables import managed
from markfs.catalog.tables.sqltables import TableRow
from markfs.catalog.txn import Txn
from markfs.config import DataDir
from markfs.errors import UserError
from markfs.model import Kind, Node
from markfs.namespace.files.sources import open_sql, require_source
from markfs.namespace.tables.scans import (
    reindex_sql,
    save_table_stats,
    scan_sql_source,
    tracked_job,
)
from markfs.namespace.tree import CONTROL_DIR_ID, TABLES_ID, Tree, folder_name
from markfs.render.snapshot import ColumnMeta, Snapshot, TableMeta, render_snapshot
from markfs.sql.base import ColumnInfo, SqlSource, reading_again_once

RETIRED_NAME = b"retired"
RETIRED_FOR_S = 60.0  # far above entry_ttl/attr_ttl: the kernel has let go of old names
DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444

RowProgress = Callable[[int], None]


@dataclass(frozen=True)
class TableRef:
    """SOURCE/SCHEMA/TABLE as the user writes it (the table part may hold '/')."""

    source: str
    schema: str
    table: str

    @classmethod
    def parse(cls, text: str) -> TableRef:
        parts = text.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise UserError(f"expected SOURCE/SCHEMA/TABLE, got {text!r} "
                            "(see: markfs tables)")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.source}/{self.schema}/{self.table}"


class ManagedTables:
    def __init__(self, tree: Tree, data_dir: DataDir) -> None:
        self.tree = tree
        self.store = SnapshotStore(data_dir.cache)

    def find(self, ref: TableRef) -> TableRow:
        source = require_source(self.tree, ref.source)
        table_id = self.tree.catalog.tables.find_table(source.id, ref.schema, ref.table)
        table = None if table_id is None else self.tree.catalog.tables.get_table(table_id)
        if table is None:
            raise UserError(f"no table {str(ref)!r} in the catalog "
                            f"(run: markfs scan {ref.source}; list: markfs tables)")
        return table

    def rescan(self, source_name: str) -> None:
        """A level-1 scan of one SQL source, so change tokens are current."""
        row = require_source(self.tree, source_name)
        source = open_sql(row)
        try:
            scan_sql_source(self.tree, row, source)
        finally:
            source.close()

    def take_snapshot(self, table: TableRow, progress: RowProgress | None = None) -> Snapshot:
        """Render the table now and make it what /tables shows (managing it if needed)."""
        if table.deprecated:
            raise UserError(f"{table.source}/{table.schema}/{table.name} is no longer in its "
                            "source (deprecated by the last scan)")
        columns = [ColumnInfo(name, ctype, nullable, pk, comment, pos) for pos, name, ctype,
                   nullable, pk, comment in self.tree.catalog.tables.columns_of(table.id)]
        row = require_source(self.tree, table.source)
        source = open_sql(row)
        target = f"{table.source}/{table.schema}/{table.name}"
        try:
            with tracked_job(self.tree, "render", target, table.rows) as report:
                snapshot = self._render_installed(source, table, columns,
                                                  _both(report, progress))
        finally:
            source.close()
        self.collect_garbage()
        return snapshot

    def _render_installed(self, source: SqlSource, table: TableRow, columns: list[ColumnInfo],
                          progress: RowProgress) -> Snapshot:
        for _attempt in range(3):
            snapshot = self._render(source, table, columns, progress)
            if self._install(table, snapshot):
                return snapshot
        raise UserError(f"{table.source}/{table.schema}/{table.name}: rendered files "
                        "kept vanishing from the snapshot store")


    def _render(self, source: SqlSource, table: TableRow, columns: list[ColumnInfo],
                progress: RowProgress | None) -> Snapshot:
        meta = TableMeta(table.source, table.schema, table.name, table.change_token,
                         [ColumnMeta(c.name, c.type, c.nullable, c.primary_key, c.comment)
                          for c in columns])
        def read() -> Snapshot:
            schema, batches = source.read_table(table.schema, table.name, columns)
            return render_snapshot(meta, schema, batches, self.store, progress)
        try:
            return reading_again_once(read)
        except ValueError as exc:
            raise UserError(f"{table.source}/{table.schema}/{table.name}: {exc}") from None

    def _install(self, table: TableRow, snapshot: Snapshot) -> bool:
        """Swap the snapshot in; False if a concurrent garbage collection took its blobs
        (it runs under the catalog's write lock, so checking inside this transaction
        settles the race)."""
        with self.tree.transaction() as txn:
            if not all(self.store.contains(f.digest) for f in snapshot.files):
                return False
            folder = self._table_folder(txn, table)
            self._retire(txn, table.id)
            for f in snapshot.files:
                new = node_rows.NewNode(Kind.TABLE, FILE_MODE, os.getuid(), os.getgid(), f.size,
                                snapshot.taken_ns, snapshot.taken_ns,
                                source_id=table.source_id, etag=f.digest.encode())
                node_id = node_rows.insert_node(txn, folder, f.name.encode(), new,
                                        generation=self.tree.generation)
                managed.add_file(txn, node_id, table.id, f.name, f.digest, f.size, f.rows,
                            table.change_token, snapshot.taken_ns)
            managed.set_managed(txn, table.id, True)
            reindex_sql(self.tree, txn, table.source_id, table.source)
            save_table_stats(txn, table, snapshot.rows, snapshot.stats, snapshot.sample,
                             snapshot.taken_ns)
        return True

    def _retire(self, txn: Txn, table_id: int) -> None:
        """Move the table's current files to /.markfs/retired, where their inodes keep
        answering (stat, open) until purged: the kernel may still map the old names to
        them for entry_ttl, and a reader racing the swap must not get ENOENT."""
        ids = managed.retire_files(txn, table_id, time.time_ns())
        if not ids:
            return
        retired = self._retired_folder(txn)
        for node_id in ids:
            node = self.tree.catalog.nodes.get_node(node_id)
            if node is not None:
                node_rows.move_name(txn, node.parent, node.name, retired,
                            f"{node_id}-{node.name.decode()}".encode(), None)

    def _retired_folder(self, txn: Txn) -> int:
        found = self.tree.catalog.nodes.find_child(CONTROL_DIR_ID, RETIRED_NAME)
        if found is not None:
            return found.id
        new = node_rows.NewNode(Kind.TABLE, DIR_MODE, os.getuid(), os.getgid(), 0, time.time_ns(),
                        time.time_ns(), nlink=2)
        return node_rows.insert_node(txn, CONTROL_DIR_ID, RETIRED_NAME, new,
                             generation=self.tree.generation)

    def _table_folder(self, txn: Txn, table: TableRow) -> int:
        """The /tables/<source>/<schema>/<table> folder, made if missing."""
        parent = TABLES_ID
        for name in (table.source.encode(), folder_name(table.schema), folder_name(table.name)):
            child = self.tree.catalog.nodes.find_child(parent, name)
            if child is None:
                new = node_rows.NewNode(Kind.TABLE, DIR_MODE, os.getuid(), os.getgid(), 0,
                                        time.time_ns(), time.time_ns(), nlink=2,
                                        source_id=table.source_id)
                parent = node_rows.insert_node(txn, parent, name, new,
                                               generation=self.tree.generation)
            else:
                parent = child.id
        return parent

    def unmanage(self, table: TableRow) -> None:
        """Take the table out of /tables (its rows in the catalog stay, unmanaged)."""
        with self.tree.transaction() as txn:
            self._retire(txn, table.id)
            managed.set_managed(txn, table.id, False)
            self._prune(txn, table)
            reindex_sql(self.tree, txn, table.source_id, table.source)
        self.collect_garbage()

    def _prune(self, txn: Txn, table: TableRow) -> None:
        """Remove the table's folder, then its schema and source folders if left empty."""
        chain: list[Node] = []
        parent = TABLES_ID
        for name in (table.source.encode(), folder_name(table.schema), folder_name(table.name)):
            child = self.tree.catalog.nodes.find_child(parent, name)
            if child is None:
                break
            chain.append(child)
            parent = child.id
        for node in reversed(chain):
            if self.tree.catalog.nodes.list_children(node.id, 0, 1):
                break
            node_rows.delete_subtree(txn, node.id)

    def stale(self) -> list[managed.StaleTable]:
        return self.tree.catalog.managed.stale_tables()

    def collect_garbage(self, now_ns: int | None = None) -> int:
        """Purge files retired long enough ago, then delete snapshot blobs no file names
        any more (a reader that has one open keeps reading it). Returns blobs deleted."""
        cutoff = (now_ns or time.time_ns()) - int(RETIRED_FOR_S * 1e9)
        with self.tree.transaction() as txn:  # no snapshot is being swapped in meanwhile
            for node_id in managed.purge_retired(txn, cutoff):
                node_rows.delete_subtree(txn, node_id)
            return self.store.remove_unreferenced(self.tree.catalog.managed.referenced_digests())




def _both(report: Callable[[int], None], progress: RowProgress | None) -> RowProgress:
    """Rows rendered so far go to the job log (as a total) and to the caller (as steps)."""
    done = [0]

    def step(rows: int) -> None:
        done[0] += rows
        report(done[0])
        if progress is not None:
            progress(rows)
    return step
