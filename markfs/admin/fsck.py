"""`markfs fsck`: are the catalog, its LMDB mirror and the sources' records consistent?

Checks, under the catalog's write lock so no writer is half-way:
SQLite integrity; nodes whose parent is missing; nodes of removed sources;
sources without their folder; journaled uploads whose staged file is gone;
table files whose snapshot blob is gone (reported: only a refresh can render it);
content-cache blobs whose bytes no longer hash to their name (repair drops them);
views, tags and categories without their folders (or folders without them) and
their rows naming nodes that are gone; the mirror's stamp; and the mirror's
content (a damaged LMDB file is found and replaced when it is opened, before any
of this: reported as repaired),
node by node and name by name, against the catalog. Repair removes orphans
and rebuilds the mirror from the catalog (SQLite is the truth).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field

from markfs.cache.content import ContentCache
from markfs.cache.lmdbfile import discard
from markfs.cache.snapshots import SnapshotStore
from markfs.catalog import nodes as node_rows
from markfs.catalog.db import Catalog
from markfs.catalog.salvage import salvage
from markfs.config import DataDir
from markfs.errors import CatalogDamaged
from markfs.model import Kind
from markfs.namespace.curation import checks
from markfs.namespace.files.sources import is_sql
from markfs.namespace.tree import LAYOUT, SOURCES_ID, STATUS_FILE_ID, Tree

LAYOUT_IDS = [*(node_id for node_id, *_ in LAYOUT), STATUS_FILE_ID]


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def _catalog_problems(tree: Tree) -> tuple[list[str], list[int]]:
    """Problems inside SQLite, and the node ids a repair should remove."""
    catalog = tree.catalog
    problems = [f"sqlite: {p}" for p in tree.catalog.integrity_problems()]
    doomed = catalog.nodes.orphan_ids()
    problems += [f"node {i}: parent missing" for i in doomed]
    source_ids = {s.id for s in catalog.sources.list_sources()}
    for node in catalog.nodes.iter_nodes():
        if node.kind is Kind.SOURCE and node.source_id not in source_ids:
            problems.append(f"node {node.id}: belongs to a removed source")
            doomed.append(node.id)
    for row in catalog.sources.list_sources():
        if not is_sql(row) and catalog.nodes.node_by_remote(row.id, b"") is None:
            problems.append(f"source {row.name!r}: has no folder under /sources")
    problems += [f"fixed folder {i}: missing" for i in LAYOUT_IDS
                 if catalog.nodes.get_node(i) is None]
    return problems, doomed


def _restore_folders(tree: Tree) -> list[str]:
    """Fixed folders and sources' folders a salvage lost, made again (a source's
    folder is listed anew on first use)."""
    made = tree.ensure_layout()
    catalog, now = tree.catalog, time.time_ns()
    lost = [row for row in catalog.sources.list_sources()
            if not is_sql(row) and catalog.nodes.node_by_remote(row.id, b"") is None]
    with tree.transaction() as txn:
        for row in lost:
            mode = stat.S_IFDIR | (0o555 if row.read_only else 0o755)
            node_rows.insert_node(txn, SOURCES_ID, row.name.encode(), node_rows.NewNode(
                Kind.SOURCE, mode, os.getuid(), os.getgid(), 0, now, now, nlink=2,
                source_id=row.id, remote_path=b""), generation=tree.generation)
    return ([f"re-created {len(made)} fixed folder(s)"] if made else []) + [
        f"re-created the folder of source {row.name!r}" for row in lost]


def _upload_problems(tree: Tree) -> tuple[list[str], list[int]]:
    """Journaled uploads whose staged file is gone (their content cannot be sent)."""
    problems, doomed = [], []
    for row in tree.catalog.uploads.every_row():
        if not os.path.exists(row.staging):
            problems.append(f"upload {row.id} of {row.remote_path!r}: staged file missing")
            doomed.append(row.id)
    return problems, doomed


def _mirror_problems(tree: Tree) -> list[str]:
    catalog = tree.catalog
    problems = []
    if tree.hot.stamp() != tree.catalog.stamp:
        problems.append(f"hot cache stamp {tree.hot.stamp()} != catalog stamp "
                        f"{tree.catalog.stamp}")
    truth = {n.id: n for n in catalog.nodes.iter_nodes()}
    mirror = {n.id: n for n in tree.hot.iter_nodes()}
    for node_id in sorted(truth.keys() | mirror.keys()):
        if truth.get(node_id) != mirror.get(node_id):
            state = "missing" if node_id not in mirror else (
                "extra" if node_id not in truth else "differs")
            problems.append(f"hot cache node {node_id}: {state}")
    names = {(n.parent, n.name): n.id for n in truth.values() if n.id != n.parent}
    names.update({(p, nm): i for p, nm, i in catalog.nodes.iter_hardlinks()})
    cached = {(p, nm): i for p, nm, i in tree.hot.iter_dentries()}
    for key in sorted(names.keys() | cached.keys()):
        if names.get(key) != cached.get(key):
            problems.append(f"hot cache name {key[1]!r} in {key[0]}: "
                            f"catalog {names.get(key)}, cache {cached.get(key)}")
    return problems


def _snapshot_problems(tree: Tree, store: SnapshotStore) -> list[str]:
    """Table files whose node or snapshot blob is gone (a refresh renders them anew)."""
    problems = []
    for f in tree.catalog.managed.current_files():
        where = f"table file {f.file_name} of {f.source}/{f.schema}/{f.table}"
        if tree.catalog.nodes.get_node(f.node_id) is None:
            problems.append(f"{where}: node {f.node_id} missing")
        if not store.contains(f.digest):
            problems.append(f"{where}: snapshot {f.digest} missing "
                            f"(run: markfs refresh --force {f.source}/{f.schema}/{f.table})")
    return problems


def catalog_damage(data_dir: DataDir) -> list[str]:
    """What SQLite's integrity check finds in the catalog (opened alone, no LMDB)."""
    try:
        catalog = Catalog(data_dir.catalog_location)
    except CatalogDamaged as exc:
        return [str(exc)]
    try:
        return catalog.integrity_problems()
    finally:
        catalog.close()


