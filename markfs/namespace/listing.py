"""Reconciling a directory's catalog children with a fresh listing of its source.

Names that appear are inserted (new inode ids), names that vanish are removed
with their subtrees, changed attributes are updated in place (same inode), and
an entry whose file type changed gets a new inode. The caller holds the
directory's lock, so no mutation through the mount interleaves.

A `partial` entry (S3: a listing has no object metadata) keeps the mode, owner and
mtime its node already has where those were read for the same version of the object
(same ETag, and LastModified — the node's ctime — in the same second; a folder's
always): `needs_completion` says which entries must be completed first.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from markfs.backends.base import Entry
from markfs.catalog import nodes
from markfs.catalog.txn import Txn
from markfs.errors import CatalogConflict
from markfs.model import Kind, Node
from markfs.namespace.tree import Tree

log = logging.getLogger(__name__)

NAME_MAX = 255


@dataclass
class ListingDiff:
    """What a reconcile changed, for kernel cache invalidation."""

    removed: list[tuple[bytes, int]] = field(default_factory=list)  # (name, old id)
    changed: list[int] = field(default_factory=list)  # ids whose attributes changed
    added: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed or self.changed or self.added)


def valid_name(name: bytes) -> bool:
    return (0 < len(name) <= NAME_MAX and b"/" not in name and b"\0" not in name
            and name not in (b".", b".."))


def child_path(parent: Node, name: bytes) -> bytes:
    assert parent.remote_path is not None
    return parent.remote_path + b"/" + name if parent.remote_path else name


def new_node_from(parent: Node, entry: Entry) -> nodes.NewNode:
    return nodes.NewNode(Kind.SOURCE, entry.mode, entry.uid, entry.gid, entry.size,
                     entry.mtime_ns, entry.ctime_ns, nlink=entry.nlink,
                     source_id=parent.source_id, remote_path=child_path(parent, entry.name),
                     target=entry.target, etag=entry.etag, atime_ns=entry.atime_ns,
                     rdev=entry.rdev, meta_kept=entry.meta_kept)


def attr_changes(node: Node, entry: Entry) -> dict[str, int | bytes | None]:
    """Columns of `node` that differ from what the source says now."""
    entry = with_known_metadata(node, entry)
    wanted: dict[str, int | bytes | None] = {
        "mode": entry.mode, "uid": entry.uid, "gid": entry.gid, "size": entry.size,
        "mtime_ns": entry.mtime_ns, "ctime_ns": entry.ctime_ns, "nlink": entry.nlink,
        "target": entry.target, "etag": entry.etag, "atime_ns": entry.atime_ns,
        "rdev": entry.rdev, "meta_kept": entry.meta_kept,
    }
    return {k: v for k, v in wanted.items() if getattr(node, k) != v}


def metadata_current(known: Node | None, entry: Entry) -> bool:
    """Does `known` hold the metadata of the object a partial `entry` lists?"""
    if known is None or known.meta_kept is None:
        return False
    if stat.S_IFMT(known.mode) != stat.S_IFMT(entry.mode):
        return False
    return entry.is_dir_entry or (known.etag == entry.etag and
                                  known.ctime_ns // 10**9 == entry.ctime_ns // 10**9)


def needs_completion(known: Node | None, entry: Entry) -> bool:
    return entry.partial and not metadata_current(known, entry)


def with_known_metadata(known: Node, entry: Entry) -> Entry:
    """A partial entry with the metadata `known` read for the same object version; other
    entries as they are. (A folder's own metadata is read where the folder is looked at.)"""
    if not entry.partial or not metadata_current(known, entry):
        return entry
    return replace(entry, mode=known.mode, uid=known.uid, gid=known.gid,
                   mtime_ns=known.mtime_ns, meta_kept=known.meta_kept, partial=False,
                   ctime_ns=known.ctime_ns if entry.is_dir_entry else entry.ctime_ns)


def apply_entry(txn: Txn, tree: Tree, parent: Node, entry: Entry, known: Node | None,
                diff: ListingDiff, keep: Callable[[int], bool]) -> None:
    """Bring one name of `parent` in line with `entry`.

    `keep(id)` says the mount itself changed that node after `entry` was read:
    its attributes are then newer than the entry's and stay.
    """
    if known is not None and stat.S_IFMT(known.mode) != stat.S_IFMT(entry.mode):
        nodes.remove_name(txn, parent.id, entry.name)
        diff.removed.append((entry.name, known.id))
        known = None
    if known is None:
        nodes.insert_node(txn, parent.id, entry.name, new_node_from(parent, entry),
                      generation=tree.generation)
        diff.added.append(entry.name)
        return
    changes = attr_changes(known, entry)
    if changes and not keep(known.id):
        nodes.update_node(txn, known.id, **changes)
        if set(changes) - {"ctime_ns", "nlink", "atime_ns"}:  # (content and type unchanged)
            diff.changed.append(known.id)


def _keep_nothing(node_id: int) -> bool:
    return False


def unchanged(known: Node, entry: Entry, keep: Callable[[int], bool]) -> bool:
    """Would `apply_entry` leave `known` as it is?"""
    return stat.S_IFMT(known.mode) == stat.S_IFMT(entry.mode) and (
        not attr_changes(known, entry) or keep(known.id))


def usable_entries(parent: Node, entries: list[Entry]) -> list[Entry]:
    """The entries a folder can show: names a kernel accepts, each once. (S3 may hold
    the key `a` beside keys under `a/`: the folder is shown, so that all it holds can
    be reached, and the file is not.)"""
    by_name: dict[bytes, Entry] = {}
    for entry in entries:
        if not valid_name(entry.name):
            log.warning("skipping unusable name %r in %r", entry.name, parent.remote_path)
            continue
        other = by_name.get(entry.name)
        if other is not None:
            log.warning("a file and a folder are both named %r in %r: showing the folder",
                        entry.name, parent.remote_path)
            if stat.S_ISDIR(other.mode):
                continue
        by_name[entry.name] = entry
    return list(by_name.values())


def reconcile(tree: Tree, parent: Node, entries: list[Entry],
              keep: Callable[[int], bool] = _keep_nothing) -> ListingDiff:
    """Bring the folder's names in line with its listing, holding the folder (the whole
    catalog where a folder goes or changes type: what is below it goes too)."""
    diff = ListingDiff()
    existing = tree.catalog.nodes.child_names(parent.id)
    seen: set[bytes] = set()
    usable = usable_entries(parent, entries)
    if len(usable) == len(existing) and all(
            (known := existing.get(e.name)) is not None and unchanged(known, e, keep)
            for e in usable):
        return diff  # a listing that changes nothing writes nothing
    with tree.transaction(() if _folders_go(usable, existing) else (parent.id,)) as txn:
        if not txn.holds_everything:
            existing = tree.catalog.nodes.child_names(parent.id)  # (as it is, under the lock)
            if _folders_go(usable, existing):
                raise CatalogConflict("a folder's removal needs the whole catalog")
        for entry in usable:
            seen.add(entry.name)
            apply_entry(txn, tree, parent, entry, existing.get(entry.name), diff, keep)
        for name, node in existing.items():
            if name not in seen and not keep(node.id):  # kept: written here, not there yet
                nodes.remove_name(txn, parent.id, name)
                diff.removed.append((name, node.id))
    return diff


def _folders_go(usable: list[Entry], existing: dict[bytes, Node]) -> bool:
    """Whether a reconcile removes a folder or replaces it by a file."""
    listed = {entry.name: entry for entry in usable}
    return any(node.is_dir and (name not in listed or not listed[name].is_dir_entry)
               for name, node in existing.items())


def add_unknown(tree: Tree, parent: Node, entries: list[Entry]) -> int:
    """Insert the names the catalog does not have yet; change and remove nothing.

    For processes other than the mounted daemon (the CLI naming a path): they cannot
    see the daemon's files open for writing or waiting for their upload, which a full
    reconcile could overwrite or remove."""
    existing = tree.catalog.nodes.child_names(parent.id)
    fresh = [e for e in usable_entries(parent, entries) if e.name not in existing]
    if fresh:
        with tree.transaction((parent.id,)) as txn:
            if not txn.holds_everything:  # (another host may have made some meanwhile)
                existing = tree.catalog.nodes.child_names(parent.id)
                fresh = [e for e in fresh if e.name not in existing]
            for entry in fresh:
                nodes.insert_node(txn, parent.id, entry.name, new_node_from(parent, entry),
                                  generation=tree.generation)
    return len(fresh)


def name_folders(tree: Tree, parent: Node, name: bytes) -> tuple[int, ...]:
    """The folders a change of one name of `parent` locks (`Catalog.transaction`): the
    parent — but a folder's name, whose removal or replacement takes what is below it
    too, holds the whole catalog (no folders named)."""
    current = tree.child(parent.id, name)
    return () if current is not None and current.is_dir else (parent.id,)


def refresh_one(tree: Tree, parent: Node, entry: Entry | None, name: bytes,
                keep: Callable[[int], bool] = _keep_nothing) -> ListingDiff:
    """Reconcile a single name of `parent` (entry None: it no longer exists)."""
    diff = ListingDiff()
    catalog = tree.catalog
    inside = catalog.decides_inside  # (a shared catalog: read inside, from the mirror)
    known = None if inside else catalog.nodes.find_child(parent.id, name)
    if not inside and _settled(known, entry, keep):
        return diff  # (the watcher re-checks the mount's own changes: no empty transaction)
    with tree.transaction(name_folders(tree, parent, name)) as txn:
        if inside:
            known = catalog.child_now(parent.id, name)
            if _settled(known, entry, keep):
                return diff  # (a transaction that wrote nothing commits nothing)
        if known is not None and known.is_dir and not txn.holds_everything and (
                entry is None or not entry.is_dir_entry):
            # (another host made it a folder since this host's mirror said otherwise)
            raise CatalogConflict("a folder's removal needs the whole catalog")
        if entry is None:
            assert known is not None
            nodes.remove_name(txn, parent.id, name)
            diff.removed.append((name, known.id))
        else:
            apply_entry(txn, tree, parent, entry, known, diff, keep)
    return diff


def _settled(known: Node | None, entry: Entry | None, keep: Callable[[int], bool]) -> bool:
    """Whether the catalog's node for a name already says what the source said."""
    if entry is None or known is None:
        return entry is None and known is None
    return unchanged(known, entry, keep)


def update_attrs(tree: Tree, node: Node, entry: Entry) -> Node:
    """Store what the source now says of one node's attributes (same inode)."""
    changes = attr_changes(node, entry)
    if changes:
        with tree.transaction((node.parent, node.id)) as txn:
            nodes.update_node(txn, node.id, **changes)
    return tree.node(node.id) or node