def salvage_catalog(data_dir: DataDir) -> list[str]:
    """Replace a damaged catalog by what can be read of it; the hot cache mirrors rows
    that may be gone, so it is rebuilt from what is left."""
    done = salvage(data_dir.catalog)
    discard(data_dir.hot)
    return done


def fsck(tree: Tree, repair: bool, store: SnapshotStore | None = None,
         content: ContentCache | None = None) -> FsckReport:
    report = FsckReport()
    for cache, damage in (("hot cache", tree.hot.damage),
                          ("content cache", content.damage if content else None)):
        if damage is not None:  # found when it was opened, and replaced then
            report.repaired.append(f"{cache}: {damage}; started afresh")
    with tree.catalog.locked():
        catalog_problems, doomed = _catalog_problems(tree)
        upload_problems, lost_uploads = _upload_problems(tree)
        report.problems = (catalog_problems + upload_problems + _mirror_problems(tree)
                           + checks.problems(tree))
        if store is not None:
            report.problems += _snapshot_problems(tree, store)
    blob_problems = content.verify_all(repair) if content is not None else []
    report.problems += blob_problems
    if not repair or report.clean:
        return report
    if blob_problems:
        report.repaired.append(f"dropped {len(blob_problems)} bad content-cache blob(s)")
    if lost_uploads:
        with tree.transaction() as txn:
            for upload_id in lost_uploads:
                tree.catalog.uploads.done(txn, upload_id)
        report.repaired.append(f"dropped {len(lost_uploads)} upload(s) with no staged file")
    if doomed:
        with tree.transaction() as txn:
            for node_id in doomed:
                node_rows.delete_subtree(txn, node_id)
        report.repaired.append(f"removed {len(doomed)} orphaned node(s)")
    report.repaired += _restore_folders(tree)
    report.repaired += checks.repair(tree)
    tree.rebuild_mirror()
    report.repaired.append("rebuilt the hot cache from the catalog")
    return report


def check_data_dir(data_dir: DataDir, repair: bool, cache_max_bytes: int) -> FsckReport:
    """`fsck` of a whole data directory as `markfs fsck` runs it (after any salvage):
    the hot cache walked before it is mapped, the content cache's blobs hashed."""
    tree = Tree.open(data_dir, walk=True)
    try:
        content = ContentCache(data_dir.cache, cache_max_bytes)
        try:
            return fsck(tree, repair, SnapshotStore(data_dir.cache), content)
        finally:
            content.close()
    finally:
        tree.close()
